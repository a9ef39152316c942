"""Facts: what a message says that could be news, whatever words carry it.

Why this file is long: the word lists (counter words, position words in eight languages)
take some 250 lines, and the one scan, the cut of a long message, the JSON escapes, the
stamps and the numbers are one pass over a text that must agree with itself (a fact found
in a head is a fact of the whole text, a stamp is left out wherever the scan meets it).

Agents reword every message, so word overlap says little about whether a message brings
anything new. What a round of work produces is *facts*: identifiers, numbers, names,
quoted values, addresses. ``facts(text)`` pulls them out with one regular expression
(C speed, no tokenizer, no model), normalised so that rewording, reordering and
re-wrapping do not change them:

- **tokens with a digit**: ``INV-2024-0042``, ``4711``, ``3.5%``, ``a1b2c3`` (hashes, ids,
  amounts, versions), lowercased, trailing punctuation dropped;
- **addresses**: e-mail addresses, URLs, paths (``/srv/data/x.csv``);
- **identifiers**: ``snake_case``, ``camelCase``, ``dotted.names``; markdown emphasis
  (``_please_``, ``_v9_``) is the word inside it, not an identifier;
- **quoted values**: text between straight, curly, guillemet or back quotes (up to 80
  characters), lowercased with its whitespace collapsed; a JSON string (a quote right
  after ``{``, ``[``, ``,`` or ``:`` in a text holding a brace or bracket) is not one: its
  quotes are syntax, and its facts are those of its text (an agent answering in JSON
  rewords its sentences too); nor is the span after a quote that closes (a word right
  before it);
- **names**: a capitalised word right after a lowercase word (``... asked Maria ...``);
  not after punctuation, where sentences and greetings start.

- **positions**: a number of one or two digits right after a word naming a part of a
  document or of a piece of work (``chapter 4``, ``Kapitel 4``, ``page 12``, ``item 3``,
  ``question 7``; eight languages): a planner walking a writer through a document moves
  to a new part every round, while "attempt 4" is the same work again.

Not facts (they change every round without saying anything): **round counters** (a number
of one or two digits alone, unless a percentage or a position, ``v3``, ``#4``, ``4th``,
``r12``, a number right after a counter word such as *attempt*, *round*, *retry*,
*iteration*, *version*), **clock times and timestamps** (``12:03:07``,
``2024-05-01T12:03:07Z``), and **machine stamps**, tokens that a machine mints afresh for
every message whatever it says (``_stamp``, ``_classify``): UUID-shaped tokens (and their
first 8-4-4 groups), hexadecimal runs of 16-32 digits with letters (trace and span ids,
nonces), runs of 20+ letters and digits that switch between capitals, small letters and
digits at least every fourth character (base64 / base32 keys), epoch times (10 or 13
digits, 2017-2033), a date or a year with a time of day after it (``2026-11-05
14:03:07``), numbers with a time unit (``231ms``, ``1.2 s``), and any value right after
a key naming a stamp (``request_id=``, ``trace``, ``span``, ``X-Correlation-ID:``,
``run-id``, ``nonce``, ``timestamp``, ``latency``, ``elapsed``, ``duration``, ``took``,
``tokens in ... out``, ``msg #``). Names weigh half: one new capitalised word alone (a
greeting, an acronym-free interjection) is not news, two are.

**Numbers are one fact however they are written** (``_number``): thousands separators
(``714,025``, ``714_025``, ``714 025`` with a space, a thin or a no-break space), zeros
ending the decimals (``714025.00``, ``3.50``) and a percent sign (``12.3%``, ``12.3 %``)
do not make a new fact, nor do quotes around it (``"714,025"`` in a CSV cell), so a
table passed on re-sorted and reformatted brings none.
``714.025`` is read as a decimal number, not as the European way of writing 714025 (the
two readings cannot be told apart); ``1.250,00`` stays as written.

A message is read up to ``max_chars`` (``MAX_CHARS``, 8,000) characters, so the cost of a
message is bounded (linear in what is read: a scan skips plain lowercase words at C
speed); a longer message is read up to a place where no fact can be cut (``readable``: a
whitespace with no quote opening in the 82 characters before it), so a cut never turns a
piece of an identifier or of a quoted value into a fake fact. A fact that first appears
after that place is not seen.

What it cannot see: a new result expressed in plain lowercase words only ("the tests pass
now" after "the tests fail"), a change of meaning with the same facts (negation, reordering
of steps), names in scripts without capitals (Chinese, Japanese, Arabic...), or small
numbers (1-99) that are real results. A loop that mints a fresh identifier of its own each
round (``ticket T-4471``, a short hash), or that walks through positions ("now page 5",
"page 6"...), looks like progress to it. The other way round, a team whose only news is a
fresh UUID (a record created, named only by its UUID), a long random key, a 10-digit number
in the epoch range, a date with a time of day or a duration is not seen making progress:
such a value counts only where it is not shaped like a stamp (``record R-88``,
``2026-11-05`` alone, a due date, is a fact). A full git commit hash (40 hexadecimal digits)
or a SHA-256 digest (64) stays a fact; a 16-32 digit one does not; a short hash of letters
only (``ccebedf``) is a word, not a fact. A stamp glued before a sentence on the same line
("latency 231 ms Round 3") makes the sentence's first word a name (a capital after a
lowercase word). New content in plain words (a writer's new chapter, a summary of new
topics) is not a fact: measured on reworded loops, words never seen in the run do not
separate them from progress (a loop rewording its filler brings as many new words per round
as a writer's new paragraph), so a planner walking a writer through a document is told apart
by its positions, not by the prose.
"""

from __future__ import annotations

import re

_COUNTER_WORDS = frozenset(
    [
        "attempt",
        "attempts",
        "try",
        "tries",
        "retry",
        "retries",
        "round",
        "rounds",
        "iteration",
        "iter",
        "pass",
        "turn",
        "cycle",
        "version",
        "ver",
        "rev",
        "revision",
        "draft",
        "step",
        "take",
        "run",
        "loop",
        "no",
        "nr",
        "num",
        "number",
        "versuch",
        "runde",
        "tentative",
        "essai",
        "intento",
        "ronda",
        "vuelta",
        "tentativo",
        "giro",
        "poging",
        "ronde",
        "попытка",
        "раунд",
    ]
)
# Words naming a part of a document or of a piece of work: a small number right after one
# is a position ("chapter 4", "Kapitel 4", "question 12"), a fact, not a round counter.
_POSITION_WORDS = frozenset(
    [
        "chapter",
        "chapters",
        "section",
        "sections",
        "sec",
        "page",
        "pages",
        "pp",
        "part",
        "parts",
        "paragraph",
        "para",
        "appendix",
        "annex",
        "article",
        "clause",
        "slide",
        "figure",
        "fig",
        "table",
        "exhibit",
        "lesson",
        "episode",
        "volume",
        "vol",
        "item",
        "items",
        "question",
        "task",
        "exercise",
        "row",
        "line",
        "column",
        "sheet",
        "unit",
        "module",
        "verse",
        "scene",
        "kapitel",
        "abschnitt",
        "seite",
        "seiten",
        "teil",
        "absatz",
        "anhang",
        "artikel",
        "folie",
        "abbildung",
        "tabelle",
        "aufgabe",
        "frage",
        "zeile",
        "spalte",
        "band",
        "capítulo",
        "capitulo",
        "sección",
        "seccion",
        "página",
        "pagina",
        "parte",
        "párrafo",
        "parrafo",
        "anexo",
        "artículo",
        "articulo",
        "diapositiva",
        "figura",
        "tabla",
        "pregunta",
        "tarea",
        "fila",
        "línea",
        "linea",
        "columna",
        "tomo",
        "chapitre",
        "partie",
        "paragraphe",
        "annexe",
        "diapositive",
        "tableau",
        "tâche",
        "tache",
        "ligne",
        "colonne",
        "tome",
        "capitolo",
        "sezione",
        "paragrafo",
        "allegato",
        "articolo",
        "tabella",
        "domanda",
        "compito",
        "riga",
        "colonna",
        "hoofdstuk",
        "sectie",
        "deel",
        "paragraaf",
        "bijlage",
        "dia",
        "figuur",
        "tabel",
        "vraag",
        "taak",
        "regel",
        "kolom",
        "глава",
        "раздел",
        "страница",
        "часть",
        "пункт",
        "статья",
        "таблица",
        "вопрос",
        "задача",
        "строка",
    ]
)
_SHORT_COUNTER = re.compile(r"(?:v|r|rev|no|nr|n|#|x)\d{1,3}|\d{1,3}(?:st|nd|rd|th)|\d{1,2}\.?")
_CLOCK = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?|\d{4}-\d{2}-\d{2}[t ]\d{1,2}:\d{2}")

# Machine stamps: tokens that change with every message whatever it says (``_stamp``).
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}(?:-[0-9a-f]{4}(?:-[0-9a-f]{12})?)?")
_HEX = re.compile(
    r"(?=[a-f]*[0-9])(?=[0-9]*[a-f])[0-9a-f]{16,32}"
    r"|(?:[0-9a-f]{2}-)?[0-9a-f]{32}-[0-9a-f]{16}(?:-[0-9a-f]{2})?"  # a W3C traceparent
)
_ALL_HEX = re.compile(r"[0-9a-fA-F]+")
_NONCE = re.compile(r"[A-Za-z0-9+/]{20,}={0,2}")
_EPOCH = re.compile(r"1[5-9]\d{8}(?:\d{3})?(?:\.\d+)?|20\d{8}(?:\d{3})?(?:\.\d+)?")
_ELAPSED = re.compile(r"\d+(?:\.\d+)?(?:ms|msec|s|sec|secs|us|µs|ns)")
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|(?:19|20)\d\d")
# what may follow a number or a date to make it a stamp: a time unit, a time of day
_STAMP_AFTER = re.compile(
    r"[ \t]?(?:ms|msec|milliseconds?|s|secs?|seconds?|us|µs|ns)(?!\w)|([ T]\d{1,2}:\d{2})"
)
# Words naming a stamp: the value right after one (``_after_key``) is a stamp; as the last
# part of a word ("request", "x-request-id", "trace_id", "elapsed_ms", "prompt-tokens").
_STAMP_KEYS = frozenset(
    [
        "request",
        "req",
        "trace",
        "traceparent",
        "span",
        "correlation",
        "corr",
        "run",
        "nonce",
        "timestamp",
        "ts",
        "latency",
        "elapsed",
        "duration",
        "took",
        "tokens",
        "msg",
        "seq",
        "etag",
        "uuid",
        "guid",
    ]
)
_KEY_SUFFIXES = frozenset(
    ["id", "ids", "ms", "msec", "us", "ns", "s", "sec", "secs", "seconds", "utc", "at"]
)
# words between a key and its values ("tokens in 4000 out 120")
_CONNECTORS = frozenset(["in", "out", "prompt", "completion", "input", "output", "total", "used"])
_KEY_STRIP = "\"'([{:=#@,"
# What a text holds (lowercased) if a word of ``_STAMP_KEYS`` is in it (a cheap test first)
_KEY_HINTS = (
    "req", "trace", "span", "corr", "run", "nonce", "stamp", "latenc", "elapsed",
    "duration", "took", "token", "msg", "seq", "etag", "uid",
)  # fmt: skip
# a stamp key written as one identifier ("request_id", "elapsed_ms", "prompt_tokens"): the
# same in every message, not news itself
_PLAIN_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+|\d{1,3}(?:_\d{3})+|\d+)(?:\.(\d+))?")
_GROUP_SPACES = " \u00a0\u202f\u2009"
_GROUPS = re.compile(r"(?:[ \u00a0\u202f\u2009]\d{3})+(?:\.\d+)?(?!\w|[.,]\d)")
_NO_SPACES = str.maketrans("", "", _GROUP_SPACES)
_SPACED = re.compile(r"\d{1,3}(?:[ \u00a0\u202f\u2009]\d{3})+(?:\.\d+)?")

_STAMP_NAME = re.compile(
    r"(?:x-|prompt_|completion_|total_|input_|output_)?(?:request|req|trace|span|correlation|"
    r"corr|run|nonce|timestamp|latency|elapsed|duration|tokens|msg|seq)[_-](?:ids?|ms|msec|"
    r"us|ns|s|secs?|seconds|utc|at|tokens)|(?:prompt|completion|total|input|output)_tokens"
)

_UPPER = "A-ZÀ-ÖØ-ÞА-ЯΑ-Ω"
_LOWER = "a-zß-öø-ÿа-яα-ω"
_TOKEN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+:-_"
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿß"
)
_TOKEN_CLASS = "".join(re.escape(c) for c in sorted(_TOKEN))


def _fact_pattern(
    upper: str, lower: str, opening: str, closing: str, word: str, letters: str
) -> re.Pattern[str]:
    # Every alternative starts with a rare character (a digit, @ / _, a quote, a capital), so
    # the scan skips plain lowercase words at C speed. The group that matched says what the
    # hit is (``lastindex``), so Python never re-inspects its characters: 1, a token whose
    # first characters come before the hit (``get_param``, ``rfc2183``: read back in Python,
    # for these hits only); 2, a token that starts at the hit; 3 and 4, the inside of a
    # quoted value; none, a name.
    return re.compile(
        rf"""[0-9@/_'{opening}{upper}](?:
            (?<=[0-9@/_])(?:(?<=[{_TOKEN_CLASS}].)()|())[{word}.,:/%#@+-]*
          | (?<=[{lower}]\ [{upper}]){letters}+(?![{word}-])
          | (?<=[{opening}])([^{closing}\n]{{2,80}})[{closing}]
          | (?<=[\s(\[]')([^'\n]{{2,80}})'(?![{word}])
        )""",
        re.VERBOSE,
    )


_FACT = _fact_pattern(_UPPER, _LOWER, '"“«`', '"”»`', r"\w", r"[^\W\d_]")
# The same pattern for ASCII text (``str.isascii`` costs nothing): without its non-ASCII
# characters, and with ``\w`` and letters spelled as ASCII ranges (what they match there),
# so it matches exactly what ``_FACT`` matches, with plain bitmaps for classes instead of
# Unicode lookups. (``\s`` stays: it also matches four ASCII separators.)
_FACT_ASCII = _fact_pattern("A-Z", "a-z", '"`', '"`', "A-Za-z0-9_", "[A-Za-z]")
_PUNCT = ".,:;!?()[]{}'\"-#"
_OPENERS = "([{<\"'*`"
# Tokens classified before (most repeat from message to message): token -> its fact.
_KNOWN: dict[str, str] = {}
_KNOWN_MAX = 8_192
# Texts read before (what ``readable`` keeps of them) -> their facts; cleared when full.
_BY_TEXT: dict[str, dict[str, int]] = {}
_BY_TEXT_MAX = 1_024
_BY_TEXT_CHARS = 1_000_000
_BY_TEXT_HELD = [0]  # characters of the texts in ``_BY_TEXT``
# A character that may open a quoted value (see ``_fact_pattern``): a quote, or an
# apostrophe after whitespace or an opening bracket.
_QUOTE_OPENER = re.compile(r"[\"“«`]|(?<=[\s(\[])'")

# a JSON escape: an escaped backslash (kept), a surrogate pair, or one code unit
_ESCAPE = re.compile(
    r"\\\\|\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})"
)
_MOVES = 32  # quotes ``readable`` steps back over at most

MAX_CHARS = 8_000
"""How many characters of a message ``facts`` reads at most (see ``readable``)."""

NAME = 1
"""Weight of a name (a capitalised word mid-sentence)."""
STRONG = 2
"""Weight of every other fact."""


def facts(text: str, max_chars: int = MAX_CHARS) -> dict[str, int]:
    """The facts of ``text`` (up to its first ``max_chars`` characters, cut where no token
    or quoted value is cut: ``readable``): normalised fact -> weight (``STRONG`` or
    ``NAME``), in the order they first appear. Round counters and clock times are left
    out.

    >>> sorted(facts('Attempt 4: invoice INV-2024-0042 for 1,250.00 EUR, sent to Maria '
    ...              'at ops@example.com, status "on hold" (v3, 12:03:07), see chapter 7.'))
    ['"on hold"', '1250', 'chapter 7', 'inv-2024-0042', 'maria', 'ops@example.com']
    """
    if len(text) > 6 * max_chars + 6:
        # no more than the head can need: an escape is 6 characters for 1, so what is left
        # unescapes to more than ``max_chars`` characters before a cut escape at its end
        text = text[: 6 * max_chars + 6]
    if "\\" in text and "\\u" in text:  # (one character: a much faster search)
        text = unescape(text)
    if len(text) > max_chars:
        text = readable(text, max_chars)
    if max_chars == MAX_CHARS:
        # The same text again (a loop repeating itself verbatim, one payload sent to every
        # worker of a fan-out, a message read by two signals): its facts, remembered.
        seen = _BY_TEXT.get(text)
        if seen is None:
            seen = _scan(text)
            held = _BY_TEXT_HELD[0] + len(text)
            if len(_BY_TEXT) >= _BY_TEXT_MAX or held > _BY_TEXT_CHARS:
                _BY_TEXT.clear()
                held = len(text)
            _BY_TEXT[text] = seen
            _BY_TEXT_HELD[0] = held
        return dict(seen)
    return _scan(text)


def unescape(text: str) -> str:
    r"""``text`` with its JSON escapes of non-ASCII characters and DEL (``\u00fc``, pairs)
    read as the characters, as ``json.dumps(..., ensure_ascii=False)`` would have written
    them: an agent answering with ``json.dumps`` writes "Pr\u00fcfung" for "Prüfung",
    which would otherwise be a token with digits (a fact, new whenever a reworded
    sentence picks another word with an accent) and would hide the word itself
    ("cap\u00edtulo 4" is "capítulo 4", a position). Escaped backslashes, escapes of the other
    ASCII characters and lone surrogates stay as they are.

    >>> unescape('{"items": ["Pr\\u00fcfung von cap\\u00edtulo 4", "\\\\u00fc\\u0022"]}')
    '{"items": ["Prüfung von capítulo 4", "\\\\u00fc\\u0022"]}'
    """
    return _ESCAPE.sub(_unescaped, text)


def _unescaped(m: re.Match[str]) -> str:
    single = m[3]
    if single is not None:
        code = int(single, 16)
        return m[0] if code < 0x7F or 0xD800 <= code < 0xE000 else chr(code)
    if m[1] is not None:  # a surrogate pair
        return chr(0x10000 + ((int(m[1], 16) - 0xD800) << 10) + int(m[2], 16) - 0xDC00)
    return m[0]  # an escaped backslash


def readable(text: str, max_chars: int = MAX_CHARS) -> str:
    """The part of ``text`` that ``facts`` reads: all of it when it has at most
    ``max_chars`` characters, else its longest head of at most ``max_chars`` characters
    that ends where no fact can be cut: at a whitespace (so no token is cut into a
    shorter, fake one), and with no character that may open a quoted value in its last
    82 characters (a quote, or an apostrophe after a space or a bracket: a quoted value
    is at most 80 characters, so none is cut either). A line break always qualifies (no
    fact spans one); a head with quotes so dense that no such place exists before its
    last ``_MOVES`` quotes ends at its last line break, or, on a first line, right before
    its first quote (a minified JSON longer than ``max_chars`` is read up to there).

    So every fact of the head is a fact of the whole text, found in the same place
    (names, counters and ids are read from what comes before them, which the head
    keeps whole).

    A head does not end right after a number whose digit groups, time unit or time of
    day come after the cut (``714 025``, ``412 ms``, ``2026-11-05 14:03``): the number
    would be another fact there, or a fact where the whole text has a stamp.

    >>> readable("id INV-2024-0042 done", 14)
    'id'
    >>> readable('a "b c" d', 8)
    'a '
    >>> readable("took 2 of 714 025 rows", 15)
    'took 2 of'
    """
    if len(text) <= max_chars:
        return text
    head = _readable(text, max_chars)
    for _ in range(_MOVES):
        end = len(head)
        if not (
            end
            and head[-1].isdigit()
            and (_GROUPS.match(text, end) or _STAMP_AFTER.match(text, end))
        ):
            return head
        head = _readable(text, end - 1)
    return head[: max(head.rfind("\n"), 0)]


def _readable(text: str, max_chars: int) -> str:
    """``readable`` without its rule about numbers (``len(text) > max_chars``)."""
    end = max(text.rfind(" ", 0, max_chars + 1), text.rfind("\n", 0, max_chars + 1))
    for space in " \t\r\f\v":
        # other whitespace (rare): only if nearer the end (cheap: one C search each)
        at = text.rfind(space, end + 1, max_chars + 1)
        if at > end:
            end = at
    for opener in _QUOTE_OPENER.finditer(text, end + 1, max_chars + 1):
        end = opener.start()  # right before a quote is a place to cut too (the nearest)
    if end <= 0:
        return ""
    # openers within 82 characters before the end, nearest last; each moves the end to
    # right before it (a quote character is no part of a token), until a window is clear
    if text[end] == "\n":
        return text[:end]
    line = text.rfind("\n", 0, end)
    for _ in range(_MOVES):
        near: re.Match[str] | None = None
        for near in _QUOTE_OPENER.finditer(text, max(end - 82, line + 1), end):  # noqa: B007
            pass
        if near is None:
            return text[:end]
        end = near.start()
    # quotes too dense to find a clear window (JSON on one line): the last line break, or
    # right before the line's first opener (nothing before it can be cut)
    if line < 0:
        first = _QUOTE_OPENER.search(text, 0, end)
        return text[: first.start() if first else end]
    return text[:line]


def _scan(text: str) -> dict[str, int]:
    """The facts of ``text``, read (no cache of texts)."""
    found: dict[str, int] = {}
    known = _KNOWN
    skip = 0  # the end of the digit groups read with the last number ("714 025")
    keyed: bool | None = None  # whether the text may hold a stamp key (read when needed)
    for m in (_FACT_ASCII if text.isascii() else _FACT).finditer(text):
        if m.start() < skip:
            continue
        kind = m.lastindex
        if kind is None:  # a name
            found.setdefault(m[0].lower(), NAME)
            continue
        if kind > 2:  # a quoted value
            if kind == 3 and _plain_quote(text, m.start()):
                # a JSON string, or a quote that closes (a word right before it): its
                # quotes are syntax, its facts are those of its text
                for fact, weight in _scan(m[3]).items():
                    if weight == NAME:
                        found.setdefault(fact, NAME)
                    else:
                        found[fact] = STRONG
                continue
            if m[kind][:1].isdigit():
                number = _quoted_number(m[kind])
                if number is not None:  # "714,025" in a CSV: the number
                    if number:
                        found[number] = STRONG
                    continue
            found['"' + " ".join(m[kind].lower().split()) + '"'] = STRONG
            continue
        token = m[0]
        start = m.start()
        if kind == 1:  # the token started before the hit: read it back to its word's start
            lo = start - 40 if start > 40 else 0
            at = text.rfind(" ", lo, start)
            nl = text.rfind("\n", lo, start)
            if nl > at:
                at = nl
            head = text[at + 1 : start].lstrip(_OPENERS)
            token = head + token
            start -= len(head)
        key = known.get(token)
        if key is None:
            key = _classify(token)
            if len(known) >= _KNOWN_MAX:
                known.clear()
            known[token] = key
        if not key:
            continue
        end = m.end()
        if key[0] == "@":  # a small number: a fact only right after a position word
            if end < len(text) and text[end] in _GROUP_SPACES:
                number, to = _grouped(text, end, key[1:])
                if to:  # "14 025": a number written in groups
                    skip = to
                    if not _stamp(text, start, to, number, True):
                        found[number] = STRONG
                    continue
            if (
                start > 1
                and text[start - 1].isspace()
                and (text[start - 2].isalpha() or text[start - 2] in ".:")
            ):
                key = _position(text, start, key)
                if key and not _stamp(text, start, end, key, True):
                    found[key] = STRONG
            continue
        if key[0] == "#":
            # a number: not a fact right after a counter word ("attempt 117")
            before = text[start - 24 if start > 24 else 0 : start].split()
            if before and before[-1].strip(_PUNCT).lower() in _COUNTER_WORDS:
                continue
            key = key[1:]
            if len(key) <= 3 and end < len(text) and text[end] in _GROUP_SPACES:
                key, to = _grouped(text, end, key)
                if to:
                    skip = end = to
        if found.get(key) == STRONG:  # already a fact of this text
            continue
        if keyed is None:
            low = text.lower()
            keyed = any(hint in low for hint in _KEY_HINTS)
        if _stamp(text, start, end, key, keyed):
            continue
        found[key] = STRONG
    return found


def _key_word(word: str) -> bool:
    """Whether ``word`` (lowercase) names a stamp: a key word (``_STAMP_KEYS``) as its last
    part, or a key word and a suffix (``trace_id``, ``x-correlation-id``, ``elapsed_ms``)."""
    parts = word.replace("_", "-").split("-")
    if parts[-1] in _STAMP_KEYS:
        return True
    return len(parts) > 1 and parts[-1] in _KEY_SUFFIXES and parts[-2] in _STAMP_KEYS


def _after_key(text: str, start: int) -> bool:
    """Whether the value at ``start`` follows a key naming a stamp: among the last five
    words (whitespace apart, quotes, brackets, ``:=#@`` around them dropped) within the 48
    characters before it, walking back over suffixes (``request id``), connectors
    (``tokens in 4000 out``) and numbers, a word naming a stamp (``_key_word``)."""
    lo = start - 48 if start > 48 else 0
    words = text[lo:start].split()
    if lo and words and not text[lo - 1].isspace() and not text[lo].isspace():
        del words[0]  # a word cut by the window
    for raw in reversed(words[-5:]):
        word = raw.strip(_KEY_STRIP).lower()
        if not word:
            continue
        if _key_word(word):
            return True
        if not (
            word in _KEY_SUFFIXES
            or word in _CONNECTORS
            or word.replace(",", "").replace(".", "").isdigit()
        ):
            return False
    return False


def _quoted_number(inner: str) -> str | None:
    """The fact of a quoted value that is a number (``"714,025"``, ``"714 025"``,
    ``"12.5%"``): the number as ``_number`` writes it, ``""`` for an epoch time or a small
    number (as without quotes); ``None`` if it is no number."""
    text = inner.rstrip("%").rstrip()
    if _SPACED.fullmatch(text):
        text = text.translate(_NO_SPACES)
    if _PLAIN_NUMBER.fullmatch(text) is None:
        return None
    if len(text) >= 10 and _EPOCH.fullmatch(text):
        return ""
    number = _number(text)
    return "" if len(number) <= 2 and number.isdigit() else number  # (a small number)


def _grouped(text: str, end: int, key: str) -> tuple[str, int]:
    """A number of 1-3 digits at ``end`` followed by groups of three digits after a
    space (``714 025``, ``1 250 000``, thin or no-break spaces too): the number whole and
    the end of its last group; else ``key`` as it is."""
    m = _GROUPS.match(text, end)
    if m is None or not key.isdigit():
        return key, 0
    return _number(key + m[0].translate(_NO_SPACES)), m.end()


def _stamp(text: str, start: int, end: int, key: str, keyed: bool) -> bool:
    """Whether the fact ``key`` (its token at ``text[start:end]``) is a machine stamp:
    the value of a key naming one (``request_id=``, ``trace``, ``latency:``, ``tokens
    in ... out``), a number with a time unit (``231 ms``, ``1.2 s``), or a date or a year
    with a time of day right after it (``2026-11-05 14:03:07``). (Stamps that are one
    by their shape alone are left out by ``_classify``.) ``keyed``: whether the text
    may hold a key (``_KEY_HINTS``); if not, none is looked for."""
    if keyed and _after_key(text, start):
        return True
    if end < len(text) and key[0].isdigit():
        # (what ``_STAMP_AFTER`` needs first: a unit's letter, or a digit after " " or "T")
        c = text[end]
        if c in " \tT" and end + 1 < len(text):
            c = text[end + 1]
        if c in "msuµn" or c.isdigit():
            after = _STAMP_AFTER.match(text, end)
            if after is not None and (after[1] is None or _DATE.fullmatch(key) is not None):
                return True
    return False


def _position(text: str, start: int, key: str) -> str:
    """The fact of the small number ``key[1:]`` at ``start`` (after a whitespace, after a
    letter, ``.`` or ``:``): ``"chapter 4"`` when the word right before it names a part of
    a document or of a piece of work (``_POSITION_WORDS``: chapter, section, page, item,
    question... in eight languages), else ``""`` (a small number alone is a round
    counter). A planner walking a writer through "chapter 4, 5, 6" moves on every round;
    "attempt 4, 5, 6" does not."""
    before = text[start - 24 if start > 24 else 0 : start].split()
    if before and (len(before) > 1 or start <= 24 or text[start - 25].isspace()):
        # (a word cut by the window, "subchapter", is not one)
        word = before[-1].strip(_PUNCT).lower()
        if word in _POSITION_WORDS:
            return word + " " + key[1:]
    return ""


def _plain_quote(text: str, start: int) -> bool:
    """Whether the quote at ``start`` does not open a quoted value: it opens a JSON string
    (after ``{``, ``[``, ``,`` or ``:``, spaces between, in a text holding a ``{`` or ``[``
    before it), or it closes one (right after a letter, a digit or ``.!?;``: a string too
    long to be read as a value, the next quote then taken for its end)."""
    if start and (text[start - 1].isalnum() or text[start - 1] in ".!?;"):
        return True
    i = start - 1
    while i >= 0 and text[i] in " \t\r\n":
        i -= 1
    return i >= 0 and text[i] in "{[,:" and ("{" in text[: i + 1] or "[" in text[: i + 1])


def _classify(token: str) -> str:
    """A token's fact (lowercased), ``""`` for a counter or a clock time, ``"#"`` + the
    fact for a plain number (a counter after a counter word)."""
    token = token.rstrip(".,:;/-#+")
    if (token[:1] == "_" or token[-1:] == "_") and not token.startswith("__"):
        # markdown emphasis (``_please_``, ``_v9_``): the word inside, a fact only if
        # it is one without the underscores
        token = token.strip("_").rstrip(".,:;/-#+")
        if not token or token.isalpha():
            return ""
    if not token:
        return ""
    low = token.lower()
    if (_SHORT_COUNTER.fullmatch(low) or _CLOCK.match(low)) and low[-1] != "%":
        if low.isdigit():
            return "@" + low  # a small number: a fact only as a position (``_position``)
        return ""
    if "=" in low and _key_word(low[: low.rfind("=")].strip(_KEY_STRIP)):
        return ""  # "request_id=c386bbc4-...", read back whole from its value's digit
    if low[-1] == "%" and low[0].isdigit():
        low = low.rstrip("%")  # "12.3%" and "12.3 %" are one fact
    if low[0].isdigit() and low.replace(",", "").replace(".", "").replace("_", "").isdigit():
        if len(low) >= 10 and _EPOCH.fullmatch(low):
            return ""  # seconds (or milliseconds) since 1970, 2017-2033
        number = _number(low)
        if len(number) <= 2 and number.isdigit():
            return "@" + number  # "8.00" is 8, a small number (a position at most)
        return "#" + number
    if (
        (low[-1] in "sn" and _ELAPSED.fullmatch(low))
        or (len(low) >= 16 and (_UUID.fullmatch(low) or _HEX.fullmatch(low)))
        or (("_" in low or "-" in low) and _STAMP_NAME.fullmatch(low))
    ):
        return ""
    if (
        len(token) >= 20
        and _NONCE.fullmatch(token)
        and not _ALL_HEX.fullmatch(token)  # (a digest: 33+ hexadecimal digits, a fact)
        and _unstructured(token)
    ):
        return ""
    return low


def _number(low: str) -> str:
    """A number written in digits, normalised: thousands separators dropped (``714,025``,
    ``714_025``: groups of three after a first group of 1-3 digits), zeros ending its
    decimals dropped (``714025.00`` is ``714025``, ``3.50`` is ``3.5``). A dot followed
    by three digits is a decimal point (``714.025`` stays ``714.025``: the European way
    of writing 714025 is not read as it); other shapes (``1.250,00``, ``05.11.2026``)
    stay as they are."""
    m = _PLAIN_NUMBER.fullmatch(low)
    if m is None:
        return low
    whole = m[1].replace(",", "").replace("_", "")
    decimals = (m[2] or "").rstrip("0")
    return whole + "." + decimals if decimals else whole


def _unstructured(token: str) -> bool:
    """Whether ``token`` (20+ letters and digits, maybe ``+``, ``/``, ``=``) looks random
    (a nonce, a base64 or base32 key): it switches between capitals, small letters and
    digits at least once every four characters. An identifier (``INV20240042``,
    ``getUserById2024``) or a word with a number switches rarely."""
    switches = 0
    last = 0
    for c in token:
        cls = 1 if c.isdigit() else 2 if c.isupper() else 3 if c.islower() else 4
        if cls != last:
            switches += 1
            last = cls
    return switches * 4 >= len(token)
