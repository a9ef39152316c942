"""The fact extractor against its reference: the same facts, weights and order on any text.

``facts`` is tuned for speed (one scan whose matched alternative says what each hit is, a
token read back to its word's start only when the hit is inside it, the facts of a text
remembered for the next time it is read). The reference below is
the straightforward implementation it replaced, kept here as the oracle: every hit's first
character inspected in Python, every token read back from its start. Both must return the
same dict, in the same order (the order facts are learned decides which are forgotten
first when a run's memory is full), for generated texts that mix what the extractor looks
for: identifiers, numbers, counters, clock times, names after lowercase words, quoted
values in every kind of quote, URLs, paths, e-mail addresses, unicode letters and digits,
punctuation, line breaks, and texts longer than the characters it reads.
"""

from __future__ import annotations

import base64
import itertools
import random
import re
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from guardrails_plugin.cascade import _facts
from guardrails_plugin.cascade._facts import (
    _CLOCK,
    _CONNECTORS,
    _COUNTER_WORDS,
    _DATE,
    _ELAPSED,
    _EPOCH,
    _HEX,
    _KEY_SUFFIXES,
    _LOWER,
    _MOVES,
    _NONCE,
    _POSITION_WORDS,
    _SHORT_COUNTER,
    _STAMP_AFTER,
    _STAMP_KEYS,
    _STAMP_NAME,
    _UPPER,
    _UUID,
    NAME,
    STRONG,
    facts,
    readable,
)

# -- the reference ---------------------------------------------------------------------

_REF_FACT = re.compile(
    rf"""[0-9@/_"“«`'{_UPPER}](?:
        (?<=[0-9@/_])[\w.,:/%#@+-]*
      | (?<=["“«`])[^"”»`\n]{{2,80}}["”»`]
      | (?<=[\s(\[]')[^'\n]{{2,80}}'(?!\w)
      | (?<=[{_LOWER}]\ [{_UPPER}])[^\W\d_]+(?![\w-])
    )""",
    re.VERBOSE,
)
_REF_QUOTES = frozenset("\"“«`'")
_REF_TOKEN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+:-_"
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿß"
)
_REF_PUNCT = ".,:;!?()[]{}'\"-#"
_REF_OPENERS = "([{<\"'*`"
_REF_GROUPS = re.compile(r"(?:[ \u00a0\u202f\u2009]\d{3})+(?:\.\d+)?(?!\w|[.,]\d)")


def reference_facts(text: str) -> dict[str, int]:
    """The facts of all of ``text``, the slow way (no cache, every hit inspected)."""
    found: dict[str, int] = {}
    grouped_to = 0
    for m in _REF_FACT.finditer(text):
        if m.start() < grouped_to:  # a digit group of the number before ("714 025")
            continue
        token = m[0]
        first = token[0]
        if first in _REF_QUOTES:
            if first != "'" and _reference_plain_quote(text, m.start()):
                for key, weight in reference_facts(token[1:-1]).items():
                    if weight == NAME:
                        found.setdefault(key, NAME)
                    else:
                        found[key] = STRONG
                continue
            inner = token[1:-1].rstrip("%").rstrip()
            if re.fullmatch(r"\d{1,3}(?:[ \u00a0\u202f\u2009]\d{3})+(?:\.\d+)?", inner):
                inner = re.sub(r"[ \u00a0\u202f\u2009]", "", inner)
            whole, dot, decimals = inner.partition(".")
            if re.fullmatch(r"\d{1,3}(,\d{3})+|\d{1,3}(_\d{3})+|\d+", whole) and (
                not dot or re.fullmatch(r"\d+", decimals)
            ):  # a number in quotes: the number
                number = _reference_number(inner)
                if not (len(inner) >= 10 and _EPOCH.fullmatch(inner)) and not re.fullmatch(
                    r"\d{1,2}", number
                ):
                    found[number] = STRONG
                continue
            found['"' + " ".join(token[1:-1].lower().split()) + '"'] = STRONG
            continue
        if first.isupper():
            found.setdefault(token.lower(), NAME)
            continue
        start = m.start()
        if start and text[start - 1] in _REF_TOKEN:
            lo = start - 40 if start > 40 else 0
            at = text.rfind(" ", lo, start)
            nl = text.rfind("\n", lo, start)
            if nl > at:
                at = nl
            head = text[at + 1 : start].lstrip(_REF_OPENERS)
            token = head + token
            start -= len(head)
        key = _reference_classify(token)
        if not key:
            continue
        if key[0] == "#" and _reference_counted(text, start):
            continue
        groups = _REF_GROUPS.match(text, m.end()) if key[1:].isdigit() else None
        if groups and len(key) <= 4:  # a number of 1-3 digits, then groups of three
            grouped_to = groups.end()
            number = _reference_number(key[1:] + re.sub(r"\s", "", groups[0]))
            if not _reference_stamp(text, start, grouped_to, number):
                found[number] = STRONG
            continue
        if key[0] == "@":
            at = m.start()
            glued = at < 2 or not text[at - 1].isspace()
            glued = glued or not (text[at - 2].isalpha() or text[at - 2] in ".:")
            before = [] if glued else text[:at].split()
            if before and before[-1].strip(_REF_PUNCT).lower() in _POSITION_WORDS:
                key = before[-1].strip(_REF_PUNCT).lower() + " " + key[1:]
                if not _reference_stamp(text, start, m.end(), key):
                    found[key] = STRONG
            continue
        if key[0] == "#":
            key = key[1:]
        if not _reference_stamp(text, start, m.end(), key):
            found[key] = STRONG
    return found


def _reference_counted(text: str, start: int) -> bool:
    """Whether the number at ``start`` comes right after a counter word."""
    before = text[start - 24 if start > 24 else 0 : start].split()
    return bool(before) and before[-1].strip(_REF_PUNCT).lower() in _COUNTER_WORDS


_REF_KEYS = "|".join(sorted(_STAMP_KEYS))
_REF_KEY_WORD = re.compile(
    rf"(?:.*[-_])?(?:{_REF_KEYS})(?:[-_](?:{'|'.join(sorted(_KEY_SUFFIXES))}))?"
)


def _reference_after_key(text: str, start: int) -> bool:
    """Whether a word naming a stamp comes before ``start``, only suffixes, connectors,
    numbers and punctuation between (up to five words, within 48 characters)."""
    words = [w[0] for w in re.finditer(r"\S+", text[:start]) if w.start() >= start - 48]
    for raw in words[::-1][:5]:
        word = raw.strip("\"'([{:=#@,").lower()
        if word == "":
            continue
        if _REF_KEY_WORD.fullmatch(word):
            return True
        if word in _KEY_SUFFIXES or word in _CONNECTORS:
            continue
        if re.fullmatch(r"[\d.,]+", word) and re.search(r"\d", word):
            continue
        return False
    return False


def _reference_stamp(text: str, start: int, end: int, key: str) -> bool:
    """Whether the fact ``key`` at ``text[start:end]`` is a stamp by what surrounds it."""
    if _reference_after_key(text, start):
        return True
    after = _STAMP_AFTER.match(text[end:]) if key[0].isdigit() else None
    return after is not None and (after[1] is None or bool(_DATE.fullmatch(key)))


def _reference_number(digits: str) -> str:
    """A number normalised: thousands separators out, zeros ending its decimals out."""
    whole, dot, decimals = digits.partition(".")
    if re.fullmatch(r"\d{1,3}(,\d{3})+|\d{1,3}(_\d{3})+|\d+", whole) is None or (
        dot and not decimals.isdigit()
    ):
        return digits
    whole = whole.replace(",", "").replace("_", "")
    decimals = decimals.rstrip("0")
    return f"{whole}.{decimals}" if decimals else whole


def _reference_plain_quote(text: str, start: int) -> bool:
    if start and (text[start - 1].isalnum() or text[start - 1] in ".!?;"):
        return True
    before = text[:start].rstrip(" \t\r\n")
    return bool(before) and before[-1] in "{[,:" and ("{" in before or "[" in before)


def _reference_classify(token: str) -> str:
    token = token.rstrip(".,:;/-#+")
    if (token.startswith("_") or token.endswith("_")) and not token.startswith("__"):
        token = token.strip("_").rstrip(".,:;/-#+")
        if not token or token.isalpha():
            return ""
    if not token:
        return ""
    low = token.lower()
    if (_SHORT_COUNTER.fullmatch(low) or _CLOCK.match(low)) and low[-1] != "%":
        return "@" + low if low.isdigit() else ""
    if "=" in low and _REF_KEY_WORD.fullmatch(low[: low.rindex("=")].strip("\"'([{:=#@,")):
        return ""
    if low[0].isdigit() and low[-1] == "%":
        low = low.rstrip("%")
    if low[0].isdigit() and low.replace(",", "").replace(".", "").replace("_", "").isdigit():
        if _EPOCH.fullmatch(low):
            return ""
        number = _reference_number(low)
        return ("@" if re.fullmatch(r"\d{1,2}", number) else "#") + number
    if _ELAPSED.fullmatch(low) or _UUID.fullmatch(low) or _HEX.fullmatch(low):
        return ""
    if _STAMP_NAME.fullmatch(low):
        return ""
    if len(token) >= 20 and _NONCE.fullmatch(token) and not re.fullmatch("[0-9a-fA-F]+", token):
        classes = [
            1 if c.isdigit() else 2 if c.isupper() else 3 if c.islower() else 4 for c in token
        ]
        switches = 1 + sum(a != b for a, b in itertools.pairwise(classes))
        if switches * 4 >= len(token):
            return ""
    return low


# -- generated texts -------------------------------------------------------------------

_WORDS = st.sampled_from(
    [
        "the", "and", "see", "sent", "to", "asked", "for", "at", "is", "it's", "über",
        "naïve", "café", "счёт", "λόγος", "了", "attempt", "round", "version", "retry",
        "v3", "#4", "4th", "r12", "no", "x2", "2.", "Attempt", "Round",
    ]
)  # fmt: skip
_NAMES = st.sampled_from(
    ["Maria", "JSON", "Émile", "Øyvind", "Иван", "Ωmega", "RFC", "McDonald", "O'Neil", "X"]
)
_TOKENS = st.sampled_from(
    [
        "INV-2024-0042", "4711", "3.5%", "1,250.00", "a1b2c3", "get_param", "rfc2183.",
        "text/plain", "/srv/data/x.csv", "ops@example.com", "https://ex.am/p?q=1&r=2#f",
        "12:03:07", "2024-05-01T12:03:07Z", "2024-05-01 12:03", "7", "42", "99.", "100",
        "3-tuple", "x/", "and/", "_private", "__dunder__", "a.b.c", "v1.2.3", "٣٤٥",
        "१२३", "ⅷ", "²", "12h", "0x1F", "1e-9", "-5", "+49", "#", "@", "/", "_",
        "_please_", "_v9_", "you._", "4_", "_x1_", "__", "_a_b_", "_Maria",
        "550e8400-e29b-41d4-a716-446655440000", "9f3a8b7c6d5e4f30", "1765141387", "231ms",
        "aGVsbG8gd29ybGQgZm9v", "714,025", "714_025", "714025.00", "12.30%", "025", "ms",
        "s", "request_id=", "trace", "latency", "tokens in", "X-Request-ID:", "2026-11-05",
        "4bf92f3577b34da6a3ce929d0e0e4736abcdef12",
    ]
)  # fmt: skip
_QUOTED = st.tuples(
    st.sampled_from(['"', "“", "«", "`", "'", "”", "»"]),
    st.text(alphabet=st.sampled_from("ab Cd\n\t'\"`é1_-"), max_size=90)
    | st.text(alphabet=st.sampled_from("ab Cd'\"`1_-"), max_size=12),
    st.sampled_from(['"', "”", "»", "`", "'", "“", ""]),
).map("".join)
_PUNCT = st.sampled_from(
    [" ", " ", " ", "  ", "\n", "\t", ", ", ". ", "(", ")", "[", "]", "<", ">", "*", ":", ";",
     "-", "'", '"', "“", "”", "«", "»", "`", "!", "?", "/", "_", "@", "#", "+", "\u00a0"]
)  # fmt: skip
# JSON bodies: quotes after { [ , : are syntax (the string's facts are its text's)
_JSON = st.sampled_from(
    ['{"note": "', '", "', '": "', '"}', '{"items": ["', '"]', "[", "{", ", ", ": "]
)
_ASCII_ODD = st.sampled_from(["\x1c", "\x1d", "\x1e", "\x1f", "\x0b", "\x0c", "\r", "\x85"])
_PIECE = st.one_of(_WORDS, _NAMES, _TOKENS, _QUOTED, _PUNCT, _JSON, _ASCII_ODD, st.text(max_size=6))
# Half the texts are ASCII only (they take the ASCII pattern), with the ASCII separators that
# ``\s`` matches and ``[ \t\n\r\f\v]`` does not.
_ASCII_PIECE = _PIECE.filter(str.isascii)
texts = st.one_of(
    st.lists(_PIECE, max_size=120).map("".join),
    st.lists(_ASCII_PIECE, max_size=120).map("".join),
)


@settings(max_examples=1500, deadline=None)
@given(texts, st.sampled_from([1_000, 1_000, 40, 7, 200]))
@example("Attempt 4: invoice INV-2024-0042 for 1,250.00 EUR, sent to Maria at ops@example.com, "
         'status "on hold" (v3, 12:03:07).', 1_000)  # fmt: skip
@example("x" * 60 + "abc_def 42 then a" + "y" * 45 + "_z", 1_000)
@example("see get_param and get_param, then 'quoted value' and `code` «guillemets»", 1_000)
@example("a\x1c'quoted value' and\x1f'another one'", 1_000)
@example("café\x85'quoted value' and\x1c'another one'", 1_000)
@example("see 'ab'c and 'cd' e, (`x1`y) [\"q r\"s]", 1_000)
@example('{"note": "Runde 2", "items": ["INC-49490 is new.", "Pay 80,157 EUR"]}', 1_000)
@example('{"items": ["' + "a long sentence " * 6 + '", "attempt": 3}', 1_000)
@example("## v10\n- INC-49490 holds.\n\n_Please look again. For you._ _v9_ __init__", 1_000)
def test_facts_match_the_reference(text: str, max_chars: int) -> None:
    head = readable(text, max_chars)
    want = list(reference_facts(head).items())
    assert list(_facts._scan(head).items()) == want
    got = facts(text, max_chars)
    assert list(got.items()) == want
    got.clear()  # the caller's copy: the text's remembered facts are not touched
    assert list(facts(text, max_chars).items()) == want


_WHITESPACE = " \t\n\r\f\v"
_REF_OPENER = re.compile(r"[\"“«`]|(?<=[\s(\[])'")


def _clean_cut(text: str, at: int) -> bool:
    """Whether ``text[:at]`` ends where no fact can be cut (the definition, checked the
    slow way): the end of the text, a line break, or a whitespace or a quote character
    with nothing that could open a quoted value in the 82 characters of its line before."""
    if at in (0, len(text)) or text[at] == "\n":
        return True
    if text[at] not in _WHITESPACE and not _REF_OPENER.match(text, at):
        return False
    if text[at - 1].isdigit() and (
        _REF_GROUPS.match(text, at) or _STAMP_AFTER.match(text, at)
    ):  # a number whose digit groups, time unit or time of day come next
        return False
    line = text.rfind("\n", 0, at) + 1
    return not any(_REF_OPENER.match(text, i) for i in range(max(line, at - 82), at))


_LONG_PIECE = st.one_of(_PIECE, _PIECE, st.sampled_from(["\n", " ", "x" * 30, "INV-2024-0042"]))
long_texts = st.lists(_LONG_PIECE, min_size=20, max_size=300).map("".join)


@settings(max_examples=1500, deadline=None)
@given(long_texts | texts, st.integers(1, 700))
@example("id INV-2024-0042 done", 14)
@example("x " * 600 + "INV-2024-0042 next", 1_000)
@example('said "the order INV-1 is on hold" today', 30)
@example("a " * 40 + "('quoted INV-7 here') and more", 90)
def test_a_cut_never_invents_a_fact(text: str, max_chars: int) -> None:
    """What ``facts`` reads of a long text is a head of it, at most ``max_chars`` long,
    ending where no token or quoted value is cut; the longest such head unless quotes are
    too dense to find one (then it ends before them). And every fact found in it is a
    fact of the whole text with the same weight (the reference reading all of it): a cut
    never turns a piece of an identifier or a quote into a fake fact."""
    head = readable(text, max_chars)
    assert text.startswith(head)
    assert len(head) <= max_chars
    assert _clean_cut(text, len(head))
    if len(text) <= max_chars:
        assert head == text
    else:
        longest = max(at for at in range(max_chars + 1) if _clean_cut(text, at))
        skipped = sum(1 for _ in _REF_OPENER.finditer(text, len(head), longest))
        assert len(head) == longest or skipped >= _MOVES
    whole = reference_facts(text)
    for fact, weight in facts(text, max_chars).items():
        assert whole.get(fact) == weight, fact


@settings(max_examples=300, deadline=None)
@given(st.lists(texts, min_size=1, max_size=8))
def test_the_token_cache_does_not_change_facts(batch: list[str]) -> None:
    """Tokens are classified once and texts read once, cached across calls (bounded): the
    facts of a text are the same whatever was read before it, and after the caches are
    cleared."""
    first = [facts(t) for t in batch]
    _facts._KNOWN.clear()
    _facts._BY_TEXT.clear()
    again = [facts(t) for t in reversed(batch)][::-1]
    assert [list(f.items()) for f in first] == [list(f.items()) for f in again]
    assert [list(f.items()) for f in first] == [list(reference_facts(t).items()) for t in batch]


# -- JSON escapes --------------------------------------------------------------------------

_json_values = st.recursive(
    st.text() | st.integers() | st.none(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(_json_values)
@example({"items": ["Prüfung von capítulo 4", "\\u00fc", "😀 “x”"]})
def test_json_escapes_read_as_the_characters_they_stand_for(value: object) -> None:
    """A JSON body written with ``json.dumps`` (non-ASCII escaped) reads exactly like the
    same body written with ``ensure_ascii=False``: the same text once unescaped, the same
    facts (a word with an accent is no token with digits, "cap\\u00edtulo 4" a position)."""
    import json

    escaped, plain = json.dumps(value), json.dumps(value, ensure_ascii=False)
    assert _facts.unescape(escaped) == plain
    assert facts(escaped) == facts(plain)


# -- positions -----------------------------------------------------------------------------

_NOT_POSITIONS = st.sampled_from([*sorted(_COUNTER_WORDS), "days", "Stand", "Durchlauf", "in"])


@settings(max_examples=300, deadline=None)
@given(
    texts,
    st.sampled_from(sorted(_POSITION_WORDS)),
    _NOT_POSITIONS,
    st.integers(0, 99),
    st.sampled_from(["", ".", ":", ","]),
)
def test_a_small_number_is_a_fact_only_as_a_position(
    text: str, position: str, other: str, n: int, punct: str
) -> None:
    """``chapter 4`` (any position word, any case) is the fact "chapter 4"; ``attempt 4``,
    ``Runde 4``, ``in 4``: the number brings no fact, whatever text it stands in."""
    said = f"{text} {position.capitalize()} {n}{punct} and"
    assert f"{position} {n}" in facts(said)
    assert facts(f"{text} {other} {n}{punct} and") == facts(f"{text} {other}{punct} and")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=3_000), min_size=1, max_size=40))
def test_the_text_cache_holds_a_bounded_number_of_characters(batch: list[str]) -> None:
    for text in batch:
        facts(text * 7)
        assert sum(map(len, _facts._BY_TEXT)) == _facts._BY_TEXT_HELD[0]
        assert _facts._BY_TEXT_HELD[0] <= _facts._BY_TEXT_CHARS
        assert len(_facts._BY_TEXT) <= _facts._BY_TEXT_MAX


_ESCAPES = st.sampled_from(["\\u00fc", "\\u00e9", "\\ud83d\\ude00", "\\u0022", "\\\\", "\\u4e2d"])
_ESCAPED_PIECE = st.one_of(_ESCAPES, _ESCAPES, _ESCAPES, _TOKENS, st.just(" "), _PIECE)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ESCAPED_PIECE, max_size=400).map("".join), st.integers(1, 60))
@example("\\u00fc" * 8 + " INV-2024-0042 " + "x" * 150, 25)
@example("\\u4e2d" * 24 + "\\ud83d\\ude00 7z " + "x" * 150, 26)
def test_a_long_text_is_cut_before_it_is_unescaped_without_changing_its_facts(
    text: str, max_chars: int
) -> None:
    """``facts`` cuts a text longer than six times ``max_chars`` before unescaping it (an
    escape is six characters for one), so an enormous message costs no more than its head;
    the facts are those of the whole text unescaped, then cut."""
    assert facts(text, max_chars) == _facts._scan(readable(_facts.unescape(text), max_chars))


# -- machine stamps and numbers ------------------------------------------------------------


def _stamp_text(rnd: random.Random, shape: int) -> str:
    """One machine stamp of ``shape``, minted by ``rnd`` (a machine's own randomness)."""
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rnd.randrange(10**8))
    uid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
    hex16 = f"{rnd.getrandbits(64) | 1 << 63:016x}"
    key = base64.b64encode(rnd.randbytes(18)).decode()
    n = rnd.randrange(1, 100_000)
    return [
        f"[{when.isoformat()}]",
        f"{when:%Y-%m-%d %H:%M:%S}",
        f"{when:%a, %d %b %Y %H:%M:%S} GMT",
        f"{when:%d.%m.%Y %H:%M}",
        f"request_id={uid}",
        f"X-Request-ID: {uid}",
        f"correlation id {uid[:18]}",
        uid,
        f"trace {hex16} span {hex16[:8]}",
        f"traceparent: 00-{rnd.getrandbits(128):032x}-{hex16}-01",
        f"nonce: {key}",
        key,
        f"@ {int(when.timestamp())}",
        f"ts={int(when.timestamp() * 1000)}",
        f"latency {n} ms",
        f"took {n / 1000:.2f} s",
        f"{n}ms",
        f'{{"elapsed_ms": {n}, "request_id": "{uid}"}}',
        f"tokens in {n} out {n // 7 + 100}",
        f"usage: prompt_tokens={n}, completion_tokens={n // 3 + 100}",
        f"msg #{n}",
        f"run-id: {uid}",
        f"duration={n / 100:.1f}s",
    ][shape]


_STAMP_SHAPES = 23
_LOOP_LINES = st.sampled_from(
    [
        "Invoice INV-2024-0042 is still on hold, please check again.",
        "No news on INV-2024-0042: Maria has not signed off the 1,250.00 EUR.",
        "Still waiting for PO-7781 before INV-2024-0042 can move.",
        'Status of INV-2024-0042 remains "on hold", sending it back.',
        "see /srv/data/x.csv and ops@example.com, attempt 4, same problem",
        "| region | revenue |\n|---|---:|\n| North | 714025 |\n| South | 12.5% |",
    ]
)
_SEPARATORS = st.sampled_from([" ", "\n", "\n\n-- ", " | ", " (", ") ", ", "])


@settings(max_examples=400, deadline=None)
@given(
    _LOOP_LINES,
    st.lists(st.tuples(st.integers(0, _STAMP_SHAPES - 1), _SEPARATORS), min_size=1, max_size=4),
    st.integers(0, 2**32),
    st.sampled_from(["front", "end", "both"]),
)
def test_machine_stamps_add_no_fact(
    line: str, stamps: list[tuple[int, str]], seed: int, where: str
) -> None:
    """A loop message with fresh machine stamps (timestamps in several formats, UUIDs and
    their prefixes, request, trace, span and correlation ids, nonces, epoch times,
    latencies, durations, token counts, message numbers), at its front, its end or both,
    has exactly the facts of the message without them: a round whose only change is its
    stamps is not news."""
    rnd = random.Random(seed)
    parts = [sep + _stamp_text(rnd, shape) + sep for shape, sep in stamps]
    if where == "front":
        text = "".join(parts) + "\n" + line
    elif where == "end":
        text = line + "\n" + "".join(parts)
    else:
        text = parts[0] + " " + line + "\n" + "".join(parts[1:])
    assert set(facts(text)) == set(facts(line))


def _formats(n: int, cents: int) -> list[str]:
    """``n`` (and ``n + cents / 100``) written the ways a table may write it."""
    grouped = f"{n:,}"
    out = [str(n), grouped, grouped.replace(",", "_"), grouped.replace(",", " "),
           grouped.replace(",", "\u202f"), grouped.replace(",", "\u00a0"), f"{n}.00", f"{n}.0",
           f"{grouped}.00"]  # fmt: skip
    if cents:
        out = [f"{n}.{cents:02d}", f"{grouped}.{cents:02d}", f"{n}.{cents:02d}0"]
    return out


@settings(max_examples=400, deadline=None)
@given(st.integers(100, 10**9 - 1), st.integers(0, 99), st.data())
def test_a_number_is_one_fact_however_it_is_written(
    n: int, cents: int, data: st.DataObject
) -> None:
    """A number written with or without thousands separators (comma, underscore, space,
    thin or no-break space), with zero decimals or a percent sign, is one fact, the same
    in a sentence, a markdown table cell, a CSV field or a JSON value; and another number
    is another fact in any of those forms."""
    if n >= 1_500_000_000:  # (not an epoch time: those are stamps)
        n %= 1_500_000_000
    written = data.draw(st.sampled_from(_formats(n, cents)))
    other = data.draw(st.sampled_from(_formats(n + 1, cents)))
    template = data.draw(
        st.sampled_from(
            ["Revenue of North is {} EUR.", "| North | {} | 4 |", "North;{};4", '{{"revenue": "{}"}}',
             '{{"revenue": {}}}', "- North: revenue {}, units 4", "margin {}%"]
        )
    )  # fmt: skip
    want = f"{n}.{cents:02d}".rstrip("0") if cents else str(n)
    got = facts(template.format(written))
    assert want in got, (written, got)
    assert set(got) <= {want, "north", "revenue"}
    assert set(facts(template.format(other))).isdisjoint({want})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, _STAMP_SHAPES - 1), min_size=1, max_size=3), st.integers(0, 2**32))
def test_real_news_next_to_stamps_is_still_news(shapes: list[int], seed: int) -> None:
    """Fresh ticket ids, amounts, short commit hashes, digests, dates alone and European
    numbers stay facts when stamps surround them."""
    rnd = random.Random(seed)
    ticket = f"INC-{rnd.randrange(10**5)}"
    amount = f"{rnd.randrange(10**3, 10**6):,}.{rnd.randrange(1, 100):02d}".rstrip("0")
    # (a short hash of letters only, "ccebedf", is a word: not a fact, as documented)
    short = f"{rnd.getrandbits(24) | 1 << 23:06x}{rnd.randrange(10)}"
    digest = f"{rnd.getrandbits(160) | 1 << 159:040x}"
    due = f"2027-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}"
    stamps = " ".join(_stamp_text(rnd, s) for s in shapes)
    text = (
        f"{stamps}\nOpened {ticket} for {amount} EUR, fixed in commit {short} "
        f"(digest {digest}), due {due}, total 714.025 units.\n{stamps}"
    )
    got = facts(text)
    for fact in (ticket.lower(), amount.replace(",", ""), short, digest, due, "714.025"):
        assert fact in got, (fact, got)
