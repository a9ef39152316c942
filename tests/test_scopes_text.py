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
from html.parser import HTMLParser
from random import Random
from typing import Any

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
