"""Urls: judged on the host a WHATWG client connects to, with the scheme and port it uses."""

from __future__ import annotations

import pytest

from guardrails_plugin.scopes import ScopeError, ScopeViolation, Urls

GOOD = Urls(["good.com", "*.example.com"])


def reason(scope: Urls, value: object) -> str:
    with pytest.raises(ScopeViolation) as caught:
        scope.check(value)
    return str(caught.value)


# --- allowed ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://good.com",
        "https://good.com/path?q=1#frag",
        "https://GOOD.COM/",
        "https://good.com:443/",  # the default port, written out
        "https://good.com./",  # trailing dot: the same host
        "https://a.example.com/",
        "https://deep.er.example.com/x",
    ],
)
def test_allowed_hosts_are_accepted(url: str) -> None:
    GOOD.check(url)


# --- the host a client really contacts --------------------------------------------------


def test_userinfo_trick_is_denied_naming_the_real_host() -> None:
    message = reason(GOOD, "https://good.com@evil.com/")
    assert "connects to host 'evil.com', not in allowed hosts" in message


def test_backslash_userinfo_trick_is_denied() -> None:
    scope = Urls(["good.com"], schemes=["http"])
    # WHATWG reads the backslash as a slash: the client goes to evil.com.
    assert "connects to host 'evil.com'" in reason(scope, "http://evil.com\\@good.com/")


def test_url_that_parsers_disagree_on_is_denied_as_ambiguous() -> None:
    # WHATWG: good.com (backslash ends the host); urllib/requests: evil.com.
    assert "ambiguous" in reason(GOOD, "https://good.com\\@evil.com/")


def test_allowed_name_as_a_subdomain_of_another_host_is_denied() -> None:
    assert "'good.com.evil.com'" in reason(GOOD, "https://good.com.evil.com/")


def test_allowed_name_as_a_prefix_of_another_host_is_denied() -> None:
    assert not GOOD.contains("https://good.community/")
    assert not GOOD.contains("https://notgood.com/")


@pytest.mark.parametrize("url", ["https://evil.com#@good.com", "https://evil.com?@good.com"])
def test_fragment_and_query_tricks_are_denied(url: str) -> None:
    assert "'evil.com'" in reason(GOOD, url)


def test_wildcard_does_not_cover_the_bare_domain() -> None:
    assert "'example.com'" in reason(GOOD, "https://example.com/")


@pytest.mark.parametrize("url", ["https://..example.com/", "https://a..example.com/"])
def test_empty_labels_do_not_pass_as_subdomains(url: str) -> None:
    assert not GOOD.contains(url)


def test_idn_homograph_is_not_the_ascii_name() -> None:
    # Cyrillic a, er, er, palochka, ie: looks like apple.com, is xn--80ak6aa92e.com.
    homograph = "\u0430\u0440\u0440\u04cf\u0435.com"
    scope = Urls(["apple.com"])
    assert "xn--80ak6aa92e.com" in reason(scope, f"https://{homograph}/")
    assert Urls([homograph]).spec()["hosts"] == ["xn--80ak6aa92e.com"]
    assert not Urls([homograph]).contains("https://apple.com/")


def test_idn_pattern_matches_both_spellings() -> None:
    scope = Urls(["bücher.de"])
    assert scope.spec()["hosts"] == ["xn--bcher-kva.de"]
    assert scope.contains("https://bücher.de/")
    assert scope.contains("https://xn--bcher-kva.de/")
    assert not scope.contains("https://bucher.de/")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://0x7f.1/",
        "https://2130706433/",
        "https://0177.0.0.1/",
        "https://127.1/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
    ],
)
def test_ip_literals_in_any_encoding_are_denied(url: str) -> None:
    assert "IP address" in reason(GOOD, url)


def test_decimal_ip_encoding_is_judged_as_the_address_it_means() -> None:
    scope = Urls(["127.0.0.1"], schemes=["http"])
    assert scope.contains("http://2130706433/")
    assert scope.contains("http://0x7f.0.0.1/")
    assert not scope.contains("http://127.0.0.2/")


def test_networks_allow_addresses_inside_them() -> None:
    scope = Urls(["good.com"], networks=["10.0.0.0/8", "fd00::/8"])
    assert scope.contains("https://10.1.2.3/")
    assert scope.contains("https://[fd00::5]/")
    assert "'11.0.0.1'" in reason(scope, "https://11.0.0.1/")


def test_ipv6_host_listed_exactly() -> None:
    scope = Urls(["::1", "[fe80::1]"], schemes=["http"])
    assert scope.contains("http://[::1]:80/")
    assert scope.contains("http://[fe80::1]/")
    assert not scope.contains("http://[::2]/")


# --- scheme, port, userinfo --------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://good.com/", "ftp://good.com/", "file:///etc/passwd", "javascript:alert(1)"]
)
def test_schemes_not_listed_are_denied(url: str) -> None:
    assert "scheme" in reason(GOOD, url)


def test_non_default_port_is_denied_unless_listed() -> None:
    assert "port 8443" in reason(GOOD, "https://good.com:8443/")
    scope = Urls(["good.com"], ports=[8443])
    assert scope.contains("https://good.com:8443/")
    assert "port 443" in reason(scope, "https://good.com/")  # 443 is not in the list


def test_port_list_with_default_port() -> None:
    scope = Urls(["good.com"], schemes=["http", "https"], ports=[80, 443, 8080])
    assert scope.contains("http://good.com/")
    assert scope.contains("https://good.com/")
    assert scope.contains("http://good.com:8080/")
    assert not scope.contains("http://good.com:8081/")


def test_scheme_without_default_port_needs_an_explicit_listed_port() -> None:
    scope = Urls(["cache.internal.example.com"], schemes=["redis"], ports=[6379])
    assert scope.contains("redis://cache.internal.example.com:6379/0")
    assert "no default" in reason(scope, "redis://cache.internal.example.com/0")


def test_userinfo_is_denied_unless_allowed() -> None:
    assert "credentials" in reason(GOOD, "https://user:pw@good.com/")
    assert Urls(["good.com"], allow_userinfo=True).contains("https://user:pw@good.com/")


@pytest.mark.parametrize("value", [None, 3, b"https://good.com", ["https://good.com"]])
def test_non_string_values_are_denied(value: object) -> None:
    assert "expected a URL string" in reason(GOOD, value)


@pytest.mark.parametrize("value", ["", "not a url", "https://", "https://exa mple.com/"])
def test_unparseable_urls_are_denied(value: str) -> None:
    assert not GOOD.contains(value)


# --- settings, spec, within -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hosts": []}, "at least one host"),
        ({"hosts": ["good.com:8080"]}, "not a valid host"),
        ({"hosts": ["good.com/path"]}, "bare host"),
        ({"hosts": ["user@good.com"]}, "bare host"),
        ({"hosts": ["*"]}, r"leading '\*\.'"),
        ({"hosts": ["a*.good.com"]}, r"leading '\*\.'"),
        ({"hosts": ["*.10.0.0.1"]}, "needs a domain name"),
        ({"hosts": ["good.com"], "networks": ["10.0.0.1/8"]}, "not a CIDR network"),
        ({"hosts": ["good.com"], "schemes": ["ht tp"]}, "not a URL scheme"),
        ({"hosts": ["good.com"], "schemes": []}, "at least one scheme"),
        ({"hosts": ["good.com"], "ports": [0]}, "1..65535"),
        ({"hosts": ["good.com"], "ports": [True]}, "1..65535"),
        ({"hosts": ["good.com"], "ports": 443}, "list of integers"),
        ({"hosts": ["good.com"], "allow_userinfo": 1}, "must be a bool"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        Urls(**kwargs)  # type: ignore[arg-type]


def test_patterns_are_normalized_so_equal_scopes_compare_equal() -> None:
    assert Urls(["GOOD.com."]) == Urls(["good.com"])
    assert Urls(["0x7f.0.0.1"]).spec()["hosts"] == ["127.0.0.1"]


@pytest.mark.parametrize(
    "scope",
    [
        GOOD,
        Urls(["b.com", "a.com", "*.x.org", "::1"], schemes=["http", "https"], ports=[80, 8080]),
        Urls(["good.com"], allow_userinfo=True, networks=["10.0.0.0/8"]),
    ],
)
def test_spec_round_trips(scope: Urls) -> None:
    assert type(scope)(**scope.spec()) == scope


def test_within_narrower_hosts() -> None:
    wide = Urls(["good.com", "*.example.com"])
    assert Urls(["a.example.com"]).within(wide)
    assert Urls(["*.api.example.com"]).within(wide)
    assert Urls(["good.com"]).within(wide)
    assert not wide.within(Urls(["good.com"]))
    assert not Urls(["example.com"]).within(wide)
    assert not Urls(["*.example.com"]).within(Urls(["a.example.com"]))


def test_within_schemes_ports_userinfo_and_networks() -> None:
    base = Urls(["good.com"], schemes=["https", "http"], ports=[80, 443], networks=["10.0.0.0/8"])
    assert Urls(["good.com"]).within(base)  # default 443 is listed in base
    assert not Urls(["good.com"], schemes=["ftp"]).within(base)
    assert not Urls(["good.com"], ports=[8080]).within(base)
    assert not Urls(["good.com"], allow_userinfo=True).within(base)
    assert Urls(["10.1.1.1"]).within(base)
    assert Urls(["good.com"], networks=["10.2.0.0/16"]).within(base)
    assert not Urls(["good.com"], networks=["11.0.0.0/8"]).within(base)
    assert not base.within(Urls(["good.com"]))


def flagged(scope: Urls, value: object) -> bool:
    """Whether ``scope`` refuses ``value`` as unreadable (as opposed to readable but outside)."""
    with pytest.raises(ScopeViolation) as caught:
        scope.check(value)
    return caught.value.unreadable


@pytest.mark.parametrize(
    "value", [3, "not a url", "https://good.com\\@evil.com/", "https:good.com"]
)
def test_values_the_scope_cannot_read_are_flagged_unreadable(value: object) -> None:
    assert flagged(GOOD, value) is True


@pytest.mark.parametrize(
    "value",
    ["https://evil.com/", "http://good.com/", "https://good.com:8443/", "https://u@good.com/"],
)
def test_readable_urls_outside_the_scope_are_not_flagged(value: str) -> None:
    assert flagged(GOOD, value) is False
