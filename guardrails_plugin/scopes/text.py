"""Free text (a message body, a post, a document): every link and address in it must pass.

Phishing puts an attacker's link into an otherwise ordinary message to an ordinary person;
no scope on the recipient sees it. ``Text(urls=Urls([...]), emails=Emails(...))`` finds
every URL and email address in the text and judges each with the given scope. A kind with
no scope allows none: ``Text(urls=None)`` refuses any link. Links are found three ways, and
every link any of them finds must pass (fail closed):

- **Prose**, with linkify-it-py (a port of linkify-it, the link finder markdown-it and many
  renderers use: bare domains against the full IANA TLD list, ``www.`` names,
  ``scheme://`` and ``//`` links, ``mailto:`` and bare addresses), in several readings of
  the text: as written; with HTML character references decoded (``https&#58;//evil.com``);
  with CommonMark backslash escapes removed (``https\\://evil.com``); NFKC-normalized, with
  invisible format characters removed (zero-width spaces and joiners, bidi controls, the
  soft hyphen: ``evil\u200b.com`` reads ``evil.com``) and the dots IDNA maps to ``.``
  mapped (``evil\u3002com``); and with a space before every scheme name glued to a word
  (``Clickhttps://evil.com``). A ``mailto:`` URL is read to the end of its query.
- **Markdown**, when the text holds a ``[`` or a ``<`` (no Markdown link can be written
  without one): every link, image and reference definition markdown-it-py (a CommonMark
  parser) makes of it, with raw HTML passed through and escaped (``_links.py``), so backslash-escaped, entity-encoded, angle-bracketed and
  reference-style destinations are read as the renderer reads them.
- **HTML**, when the text holds a ``<``: every URL-valued attribute (``href``, ``src``,
  ``action``, ``formaction``, ``poster``, ``data``, ``cite``, ``background``, ...),
  ``srcset`` candidates, ``<meta http-equiv=refresh>`` targets, ``srcdoc`` and CSS
  ``url(...)``, read with ``html.parser`` and a tolerant second scan, then as a browser
  reads a URL attribute: C0 controls and spaces around stripped, tabs and line breaks
  inside removed, ``\\`` read as ``/`` (``_links.py``). Relative targets stay on the page
  showing the message and are skipped.

A ``mailto:`` link passes when every recipient in it does: the comma-separated,
percent-decoded addresses of its path and of each ``to``, ``cc`` and ``bcc`` field (any
case), each judged by ``emails`` as a header value is.

A link holding an invisible format character (category Cf: zero-width, joiners, bidi
controls) is refused outright: clients drop some of them from a host and renderers
punycode them, so what is shown and what is opened can differ.

A link whose characters change under NFKC (full-width letters, compatibility forms) is
refused in every reading: WHATWG clients fold full-width ``example.com`` to ``example.com``, but
markdown-it's renderer punycodes it as written, so what is shown and what is opened differ.

Bare domains are judged as ``https://<domain>`` (or the URL scope's ``default_scheme``),
scheme-relative ``//host`` links likewise, and addresses by the ``Emails`` rules (so a
quoted local part or an IP-literal domain is refused). Links no reading recognizes at all
(a defanged ``hxxp://evil[.]com``, ``evil (dot) com``, a bare domain under a TLD not in the
list, a spelled-out address) are not links a client follows, and pass; a person reading
them can still be misled. A percent-encoded ``@`` reads as part of a bare domain
(``b%40example.com`` holds ``40example.com``), as a renderer's linkify reads it, so such an
address is refused even inside. Texts longer than ``max_length`` characters are refused as
unreadable rather than scanned.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

from ._base import Scope, ScopeError, ScopeViolation
from ._links import html_targets, mailto_recipients, markdown_parser, markdown_targets
from ._text import describe, preview
from .emails import Emails
from .urls import Urls

__all__ = ["Text", "links_in"]

_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_GLUED_SCHEME = re.compile(
    r"(?i)(?<=[^\s<(\[\"'=])(https?|ftps?|wss?|mailto|file|data|javascript):"
)
_MAILTO = re.compile(r"(?i)^mailto:")
_MAILTO_RUN = re.compile(r"""(?i)mailto:[^\s<>"'`]+""")
_SCHEME_START = re.compile(r"(?i)(?:https?|ftps?|wss?)://")
_ADDRESS_TAIL = re.compile(r"[\w!#$%&'*+\-/=?^`{|}~.]*@[^@]*\Z")
_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_LINKIFY: Any = None
_CACHED_LENGTH = 4096
_ASCII_SYMBOL = re.compile(r"[$+<=>^`|~]")  # the ASCII characters of category S


def _linkify() -> Any:
    """The link finder (built once: compiling its patterns takes milliseconds)."""
    global _LINKIFY
    if _LINKIFY is None:
        try:
            from linkify_it import LinkifyIt
            from linkify_it.tlds import TLDS
        except ImportError as exc:  # pragma: no cover - the extra is not installed
            raise ScopeError(
                "the text scope needs linkify-it-py: pip install 'guardrails-plugin[text]'"
            ) from exc
        _LINKIFY = LinkifyIt().tlds(TLDS, True)
    return _LINKIFY


def _may_hold_links(finder: Any, reading: str) -> bool:
    """Whether linkify-it's full match must run on ``reading``: its quick test is stricter
    than the match, which also finds a domain next to a symbol (Unicode category S:
    ``intranet.io<style>``, ``to=.io``, ``example^.com``), so a text holding a symbol is
    always matched; plain prose without one keeps the quick test's speed."""
    if finder.test(reading) or _ASCII_SYMBOL.search(reading) is not None:
        return True
    return not reading.isascii() and any(
        c > "\x7f" and unicodedata.category(c).startswith("S") for c in set(reading)
    )


def _address_tail(raw: str) -> str:
    found = _ADDRESS_TAIL.search(raw)
    return raw if found is None or found.start() == 0 else found.group(0)


def _readings(text: str) -> Iterator[str]:
    """The text as written, then each other reading that differs from those before."""
    seen = {text}
    yield text
    decoded = html.unescape(text) if "&" in text else text
    # CommonMark's backslash escapes of ASCII punctuation (https\://evil.com)
    unescaped = _BACKSLASH_ESCAPE.sub(r"\1", decoded) if "\\" in decoded else decoded
    normalized = unicodedata.normalize("NFKC", unescaped)
    normalized = "".join(c for c in normalized if unicodedata.category(c) != "Cf")
    normalized = normalized.translate(_DOTS)
    split_raw = _GLUED_SCHEME.sub(r" \1:", unescaped)
    split = _GLUED_SCHEME.sub(r" \1:", normalized)
    for reading in (decoded, unescaped, normalized, split_raw, split):
        if reading not in seen:
            seen.add(reading)
            yield reading


def links_in(text: str) -> tuple[tuple[str, str], ...]:
    """Every link found in any reading of ``text``, as ``(schema, raw text)`` pairs, in order
    of first appearance: schema ``"mailto:"`` for addresses, ``""`` for a bare domain,
    ``"//"`` for a scheme-relative link, else the scheme (``"https:"``).

    linkify-it-py takes about a millisecond per short text that holds a link (a tenth of
    that for one that holds none), so short texts' answers are cached."""
    if len(text) <= _CACHED_LENGTH:
        return _links_cached(text)
    return _links(text)


def _links(text: str) -> tuple[tuple[str, str], ...]:
    finder = _linkify()
    found: dict[tuple[str, str], None] = {}
    if "<" in text or "[" in text:  # no Markdown link, image or HTML tag without either
        found.update(dict.fromkeys(markdown_targets(text)))
    for n, reading in enumerate(_readings(text)):
        if n < 2 and "<" in reading:  # the text as written, and with references decoded
            found.update(dict.fromkeys(html_targets(reading)))
        # a mailto URL's whole query (cc, bcc), which the link finder stops short of
        for run in _MAILTO_RUN.finditer(reading):
            found[("mailto:", run.group(0).rstrip(".,;:!?)]}"))] = None
        # as markdown-it's linkify rule does: a link starting at every "scheme://", even
        # where the whole-text scan reads the characters before it as part of something else
        for start in _SCHEME_START.finditer(reading):
            at = finder.match_at_start(reading[start.start() :])
            if at is not None:
                found[(str(at.schema).lower(), str(at.raw))] = None
        if not _may_hold_links(finder, reading):
            continue
        for match in finder.match(reading) or ():
            found[(str(match.schema).lower(), str(match.raw))] = None
    return tuple(found)


_links_cached = functools.lru_cache(maxsize=1024)(_links)


def _scope_setting(value: object, cls: type[Scope], setting: str) -> Scope | None:
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        try:
            return cls(**dict(value))
        except TypeError as exc:
            raise ScopeError(f"{setting}: bad settings for {cls.__name__}: {exc}") from exc
    raise ScopeError(
        f"{setting} must be a {cls.__name__} (or its settings, or None), found {describe(value)}"
    )


class Text(Scope):
    """Free text whose every URL passes ``urls`` and every email address passes ``emails``.

    ``None`` for either allows no link (or no address) at all. The value is a string, or a
    list of strings (each checked). See the module's docstring for how links are found.

    Example::

        >>> scope = Text(urls=Urls(["example.com", "*.example.com"]), emails=None)
        >>> scope.contains("Slides at https://docs.example.com/q3, see you Monday")
        True
        >>> scope.contains("Slides at [docs.example.com](https://evil.com/q3)")
        False
        >>> scope.contains("or write to bob@example.com")
        False
    """

    kind = "text"

    def __init__(
        self,
        urls: Urls | Mapping[str, Any] | None = None,
        emails: Emails | Mapping[str, Any] | None = None,
        max_length: int = 200_000,
    ) -> None:
        self._urls = _scope_setting(urls, Urls, "urls")
        self._emails = _scope_setting(emails, Emails, "emails")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ScopeError(f"max_length must be a positive integer, found {describe(max_length)}")
        self._max_length = max_length
        self._bare: Urls | None = None
        if isinstance(self._urls, Urls):
            spec = self._urls.spec()
            if "default_scheme" not in spec:
                schemes = spec["schemes"]
                spec["default_scheme"] = "https" if "https" in schemes else schemes[0]
            self._bare = Urls(**spec)
            self._bare_scheme: str = spec["default_scheme"]
        _linkify()  # fail at load time, not at the first call, if a parser is missing
        markdown_parser()

    def check(self, value: object) -> None:
        if isinstance(value, list | tuple):
            for item in value:
                self.check(item)
            return
        if not isinstance(value, str):
            raise ScopeViolation(f"expected text, found {describe(value)}", unreadable=True)
        if len(value) > self._max_length:
            raise ScopeViolation(
                f"text of {len(value):,} characters is longer than max_length "
                f"{self._max_length:,}; not scanned",
                unreadable=True,
            )
        for schema, raw in links_in(value):
            self._check_link(schema, raw)

    def _check_link(self, schema: str, raw: str) -> None:
        hidden = next((c for c in raw if unicodedata.category(c) == "Cf"), None)
        if hidden is not None:
            raise ScopeViolation(
                f"text holds the link {preview(raw)} with an invisible character "
                f"(U+{ord(hidden):04X})",
                unreadable=True,
            )
        if not raw.isascii() and unicodedata.normalize("NFKC", raw) != raw:
            raise ScopeViolation(
                f"text holds the link {preview(raw)}, whose characters change under Unicode "
                "normalization (full-width or compatibility forms): renderers and clients "
                "encode such a host differently",
                unreadable=True,
            )
        if schema == "?":
            raise ScopeViolation(f"cannot read the HTML in {preview(raw)}", unreadable=True)
        if schema == "mailto:":
            if self._emails is None:
                raise ScopeViolation(f"text holds the email address {preview(raw)}; none allowed")
            # a mailto URL: every recipient of its path and of its to, cc and bcc fields
            # (a bare address the finder read with markup before it, as in href="mailto:a@x,
            # is the address after that markup: the domain judged stays the same)
            fields = mailto_recipients(raw) if _MAILTO.match(raw) else [_address_tail(raw)]
            for field in fields or [""]:
                try:
                    self._emails.check(field)
                except ScopeViolation as exc:
                    raise ScopeViolation(
                        f"text holds an address outside: {exc.short}", allowed=exc.allowed
                    ) from None
            return
        if self._urls is None or self._bare is None:
            raise ScopeViolation(f"text holds the link {preview(raw)}; no links are allowed")
        try:
            if schema == "":
                self._bare.check(raw)
            elif schema == "//":
                self._bare.check(f"{self._bare_scheme}:{raw}")
            else:
                self._urls.check(raw)
        except ScopeViolation as exc:
            raise ScopeViolation(
                f"text holds a link outside: {exc.short}",
                unreadable=exc.unreadable,
                allowed=exc.allowed,
            ) from None

    def spec(self) -> dict[str, Any]:
        return {
            "urls": None if self._urls is None else self._urls.spec(),
            "emails": None if self._emails is None else self._emails.spec(),
            "max_length": self._max_length,
        }

    def within(self, other: Scope) -> bool:
        """Narrower when each kind of link it allows, ``other`` allows too, and it scans no
        longer texts."""
        if not isinstance(other, Text) or self._max_length > other._max_length:
            return False
        for mine, theirs in ((self._urls, other._urls), (self._emails, other._emails)):
            if mine is not None and (theirs is None or not mine.within(theirs)):
                return False
        return True
