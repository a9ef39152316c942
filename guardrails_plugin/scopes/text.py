"""Free text (a message body, a post, a document): every link and address in it must pass.

Phishing puts an attacker's link into an otherwise ordinary message to an ordinary person;
no scope on the recipient sees it. ``Text(urls=Urls([...]), emails=Emails(...))`` finds
every URL and email address in the text with linkify-it-py (a port of linkify-it, the link
finder markdown-it and many renderers use: bare domains against the full IANA TLD list,
``www.`` names, ``scheme://`` and ``//`` links, markdown and angle-bracket links,
``mailto:`` and bare addresses), plus every absolute or ``//`` target of an HTML ``href``,
``src`` or ``action`` attribute, and judges each with the given scope. A
kind with no scope allows none: ``Text(urls=None)`` refuses any link.

The text is read several ways, and every link found in any reading must pass (fail closed):

- as written;
- with HTML character references decoded (``https&#58;//evil.com``);
- NFKC-normalized, with invisible format characters removed (zero-width spaces and
  joiners, bidi controls, the soft hyphen: ``evil\\u200b.com`` reads ``evil.com``) and the
  dots IDNA maps to ``.`` mapped (``evil\\u3002com``);
- the decoded and the normalized readings again with a space before every scheme name
  glued to a word (``Clickhttps://evil.com`` is not found otherwise).

A link holding an invisible format character (category Cf: zero-width, joiners, bidi
controls) is refused outright: clients drop some of them from a host and renderers
punycode them, so what is shown and what is opened can differ.

A link whose characters change under NFKC (full-width letters, compatibility forms) is
refused in every reading: WHATWG clients fold full-width ``example.com`` to ``example.com``, but
markdown-it's renderer punycodes it as written, so what is shown and what is opened differ.

Bare domains are judged as ``https://<domain>`` (or the URL scope's ``default_scheme``),
scheme-relative ``//host`` links likewise, and addresses by the ``Emails`` rules (so a
quoted local part or an IP-literal domain is refused). Links the link finder does not
recognize at all (a defanged ``hxxp://evil[.]com``, ``evil (dot) com``, a domain under a
TLD not in its list, a spelled-out address) are not links a client follows, and pass; a
person reading them can still be misled. Texts longer than ``max_length`` characters are
refused as unreadable rather than scanned.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from collections.abc import Iterator, Mapping
from html.parser import HTMLParser
from typing import Any

from ._base import Scope, ScopeError, ScopeViolation
from ._text import describe, preview
from .emails import Emails
from .urls import Urls

__all__ = ["Text", "links_in"]

_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_GLUED_SCHEME = re.compile(
    r"(?i)(?<=[^\s<(\[\"'=])(https?|ftps?|wss?|mailto|file|data|javascript):"
)
_MAILTO = re.compile(r"(?i)^mailto:")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_SCHEME_START = re.compile(r"(?i)(?:https?|ftps?|wss?)://")
_TARGETS = frozenset({"href", "src", "action", "formaction"})
_LINKIFY: Any = None
_CACHED_LENGTH = 4096


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


def _readings(text: str) -> Iterator[str]:
    """The text as written, then each other reading that differs from those before."""
    seen = {text}
    yield text
    decoded = html.unescape(text) if "&" in text else text
    normalized = unicodedata.normalize("NFKC", decoded)
    normalized = "".join(c for c in normalized if unicodedata.category(c) != "Cf")
    normalized = normalized.translate(_DOTS)
    split_raw = _GLUED_SCHEME.sub(r" \1:", decoded)
    split = _GLUED_SCHEME.sub(r" \1:", normalized)
    for reading in (decoded, normalized, split_raw, split):
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


class _Targets(HTMLParser):
    """The ``href``, ``src`` and ``action`` values of the HTML tags in a text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [v.strip() for k, v in attrs if k in _TARGETS and v]


def _html_targets(text: str) -> Iterator[tuple[str, str]]:
    """Link targets of HTML tags, which the link finder misses when they are not a domain
    under a known TLD (``<a href="//intranet">``); relative targets lead nowhere in a
    message and are skipped."""
    parser = _Targets()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # html.parser is lenient; anything it raises, fail closed
        yield ("?", text[:200])
        return
    for target in parser.found:
        if target.startswith("//"):
            yield ("//", target)
        else:
            scheme = _SCHEME.match(target)
            if scheme is not None:
                yield (scheme.group(0).lower(), target)


def _links(text: str) -> tuple[tuple[str, str], ...]:
    finder = _linkify()
    found: dict[tuple[str, str], None] = {}
    if "<" in text:
        found.update(dict.fromkeys(_html_targets(text)))
    for reading in _readings(text):
        # as markdown-it's linkify rule does: a link starting at every "scheme://", even
        # where the whole-text scan reads the characters before it as part of something else
        for start in _SCHEME_START.finditer(reading):
            at = finder.match_at_start(reading[start.start() :])
            if at is not None:
                found[(str(at.schema).lower(), str(at.raw))] = None
        if not finder.test(reading):
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
        _linkify()  # fail at load time, not at the first call, if the finder is missing

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
            address = _MAILTO.sub("", raw).partition("?")[0]
            try:
                self._emails.check(address)
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
