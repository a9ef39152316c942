"""Emails: every address a header really contains must be allowed."""

from __future__ import annotations

import pytest

from guardrails_plugin.scopes import Emails, ScopeError, ScopeViolation, addresses_in

SCOPE = Emails(addresses=["ceo@partner.org"], domains=["example.com", "*.corp.com"])


def reason(scope: Emails, value: object) -> str:
    with pytest.raises(ScopeViolation) as caught:
        scope.check(value)
    return str(caught.value)


# --- allowed ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "alice@example.com",
        "Alice <alice@example.com>",
        '"Smith, Alice" <alice@example.com>, ceo@partner.org',
        "team: alice@example.com, bob@eu.corp.com;",
        "bob@deep.eu.corp.com",
        "alice@EXAMPLE.COM",  # domains compare case-insensitively
        "ceo@Partner.ORG",
        ["alice@example.com", "Bob <bob@x.corp.com>, ceo@partner.org"],
        ("alice@example.com",),
        "alice@example.com (Alice in accounting)",
        "=?utf-8?q?Alice_=C3=A9?= <alice@example.com>",  # encoded display name
    ],
)
def test_allowed_recipients_are_accepted(value: object) -> None:
    SCOPE.check(value)


# --- every address counts ---------------------------------------------------------------


def test_one_outside_address_in_a_list_denies_and_is_named() -> None:
    message = reason(SCOPE, "alice@example.com, mallory@evil.com")
    assert "mallory@evil.com is not allowed" in message


def test_outside_address_inside_a_group_is_denied() -> None:
    assert "eve@evil.com" in reason(SCOPE, "team: alice@example.com, eve@evil.com;")


def test_outside_address_in_a_later_list_item_is_denied() -> None:
    assert "eve@evil.com" in reason(SCOPE, ["alice@example.com", "x <eve@evil.com>"])


def test_quoted_local_part_holding_an_allowed_address_is_denied() -> None:
    # '"alice@example.com"@evil.com' is an address at evil.com; quoting is refused outright.
    message = reason(SCOPE, '"alice@example.com"@evil.com')
    assert "Quoting" in message


def test_quoted_local_part_at_an_allowed_domain_is_still_refused() -> None:
    assert not SCOPE.contains('"alice smith"@example.com')


def test_address_in_a_comment_is_not_a_recipient_but_the_real_one_counts() -> None:
    assert SCOPE.contains("alice@example.com (cc eve@evil.com)")
    assert "eve@evil.com" in reason(SCOPE, "eve@evil.com (alice@example.com)")


def test_address_in_a_display_name_is_not_the_recipient() -> None:
    assert "eve@evil.com" in reason(SCOPE, "alice@example.com <eve@evil.com>")


def test_encoded_word_in_the_address_is_denied() -> None:
    assert "encoded word" in reason(SCOPE, "=?utf-8?q?eve=40evil.com?=@example.com")


@pytest.mark.parametrize(
    "value",
    [
        "alice@example.com\nBcc: eve@evil.com",
        "alice@example.com\r\nBcc: eve@evil.com",
        "alice@example.com\r\n eve@evil.com",
        "alice@example.com\u2028eve@evil.com",
        "alice@example.com\x00",
    ],
)
def test_embedded_line_breaks_are_denied(value: str) -> None:
    assert "line break or invisible character" in reason(SCOPE, value)


@pytest.mark.parametrize(
    "value",
    [
        "alice@example.com eve@evil.com",  # missing comma: stray text
        "alice@example.com; eve@evil.com",  # ';' is not a list separator
        "<@evil.com:alice@example.com>",  # obsolete source route
        "alice@example.com, ",  # trailing comma
    ],
)
def test_headers_with_parser_defects_are_denied(value: str) -> None:
    assert "not a clean address list" in reason(SCOPE, value)


@pytest.mark.parametrize("value", ["alice@[127.0.0.1]", "alice@localhost", "alice@x.test"])
def test_ip_literal_and_special_use_domains_are_denied(value: str) -> None:
    assert "is not a valid address" in reason(SCOPE, value)


def test_local_part_compares_exactly() -> None:
    assert "CEO@partner.org is not allowed" in reason(SCOPE, "CEO@partner.org")


def test_wildcard_domain_does_not_cover_the_bare_domain() -> None:
    assert "bob@corp.com" in reason(SCOPE, "bob@corp.com")


def test_lookalike_domains_are_denied() -> None:
    assert not SCOPE.contains("alice@example.com.evil.com")
    assert not SCOPE.contains("alice@notexample.com")
    assert not SCOPE.contains("alice@evilcorp.com")


def test_idn_domains_compare_in_punycode() -> None:
    scope = Emails(domains=["bücher.de"])
    assert scope.spec()["domains"] == ["xn--bcher-kva.de"]
    assert scope.contains("info@bücher.de")
    assert scope.contains("info@xn--bcher-kva.de")
    assert not scope.contains("info@bucher.de")


@pytest.mark.parametrize("value", ["", [], "undisclosed-recipients:;", ["", ""]])
def test_no_address_at_all_is_denied(value: object) -> None:
    assert "no recipient address" in reason(SCOPE, value)


@pytest.mark.parametrize("value", [None, 3, {"to": "alice@example.com"}, [3], b"a@example.com"])
def test_wrong_types_are_denied(value: object) -> None:
    assert "expected recipient" in reason(SCOPE, value)


def test_addresses_in_lists_every_normalized_address() -> None:
    value = ["Alice <alice@Example.com>", "team: bob@example.com, info@bücher.de;"]
    assert addresses_in(value) == ["alice@example.com", "bob@example.com", "info@xn--bcher-kva.de"]
    with pytest.raises(ScopeViolation):
        addresses_in("alice@example.com\nBcc: eve@evil.com")


# --- settings, spec, within -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one allowed address or domain"),
        ({"addresses": ["Alice <alice@example.com>"]}, "not a plain valid address"),
        ({"addresses": ["not-an-address"]}, "not a plain valid address"),
        ({"domains": ["exa mple.com"]}, "not a valid mail domain"),
        ({"domains": ["a*.example.com"]}, r"leading '\*\.'"),
        ({"domains": [3]}, "must contain strings"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        Emails(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "scope",
    [SCOPE, Emails(addresses=["B@x.com", "a@X.com"]), Emails(domains="*.bücher.de")],
)
def test_spec_round_trips(scope: Emails) -> None:
    assert type(scope)(**scope.spec()) == scope


def test_within_narrower_addresses_and_domains() -> None:
    assert Emails(addresses=["alice@example.com"]).within(SCOPE)
    assert Emails(domains=["x.corp.com", "*.eu.corp.com"]).within(SCOPE)
    assert Emails(addresses=["ceo@partner.org"], domains=["example.com"]).within(SCOPE)
    assert not SCOPE.within(Emails(domains=["example.com"]))
    assert not Emails(domains=["partner.org"]).within(SCOPE)  # only one address there
    assert not Emails(domains=["*.example.com"]).within(Emails(domains=["example.com"]))
    assert not Emails(domains=["corp.com"]).within(SCOPE)


def flagged(scope: Emails, value: object) -> bool:
    """Whether ``scope`` refuses ``value`` as unreadable (as opposed to readable but outside)."""
    with pytest.raises(ScopeViolation) as caught:
        scope.check(value)
    return caught.value.unreadable


@pytest.mark.parametrize(
    "value",
    [3, "", "a@example.com\nBcc: e@evil.com", "a@example.com e@evil.com", '"a b"@evil.com'],
)
def test_values_the_scope_cannot_read_are_flagged_unreadable(value: object) -> None:
    assert flagged(SCOPE, value) is True


def test_a_readable_address_outside_the_scope_is_not_flagged() -> None:
    assert flagged(SCOPE, "alice@example.com, eve@evil.com") is False
