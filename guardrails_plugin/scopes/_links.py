"""Link targets in Markdown and HTML, read the way a renderer and a browser read them.

The ``Text`` scope's link finder (linkify-it-py) sees links written out in prose. A message
is often rendered before a person clicks, and a renderer and a browser find links that
prose scanning does not:

- **Markdown** (CommonMark, as markdown-it-py parses it): inline links and images whose
  destination uses backslash escapes (``https:\\/\\/evil.com``), character references
  (``https&#58;//evil.com``, ``&#x68;ttps://``) or angle brackets, reference-style links
  and their definitions, autolinks. :func:`markdown_targets` takes every ``href`` and
  ``src`` markdown-it-py produces, after its own normalization (what the page will hold).
- **HTML** (``html.parser``, character references decoded): every URL-valued attribute
  (``href``, ``src``, ``action``, ``formaction``, ``poster``, ``data``, ``cite``,
  ``background``, ``xlink:href``, ...), every candidate of ``srcset`` / ``imagesrcset`` and
  every URL of ``ping`` / ``archive``, the target of ``<meta http-equiv=refresh
  content="0;url=...">`` and absolute URLs in any ``<meta content>``, the HTML inside
  ``srcdoc``, and CSS ``url(...)`` / ``@import`` in ``style`` attributes and elements. The
  same attributes are also found by a tolerant scan of ``name=value`` pairs, so a tag the
  stdlib parser reads differently from a browser (``<!-->`` comments, ``<a/href=...>``)
  still has its targets judged.
- **WHATWG URL preprocessing** (:func:`target`), as a browser applies it to an attribute
  before parsing: leading and trailing C0 controls and spaces stripped, every ASCII tab,
  line feed and carriage return removed (``ht&#9;tps://evil.com`` is ``https://evil.com``),
  and ``\\`` read as ``/`` (``/\\evil.com`` and ``\\\\evil.com`` lead to ``evil.com``).
  Relative targets (a path on the page that shows the message) are skipped.
- **mailto:** URLs (:func:`mailto_recipients`): the comma-separated, percent-encoded
  addresses of the path and of every ``to``, ``cc`` and ``bcc`` query parameter (names in any
  case, percent-encoded or not).
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote

from ._base import ScopeError

__all__ = [
    "css_targets",
    "html_targets",
    "mailto_recipients",
    "markdown_parser",
    "markdown_targets",
    "target",
]

_C0_AND_SPACE = "".join(chr(i) for i in range(0x21))
_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_URL_ATTRIBUTES = frozenset(
    {
        "href",
        "src",
        "action",
        "formaction",
        "poster",
        "data",
        "cite",
        "background",
        "longdesc",
        "lowsrc",
        "dynsrc",
        "manifest",
        "codebase",
        "icon",
        "profile",
        "usemap",
        "classid",
        "xlink:href",
        "to",  # SVG <set>/<animate attributeName="href" to="...">
        "from",
    }
)
_LIST_ATTRIBUTES = frozenset({"srcset", "imagesrcset", "ping", "archive", "values"})
_ATTRIBUTE_NAMES = "|".join(
    re.escape(n) for n in sorted(_URL_ATTRIBUTES | _LIST_ATTRIBUTES | {"srcdoc", "style"})
)
# a name=value pair anywhere after what can precede an attribute in a tag (space, "/", a
# quote), as the tolerant second reading of tags (not a URL's ?from=en:fr)
_ATTRIBUTE = re.compile(
    rf"""(?i)(?<=[\s/"'])({_ATTRIBUTE_NAMES})[\s/]*=[\s]*(?:"([^"]*)"?|'([^']*)'?|([^\s>]+))"""
)
_CONTENT = re.compile(r"""(?i)(?<=[\s/"'])content\s*=\s*(?:"([^"]*)"?|'([^']*)'?|([^\s>]+))""")
_CSS_URL = re.compile(r"""(?i)url\(\s*(?:"([^"]*)"|'([^']*)'|([^)\s]*))""")
_CSS_IMPORT = re.compile(r"""(?i)@import\s+(?:"([^"]*)"|'([^']*)')""")
_CSS_ESCAPE = re.compile(r"\\(?:([0-9A-Fa-f]{1,6})[ \t\n\r\f]?|(.))", re.DOTALL)
_KNOWN_SCHEMES = frozenset(
    {"http:", "https:", "ws:", "wss:", "ftp:", "mailto:", "javascript:", "data:", "file:"}
)
_SPECIAL = frozenset({"http:", "https:", "ws:", "wss:", "ftp:"})
_MAX_DEPTH = 3  # srcdoc inside srcdoc
PARSED_LENGTH = 10_000
"""Longest text (in characters) ``html.parser`` reads; longer ones get the tolerant scan."""


def target(value: str) -> tuple[str, str] | None:
    """A link target as a browser reads it, as ``(schema, target)``: ``"//"`` for a
    scheme-relative target (two slashes or backslashes), else the lower-case scheme with
    its colon (``"https:"``); ``None`` for a relative path, which stays on the page.

    ``target`` is the value after WHATWG preprocessing (see the module's docstring), with
    the slashes and backslashes after a web scheme (or at the start) written ``//``."""
    value = value.strip(_C0_AND_SPACE).translate(_TAB_NEWLINE)
    if value[:1] in ("/", "\\") and value[1:2] in ("/", "\\"):
        return ("//", "//" + value.lstrip("/\\"))
    scheme = _SCHEME.match(value)
    if scheme is None:
        return None
    name = scheme.group(0).lower()
    if name in _SPECIAL:
        # after a special scheme, any run of slashes and backslashes (none too) leads to the
        # host, as the WHATWG parser reads a URL without a base
        return (name, name + "//" + value[scheme.end() :].lstrip("/\\"))
    return (name, value)


def _list_values(value: str) -> Iterator[str]:
    """The URLs of a ``srcset`` (or ``ping``, or SVG animation ``values``) value, over-read:
    each whitespace-delimited run (a candidate's URL, trailing commas dropped, as the srcset
    parser reads it) and each piece of it between commas or semicolons."""
    for run in value.split():
        yield run.rstrip(",;")
        if "," in run or ";" in run:
            yield from (piece for piece in re.split("[,;]", run) if piece)


def _refresh_target(content: str) -> str:
    """The URL of a ``<meta http-equiv=refresh>`` ``content``, as the HTML standard's
    shared declarative refresh steps read it (``0; url='...'``, ``0,url=...``, ``0 ...``)."""
    ws = " \t\n\f\r"
    rest = content.lstrip(ws).lstrip("0123456789").lstrip("0123456789.").lstrip(ws)
    if rest[:1] in (";", ","):
        rest = rest[1:].lstrip(ws)
    if rest[:3].lower() == "url":
        after = rest[3:].lstrip(ws)
        if after[:1] == "=":
            rest = after[1:].lstrip(ws)
    if rest[:1] in ('"', "'"):
        rest = rest[1:].partition(rest[0])[0]
    return rest


class _Tags(HTMLParser):
    """The URL-valued attributes of the tags in a text, character references decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.meta: list[str] = []
        self.nested: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        refresh = tag == "meta" and any(
            k == "http-equiv" and (v or "").strip().lower() == "refresh" for k, v in attrs
        )
        for name, value in attrs:
            if value is None:
                continue
            if name in _URL_ATTRIBUTES:
                self.found.append(value)
            elif name in _LIST_ATTRIBUTES:
                self.found += _list_values(value)
            elif name == "srcdoc":
                self.nested.append(value)
            elif name == "content" and tag == "meta":
                if refresh:
                    self.found.append(_refresh_target(value))
                self.meta.append(value)


def _judged(value: str, *, meta: bool = False) -> Iterator[tuple[str, str]]:
    found = target(value)
    if found is None:
        return
    if meta and found[0] != "//" and found[0] not in _KNOWN_SCHEMES:
        return  # a description like "Note: ..." is not a link
    yield found


def html_targets(text: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    """Every absolute or scheme-relative link target of the HTML in ``text``, as
    :func:`target` reads it; ``("?", text)`` when the parser fails (fail closed).

    ``html.parser`` takes quadratic time on some texts (thousands of unclosed tags), so it
    reads texts of up to ``PARSED_LENGTH`` characters; the tolerant scan, which finds every
    attribute the parser would (and more), reads every text."""
    parser = _Tags()
    if len(text) <= PARSED_LENGTH:
        try:
            parser.feed(text)
            parser.close()
        except Exception:  # html.parser is lenient; anything it raises, fail closed
            yield ("?", text[:200])
            return
    for value in parser.found:
        yield from _judged(value)
    for value in parser.meta:
        yield from _judged(value, meta=True)
    # style attributes and elements (and any CSS-like text: read more, not less)
    yield from css_targets(html.unescape(text))
    yield from _tolerant(text, parser.nested)
    for m in _CONTENT.finditer(text):
        value = html.unescape(next(g for g in m.groups() if g is not None))
        yield from _judged(value, meta=True)
        yield from _judged(_refresh_target(value), meta=True)
    if depth < _MAX_DEPTH:
        for inner in dict.fromkeys(parser.nested):
            yield from html_targets(inner, depth + 1)
    elif parser.nested:
        yield ("?", parser.nested[0][:200])


def _tolerant(text: str, nested: list[str], depth: int = 0) -> Iterator[tuple[str, str]]:
    """The tolerant reading: name=value pairs wherever they are, decoded as attributes are,
    and again inside each value holding a ``=`` (``<a href=<a/href="//evil.com">`` holds
    both ``href`` values), down to a few levels (each level reads less text)."""
    for m in _ATTRIBUTE.finditer(text):
        name = m.group(1).lower()
        raw = next(g for g in m.groups()[1:] if g is not None)
        value = html.unescape(raw)
        if name in _LIST_ATTRIBUTES:
            for item in _list_values(value):
                yield from _judged(item)
        elif name == "srcdoc":
            nested.append(value)
        elif name != "style":
            yield from _judged(value)
        if "=" in raw and depth < _MAX_DEPTH:
            yield from _tolerant(raw, nested, depth + 1)


def _css_unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            code = int(m.group(1), 16)
            return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
        return m.group(2)

    return _CSS_ESCAPE.sub(one, text) if "\\" in text else text


def css_targets(css: str) -> Iterator[tuple[str, str]]:
    """Absolute or scheme-relative targets of CSS ``url(...)`` and ``@import`` (CSS escapes
    decoded)."""
    css = _css_unescape(css)
    for pattern in (_CSS_URL, _CSS_IMPORT):
        for m in pattern.finditer(css):
            value = next((g for g in m.groups() if g is not None), "")
            yield from _judged(value)


@functools.cache
def markdown_parser(raw_html: bool = True) -> Any:
    """The CommonMark parser (markdown-it-py), with raw HTML on or off, built once;
    ``ScopeError`` when the ``text`` extra is not installed."""
    try:
        from markdown_it import MarkdownIt
    except ImportError as exc:  # pragma: no cover - the extra is not installed
        raise ScopeError(
            "the text scope needs markdown-it-py: pip install 'guardrails-plugin[text]'"
        ) from exc
    # no linkify here: bare links are the link finder's, judged with the URL scope's
    # default scheme (a renderer links www.example.com as http://)
    return MarkdownIt("commonmark", {"html": raw_html})


def markdown_targets(text: str) -> Iterator[tuple[str, str]]:
    """Every link and image target markdown-it-py makes of ``text`` (reference definitions
    included, used or not), as :func:`target` reads it: parsed with raw HTML on (a line
    starting with a tag opens an HTML block, where Markdown is not read) and off (tags are
    text, as in chat renderers that escape HTML: the Markdown on such a line is read)."""
    for raw_html in (True, False):
        env: dict[str, Any] = {}
        stack = list(markdown_parser(raw_html).parse(text, env))
        while stack:
            token = stack.pop()
            if token.type == "link_open":
                yield from _judged(str(token.attrGet("href") or ""))
            elif token.type == "image":
                yield from _judged(str(token.attrGet("src") or ""))
            if token.children:
                stack.extend(token.children)
        for definition in (env.get("references") or {}).values():
            yield from _judged(str(definition.get("href") or ""))
        if "<" not in text:
            return  # without a tag, both parsers read the same


def mailto_recipients(url: str) -> list[str]:
    """The recipient fields of a ``mailto:`` URL that are not empty, percent-decoded: the
    path and each ``to`` / ``cc`` / ``bcc`` query value (names in any case, percent-decoded
    too). Each field is a comma-separated address list."""
    rest = url.strip(_C0_AND_SPACE).translate(_TAB_NEWLINE)[len("mailto:") :]
    path, _, query = rest.partition("?")
    query = query.partition("#")[0]
    fields = [unquote(path)]
    for pair in re.split(r"[&;]", query):  # ";" too: read more fields, not fewer
        name, _, value = pair.partition("=")
        if unquote(name).strip().lower() in ("to", "cc", "bcc"):
            fields.append(unquote(value))
    return [f for f in fields if f.strip(" \t,")]
