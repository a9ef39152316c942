"""The Text scope: every link and address in free text must pass its URL / email scope.

Texts are generated from a grammar that hides links in prose, markdown, HTML and angle
brackets, behind zero-width characters, look-alike dots, full-width letters, HTML character
references and a word glued to the scheme. Two oracles:

- the grammar's own ground truth: it knows every host it hid and whether that host (and
  scheme) is allowed; a text hiding any link outside must be refused;
- a real renderer: markdown-it-py with linkify and raw HTML on (what a chat or mail UI
  does with a message); every link it renders in a text the scope allows must point at an
  allowed host (relative links resolved against the page they are shown on).
"""

from __future__ import annotations

import html
import re
from email.utils import getaddresses
from html.parser import HTMLParser
from random import Random
from typing import Any
from urllib.parse import parse_qsl, unquote

import ada_url
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from guardrails_plugin import Policy, ToolCall, allow
from guardrails_plugin.scopes import (
    Emails,
    ScopeError,
    ScopeViolation,
    Text,
    Urls,
    links_in,
    scope_from_spec,
)

URLS = Urls(["example.com", "*.example.com"])
EMAILS = Emails(domains=["example.com", "*.example.com"])
SCOPE = Text(urls=URLS, emails=EMAILS)

GOOD_HOSTS = ["example.com", "docs.example.com", "a.b.example.com"]
BAD_HOSTS = ["evil.com", "example.com.evil.com", "evil.co.uk", "ex\u0430mple.com", "evil.io"]
WORDS = ["Hi", "Bob", "the", "slides", "are", "here", "thanks", "see", "you", "Monday", "-", "*"]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]
DOTS = ["\u3002", "\uff0e", "\uff61"]


def obfuscate(r: Random, link: str, host: str) -> str:
    """One trick applied to a link's host or scheme."""
    trick = r.randrange(6)
    if trick == 0 and "." in host:  # a zero-width character inside the host
        i = r.randrange(1, len(host))
        return link.replace(host, host[:i] + r.choice(ZERO_WIDTH) + host[i:], 1)
    if trick == 1 and "." in host:  # an IDNA dot look-alike
        return link.replace(host, host.replace(".", r.choice(DOTS), 1), 1)
    if trick == 2:  # full-width letters (NFKC folds them)
        wide = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalpha() else c for c in host)
        return link.replace(host, wide, 1)
    if trick == 3 and "://" in link:  # an HTML character reference for ':'
        return link.replace("://", "&#58;//", 1)
    if trick == 4 and "://" in link:  # a word glued to the scheme
        return r.choice(["Click", "x", "see:"]) + link
    return link.upper() if trick == 5 else link


def link_for(r: Random, host: str) -> tuple[str, bool]:
    """A link or address at ``host`` in one of the forms text carries it; and whether its
    scheme is one the scope allows (bare domains and ``//`` count as https)."""
    form = r.randrange(11)
    if form == 0:
        return f"https://{host}/p?q=1", True
    if form == 1:
        return f"http://{host}/", False
    if form == 2:
        return host, True
    if form == 3:
        return f"[the {r.choice(WORDS)}](https://{host}/x)", True
    if form == 4:
        return f"<https://{host}>", True
    if form == 5:
        return f'<a href="https://{host}/y">here</a>', True
    if form == 6:
        return f'<a href="//{host}/y">here</a>', True
    if form == 7:
        return f"bob@{host}", True
    if form == 8:
        return f"mailto:ann@{host}", True
    if form == 9:
        return f"<carol@{host}>", True
    return f"ftp://{host}/f", False


def text_from(r: Random) -> tuple[str, bool, bool]:
    """A text, whether it hides a link outside the scope, and whether a trick was used."""
    parts: list[str] = []
    outside = tricked = False
    for _ in range(r.randrange(1, 4)):
        parts += r.sample(WORDS, r.randrange(0, 4))
        bad = r.random() < 0.5
        host = r.choice(BAD_HOSTS if bad else GOOD_HOSTS)
        link, scheme_ok = link_for(r, host)
        if r.random() < 0.4:
            changed = obfuscate(r, link, host)
            tricked |= changed != link
            link = changed
        outside |= bad or not scheme_ok
        parts.append(link)
        parts.append(r.choice([" ", "\n", ". ", ", ", "\n\n> "]))
    return " ".join(parts), outside, tricked


texts = st.randoms(use_true_random=False).map(text_from)


@settings(max_examples=200, deadline=None)
@given(texts)
def test_a_text_hiding_a_link_outside_is_refused(drawn: tuple[str, bool, bool]) -> None:
    text, outside, _ = drawn
    if outside:
        assert not SCOPE.contains(text), text


@settings(max_examples=150, deadline=None)
@given(texts)
def test_plain_texts_with_only_allowed_links_pass(drawn: tuple[str, bool, bool]) -> None:
    text, outside, tricked = drawn
    if not outside and not tricked:
        SCOPE.check(text)


# -- a real renderer as the oracle ------------------------------------------------------------

RENDERER = MarkdownIt("commonmark", {"linkify": True, "html": True}).enable("linkify")
PAGE = "https://chat.example.com/thread/1"


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [v for k, v in attrs if k in ("href", "src") and v is not None]


def rendered_targets(text: str) -> list[str]:
    parser = _Hrefs()
    parser.feed(RENDERER.render(text))
    return parser.found


def target_allowed(href: str) -> bool:
    """Whether a rendered link leads only where the scope allows: a mailto to allowed
    addresses (or to no address at all), a web link to an allowed host; links a browser
    does not open over the network (``javascript:``, unknown schemes) are not judged."""
    href = html.unescape(href).strip()
    if href.lower().startswith("mailto:"):
        try:
            EMAILS.check(href[7:].partition("?")[0])
        except ScopeViolation as exc:
            return exc.unreadable  # no address at all: it sends nowhere
        return True
    try:
        url = ada_url.parse_url(ada_url.join_url(PAGE, href), attributes=("hostname", "protocol"))
    except ValueError:
        return True  # not a link a browser follows
    if url["protocol"] not in ("http:", "https:", "ws:", "wss:", "ftp:"):
        return True
    host = str(url["hostname"]).rstrip(".")
    return host == "example.com" or host.endswith(".example.com")


@settings(max_examples=200, deadline=None)
@given(texts)
def test_every_link_a_renderer_makes_of_an_allowed_text_is_allowed(
    drawn: tuple[str, bool, bool],
) -> None:
    text, _, _ = drawn
    if SCOPE.contains(text):
        for href in rendered_targets(text):
            assert target_allowed(href), (text, href)


FRAGMENTS = ["evil", "example", "docs", ".", "com", "io", "://", "https", "http", "www", "@",
             "bob", "mailto:", "<", ">", "[", "](", ")", " ", "\n", '<a href="', '">', "&#46;",
             "&#58;", "//", "\\", ":443", "/p", "?", "#", "xn--", "\u0430", *ZERO_WIDTH, *DOTS,
             "\uff45", "Click"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join))
def test_fragment_soup_never_renders_a_link_outside_when_allowed(text: str) -> None:
    if SCOPE.contains(text):
        for href in rendered_targets(text):
            assert target_allowed(href), (text, href)


# the same soup with what browsers and Markdown decode (escapes, references, controls,
# backslashes, srcset, meta refresh, mailto fields) and hosts prose scanning misses
MORE_FRAGMENTS = [*FRAGMENTS, "\\/", "&#9;", "\t", "\r", "\x01", "&Tab;", "&#x68;", "&colon;",
                  "&#47;", "10.0.0.1", "intranet", "corp", '<img srcset="', " 2x, ", '<a/href=',
                  '<meta http-equiv=refresh content="0;url=', "![i", "]: ", "[r]", "\n\n",
                  "?cc=", "?BCC=", "&to=", "%40", ",", "<form action=", "<video poster=",
                  "'", "https:\\\\", "/\\", "<!-->", "MAILTO:", "url(", "<style>"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(MORE_FRAGMENTS), max_size=16).map("".join))
def test_richer_soup_never_gives_a_browser_a_target_outside_when_allowed(text: str) -> None:
    if SCOPE.contains(text):
        for href in browser_targets(text):
            assert browser_allowed(href), (text, href)


# -- what the link finder sees and misses ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("see www.example.com", ("", "www.example.com")),
        ("bare evil.com here", ("", "evil.com")),
        ("write to a@evil.com", ("mailto:", "a@evil.com")),
        ("[x](https://evil.com/a)", ("https:", "https://evil.com/a")),
        ("<https://evil.com>", ("https:", "https://evil.com")),
        ("<a@evil.com>", ("mailto:", "a@evil.com")),
        ('<a href="//evil.com/x">y</a>', ("//", "//evil.com/x")),
        ("Clickhttps://evil.com", ("https:", "https://evil.com")),
        ("evil\u3002com", ("", "evil.com")),
        ("https&#58;//evil.com", ("https:", "https://evil.com")),
        ("new tld foo.zip", ("", "foo.zip")),
        ('<a href="//wwwhttps">x</a>', ("//", "//wwwhttps")),  # no TLD: only the HTML sees it
        ('<img src="javascript:x()">', ("javascript:", "javascript:x()")),
        ('">://http://mailto:)', ("http:", "http://mailto")),  # found as markdown-it finds it
    ],
)
def test_the_link_finder_finds(text: str, found: tuple[str, str]) -> None:
    assert found in links_in(text)


@pytest.mark.parametrize(
    "text",
    [
        "hxxp://evil[.]com",  # defanged: no client follows it
        "evil (dot) com",
        "e v i l . c o m",
        "mail bob at evil dot com",
        "an intranet name evil.corp",  # not a TLD in the IANA list
    ],
)
def test_what_the_link_finder_does_not_see_passes(text: str) -> None:
    """Documented misses: text a person could still follow, but no link a client opens."""
    assert links_in(text) == ()
    SCOPE.check(text)


def test_no_scope_for_a_kind_allows_none_of_it() -> None:
    no_links = Text(urls=None, emails=EMAILS)
    assert "no links are allowed" in _reason(no_links, "see https://example.com")
    no_mail = Text(urls=URLS, emails=None)
    assert "none allowed" in _reason(no_mail, "write to a@example.com")
    Text().check("plain words only, 1.5 times")


@pytest.mark.parametrize("value", [None, 3, b"https://evil.com", {"t": "x"}])
def test_values_that_are_not_text_are_unreadable(value: Any) -> None:
    with pytest.raises(ScopeViolation) as caught:
        SCOPE.check(value)
    assert caught.value.unreadable


def test_a_list_of_texts_checks_each_and_long_texts_are_refused() -> None:
    SCOPE.check(["see https://example.com", "ok"])
    assert not SCOPE.contains(["see https://example.com", "or evil.com"])
    with pytest.raises(ScopeViolation, match="longer than max_length"):
        Text(urls=URLS, max_length=10).check("x" * 11)


def test_text_round_trips_through_a_policy_file_and_narrows() -> None:
    policy = Policy([allow("send_email", args={"body": SCOPE})])
    loaded = Policy.from_dict(yaml.safe_load(yaml.safe_dump(policy.to_dict())))
    assert loaded == policy
    assert scope_from_spec("text", SCOPE.spec()) == SCOPE
    assert loaded.evaluate(ToolCall("send_email", {"body": "see docs.example.com"})).allowed
    assert loaded.evaluate(ToolCall("send_email", {"body": "see evil.com"})).denied
    narrow = Text(urls=Urls(["docs.example.com"]))
    assert narrow.within(SCOPE)
    assert not SCOPE.within(narrow)
    assert not Text(urls=URLS, emails=EMAILS, max_length=10**6).within(SCOPE)
    with pytest.raises(ScopeError, match="urls must be a Urls"):
        Text(urls="example.com")  # type: ignore[arg-type]


def _reason(scope: Text, value: object) -> str:
    with pytest.raises(ScopeViolation) as caught:
        scope.check(value)
    return str(caught.value)


# -- links a renderer or a browser reads where prose scanning does not --------------------------
#
# Each form hides one link at a host, in Markdown (backslash escapes, character references,
# angle brackets, reference definitions, images, autolinks), in HTML attributes (tabs and line
# breaks inside, C0 controls around, backslashes for slashes, srcset candidates, action,
# formaction, poster, data, cite, background, meta refresh, encoded attributes) or in a mailto
# URL (path lists, to/cc/bcc in any case, percent-encoding). The grammar knows the host; a
# real renderer and a WHATWG reading of what it renders are the second oracle.

SPLIT = 2  # a trick that cuts a link in two for prose scanning
# hosts prose scanning does not find on their own (no TLD in the list, an IP address)
HIDDEN_HOSTS = ["10.0.0.1", "169.254.169.254", "evil.corp", "intranet", "[::1]"]
CONTROLS = ["\t", "\n", "\r"]
AROUND = ["\x01", "\x1f", " ", "\x00 ", "\t"]
CASES = ["to", "TO", "cc", "Cc", "CC", "bcc", "BCC", "bCc", "%74o", "%63c", "b%63c"]


def _spliced(r: Random, url: str) -> str:
    """``url`` with a tab, line feed or carriage return at a random place (browsers drop
    them), as characters or as character references."""
    i = r.randrange(1, len(url))
    c = r.choice(CONTROLS)
    c = r.choice([c, f"&#{ord(c)};", {"\t": "&Tab;", "\n": "&NewLine;", "\r": "&#13;"}[c]])
    return url[:i] + c + url[i:]


def markdown_form(r: Random, host: str, k: int) -> tuple[str, int]:
    """A Markdown link to ``host`` and whether a trick hides it from prose scanning."""
    form = r.randrange(9)
    if form == 0:
        return f"[t](https:\\/\\/{host}/x)", True
    if form == 1:
        return f"[t](https&#58;//{host}/x)", True
    if form == 2:
        return f"[t](&#x68;ttps://{host}/x)", True
    if form == 3:
        return f"[t](<https://{host}/x>)", False
    if form == 4:
        dest = r.choice([f"https://{host}/r", f"https:\\/\\/{host}/r", f"<https&#x3a;//{host}>"])
        return f"\n\nsee [t][r{k}]\n\n[r{k}]: {dest}\n\n", "\\" in dest or "&" in dest
    if form == 5:
        return f"![i](https://{host}/i.png)", False
    if form == 6:
        return f"<https://{host}/x>", False
    if form == 7:
        return f'[t](https://{host}/x "title")', False
    return f"[t](HTTPS://{host.upper()})", False


def html_form(r: Random, host: str) -> tuple[str, int]:
    """An HTML tag whose attribute leads to ``host``, and whether a trick hides it."""
    url = f"https://{host}/p"
    form = r.randrange(11)
    if form == 0:  # splits the URL for prose scanning: it may refuse a link inside too
        return f'<a href="{_spliced(r, url)}">x</a>', SPLIT
    if form == 1:
        return f'<a href="{r.choice(AROUND)}{url}{r.choice(AROUND)}">x</a>', SPLIT
    if form == 2:
        slashes = r.choice(["/\\", "\\\\", "\\/", "https:\\\\", "https:/\\", "HTTPS:\\/"])
        return f'<a href="{slashes}{host}/p">x</a>', True
    if form == 3:
        first = r.choice(["https://example.com/a.png", "a.png", "https://x.example.com/a,b.png"])
        return f'<img srcset="{first} 1x, {url}.png 2x" src="a.png">', True
    if form == 4:
        tag, attr = r.choice(
            [
                ("form", "action"),
                ("button", "formaction"),
                ("video", "poster"),
                ("object", "data"),
                ("blockquote", "cite"),
                ("body", "background"),
                ("table", "background"),
                ("iframe", "src"),
                ("link", "href"),
                ("a", "ping"),
            ]
        )
        return f'<{tag} {attr}="{url}">x</{tag}>', True
    if form == 5:
        content = r.choice([f"0;url={url}", f"0; URL='{url}'", f"5, {url}", f"0 url = {url}"])
        return f'<meta http-equiv="Refresh" content="{content}">', True
    if form == 6:
        encoded = url.replace(":", r.choice(["&#58;", "&colon;", "&#x3A;"])).replace("/", "&#47;")
        return f"<a href='{encoded}'>x</a>", True
    if form == 7:
        return f'<a/href="//{host}/p">x</a>', True
    if form == 8:
        return f'<!--><a href="{url}">x</a>', False
    if form == 9:
        return f'<div style="background: url(&quot;//{host}/b.png&quot;)">x</div>', True
    return f'<iframe srcdoc="&lt;a href=&quot;{url}&quot;&gt;x&lt;/a&gt;"></iframe>', True


def mailto_form(r: Random, host: str) -> tuple[str, int]:
    """A mailto URL with a recipient at ``host`` somewhere in it, and whether a trick hides
    that recipient from prose scanning (``%40`` before a domain reads as a bare domain
    ``40example.com`` to prose scanning, as a renderer's linkify reads it: a split)."""
    at = r.choice(["@", "%40"])
    field = r.choice(CASES)
    form = r.randrange(6)
    if form == 0:
        url = f"mailto:ann@example.com,bob{at}{host}"
    elif form == 1:
        url = f"mailto:ann@example.com?{field}=bob{at}{host}"
    elif form == 2:
        url = f"mailto:?subject=hi&{field}=ann%40example.com,bob{at}{host}&body=x"
    elif form == 3:
        url = f"MAILTO:bob{at}{host}"
    elif form == 4:
        url = f"mailto:ann@example.com?{field}=a@example.com&{field}=bob{at}{host}"
    else:
        url = f"mailto:%20bob{at}{host}"
    trick = SPLIT if "%40" in url else 1
    wrap = r.randrange(3)
    if wrap == 0:
        return f'<a href="{html.escape(url)}">mail</a>', trick
    if wrap == 1:
        return f"[mail]({url})", trick
    return f"<{url}>", trick


def tricky_text(r: Random) -> tuple[str, bool, bool]:
    """A text mixing these forms with the earlier ones; whether it hides a link outside,
    and whether a trick split a link for prose scanning."""
    parts: list[str] = []
    outside = split = False
    for k in range(r.randrange(1, 4)):
        parts += r.sample(WORDS, r.randrange(0, 4))
        bad = r.random() < 0.5
        kind = r.randrange(4)
        host = r.choice((BAD_HOSTS + HIDDEN_HOSTS * (kind < 3)) if bad else GOOD_HOSTS)
        if kind == 0:
            link, trick = markdown_form(r, host, k)
        elif kind == 1:
            link, trick = html_form(r, host)
        elif kind == 2:
            link, trick = mailto_form(r, host)
        else:
            link, scheme_ok = link_for(r, host)
            trick = 0
            bad |= not scheme_ok
        outside |= bad
        split |= trick == SPLIT
        parts += [link, r.choice([" ", "\n", ". ", "\n\n"])]
    return " ".join(parts), outside, split


tricky_texts = st.randoms(use_true_random=False).map(tricky_text)


@settings(max_examples=300, deadline=None)
@given(tricky_texts)
def test_a_link_outside_behind_markdown_html_or_mailto_tricks_is_refused(
    drawn: tuple[str, bool, bool],
) -> None:
    text, outside, _ = drawn
    if outside:
        assert not SCOPE.contains(text), text


@settings(max_examples=200, deadline=None)
@given(tricky_texts)
def test_markdown_html_and_mailto_links_inside_pass(drawn: tuple[str, bool, bool]) -> None:
    """The same forms at allowed hosts pass (the scope reads them, it does not refuse
    whatever looks odd), except where a trick cuts a link in two for prose scanning."""
    text, outside, split = drawn
    if not outside and not split:
        SCOPE.check(text)


# a browser's reading of rendered HTML: every URL-valued attribute, srcset candidates as the
# HTML standard splits them, meta refresh targets; WHATWG preprocessing; mailto recipients
# from the path and the to/cc/bcc fields (parse_qsl, getaddresses).

URL_ATTRIBUTES = {"href", "src", "action", "formaction", "poster", "data", "cite", "background"}


class _Browser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v for k, v in attrs if v is not None}
        self.found += [v for k, v in values.items() if k in URL_ATTRIBUTES | {"ping"}]
        if "srcset" in values:
            self.found += _srcset_urls(values["srcset"])
        if tag == "meta" and values.get("http-equiv", "").lower() == "refresh":
            url = re.sub(r"(?is)^\s*[\d.]*\s*[;,]?\s*(url\s*=\s*)?", "", values.get("content", ""))
            self.found.append(url.strip("'\""))
        if "srcdoc" in values:
            inner = _Browser()
            inner.feed(values["srcdoc"])
            self.found += inner.found


def _srcset_urls(value: str) -> list[str]:
    """The HTML standard's srcset parsing, URLs only: skip whitespace and commas, a URL
    runs to whitespace (trailing commas dropped), descriptors run to a comma outside
    parentheses."""
    urls, i, n = [], 0, len(value)
    while True:
        while i < n and (value[i].isspace() or value[i] == ","):
            i += 1
        if i >= n:
            return urls
        j = i
        while j < n and not value[j].isspace():
            j += 1
        url = value[i:j]
        i = j
        if url.endswith(","):
            urls.append(url.rstrip(","))
            continue
        urls.append(url)
        depth = 0
        while i < n and (value[i] != "," or depth):
            depth += {"(": 1, ")": -1}.get(value[i], 0)
            i += 1


ESCAPING_RENDERER = MarkdownIt("commonmark", {"linkify": True, "html": False}).enable("linkify")


def browser_targets(text: str) -> list[str]:
    """What a browser reads in the page a renderer makes of ``text``: one that passes raw
    HTML through and one that escapes it (as chat UIs do)."""
    found = []
    for renderer in (RENDERER, ESCAPING_RENDERER):
        parser = _Browser()
        parser.feed(renderer.render(text))
        parser.close()
        found += parser.found
    return found


def browser_allowed(href: str) -> bool:
    href = href.strip("".join(map(chr, range(0x21)))).translate({9: None, 10: None, 13: None})
    if href.lower().startswith("mailto:"):
        path, _, query = href[7:].partition("?")
        fields = [unquote(path)]
        fields += [v for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() in CCS]
        addresses = [a for _, a in getaddresses([f for f in fields if f.strip()])]
        return all(target_allowed(f"mailto:{a}") for a in addresses)
    return target_allowed(href)


CCS = {"to", "cc", "bcc"}


@settings(max_examples=300, deadline=None)
@given(tricky_texts)
def test_every_target_a_browser_reads_in_an_allowed_text_is_allowed(
    drawn: tuple[str, bool, bool],
) -> None:
    text, _, _ = drawn
    if SCOPE.contains(text):
        for href in browser_targets(text):
            assert browser_allowed(href), (text, href)


@pytest.mark.parametrize(
    "text",
    [
        "[x](https:\\/\\/evil.com)",
        "[x](https&#58;//evil.com)",
        "[x](&#x68;ttps://evil.com)",
        "[x](<https://evil.com>)",
        "[x][r]\n\n[r]: https:\\/\\/evil.com",
        "[x]\n\n[x]: <https&#x3a;//evil.com>",
        "![i](https:\\/\\/evil.com/p.png)",
        "https\\://evil.com",
        '<a href="ht\ttps://ev\nil.com">x</a>',
        '<a href="ht&#9;tps://evil.com">x</a>',
        '<a href="\x01 https://evil.com/ \x1f">x</a>',
        '<a href="/\\evil.com/x">x</a>',
        '<a href="https:\\\\evil.com">x</a>',
        '<img srcset="a.png 1x, https://evil.com/b.png 2x">',
        '<img srcset="https://example.com/a.png 1x,//evil.com/b.png">',
        '<form action="https://evil.com/f"><button formaction="//evil.com">',
        '<video poster="https://evil.com/p.png">',
        '<object data="https://evil.com/o">',
        '<blockquote cite="https://evil.com/q">',
        '<body background="//evil.com/b.png">',
        '<meta http-equiv="refresh" content="0;url=https://evil.com">',
        "<meta http-equiv=refresh content=\"0; URL='//evil.com'\">",
        '<meta property="og:image" content="https://evil.com/i.png">',
        '<a href="https&colon;&sol;&sol;evil.com">x</a>',
        '<a/href="//evil.com">x</a>',
        '<div style="background:url(\\2f\\2f evil.com/x)">',
        "<style>@import '//evil.com/s.css';</style>",
        '<iframe srcdoc="&lt;a href=//evil.com&gt;x&lt;/a&gt;">',
        "mailto:a@example.com,b@evil.com",
        "mailto:a@example.com?cc=b@evil.com",
        "mailto:a@example.com?BCC=b%40evil.com",
        "<mailto:?To=b%40evil.com>",
        "[m](mailto:a@example.com?%63c=b%40evil.com)",
        '<a href="mailto:a@example.com?subject=x&amp;bcc=b%40evil.com">m</a>',
        "mailto:a%40example.com%2Cb%40evil.com",
        "<div>x</div> [t](https:\\/\\/10.0.0.1)",
        '<svg><a><set attributeName="href" to="//10.0.0.1/"/><text>x</text></a></svg>',
        '<svg><a><animate attributeName="href" values="/a;//10.0.0.1/"/></a></svg>',
        '[a <b title="]">](https:\\/\\/10.0.0.1)',
    ],
)
def test_each_trick_is_refused(text: str) -> None:
    assert not SCOPE.contains(text), text


@pytest.mark.parametrize(
    "text",
    [
        "[x](https:\\/\\/docs.example.com)",
        "[x][r]\n\n[r]: https://example.com/r",
        '<img srcset="https://example.com/a.png 1x, //docs.example.com/b.png 2x">',
        '<meta http-equiv="refresh" content="0;url=https://example.com">',
        '<meta name="description" content="Note: the plan">',
        '<a href="/relative/path">x</a> <a href="#top">top</a>',
        "mailto:a@example.com?cc=b@docs.example.com&subject=Hi%20there",
        '<a href="mailto:a@example.com?bcc=b@example.com">m</a>',
        "Ask (mailto:a@example.com). Thanks",
        "see [1] and [2]; a < b, c > d",
        "<b>see</b> https://docs.example.com/t?from=en:fr&data=a:b&to=x:y",
    ],
)
def test_the_same_forms_inside_pass(text: str) -> None:
    SCOPE.check(text)


def test_a_percent_encoded_at_sign_reads_as_a_bare_domain() -> None:
    """A known over-refusal: ``b%40example.com`` holds the bare domain ``40example.com``
    for the link finder, as for a renderer's linkify (which links it)."""
    assert ("", "40example.com") in links_in("mailto:a@example.com?cc=b%40example.com")
    assert not SCOPE.contains("mailto:a@example.com?cc=b%40example.com")


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from([*MORE_FRAGMENTS, "=", "+", "|", "$", "^", "~", "`", "€", "→", "©", "™"]),
        max_size=16,
    ).map("".join)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=40).map(lambda t: t + " evil.io")
)
def test_the_quick_test_never_skips_what_the_link_finder_matches(text: str) -> None:
    """linkify-it's own ``match`` is the oracle for the scope's quick pre-test."""
    from guardrails_plugin.scopes.text import _linkify, _may_hold_links, _readings

    finder = _linkify()
    for reading in _readings(text):
        if finder.match(reading):
            assert _may_hold_links(finder, reading), reading


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False), st.sampled_from(HIDDEN_HOSTS + BAD_HOSTS))
def test_long_html_is_read_by_the_tolerant_scan(r: Random, host: str) -> None:
    """Past ``PARSED_LENGTH`` html.parser is not run (it is quadratic on unclosed tags);
    the tolerant attribute scan still finds every trick."""
    from guardrails_plugin.scopes._links import PARSED_LENGTH

    link, _ = html_form(r, host)
    padding = "<p>" + "Quarterly notes, nothing to click. " * (PARSED_LENGTH // 30) + "</p>"
    text = r.choice([padding + link, link + padding, padding + link + padding])
    assert len(text) > PARSED_LENGTH
    assert not SCOPE.contains(text), link
    assert not SCOPE.contains("<a href=" * 1500 + link)
