"""Emails: local parts that mail servers read as a route to another domain.

``e%evil.com@corp.com`` is one address at ``corp.com`` for every header parser, and smtplib
sends it as is. The server of ``corp.com`` then decides: Postfix, by default
(``allow_percent_hack = yes``, ``swap_bangpath = yes`` in postconf(5); trivial-rewrite(8)),
rewrites ``user%site@local`` and ``site!user@local`` to ``user@site`` and relays the
message there; sendmail and other MTAs have the same percent hack and UUCP bang paths.
So a scope that allows the domain ``corp.com`` must not let such a local part through.

The grammar builds local parts out of routing tricks mixed with ordinary characters, in
every header form. The oracle is the envelope smtplib really sends (``send_message`` to a
local aiosmtpd server, ``scope_oracles.SmtpOracle``), then the rewriting Postfix applies
to each envelope recipient by default: the final recipient must be allowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from random import Random

import pytest
import scope_oracles as so
from hypothesis import HealthCheck, given, settings

from guardrails_plugin.scopes import Emails

SCOPE = so.email_scope()  # ceo@partner.org and anyone at corp.com

_TRICKS = ["e%evil.com", "e%evil.com%corp.com", "evil.com!e", "a!evil.com!e", "e%evil.com!x",
           "e%25evil.com", "e%evil", "e!evil.com", "%evil.com", "e%", "!e"]  # fmt: skip


def postfix_rewrite(address: str) -> str:
    """Postfix's default rewriting of an address in a local domain (trivial-rewrite(8):
    ``swap_bangpath``, then ``allow_percent_hack``), repeated as the result is resolved
    again: ``site!user@local`` and ``user%site@local`` become ``user@site``."""
    for _ in range(10):
        local = address.rpartition("@")[0]
        if "!" in local:
            site, _, user = local.partition("!")
            address = f"{user}@{site}"
        elif "%" in local:
            user, _, site = local.rpartition("%")
            address = f"{user}@{site}"
        else:
            return address
    return address


def routed_value(r: Random) -> str | list[str]:
    """A header (or list) whose addresses include a local part with a route in it."""
    addresses = []
    for _ in range(r.randint(1, 3)):
        local = r.choice(_TRICKS) if r.random() < 0.6 else r.choice(["john", "a.b", "x+tag"])
        spec = f"{local}@{r.choice(['corp.com', 'CORP.COM', 'partner.org'])}"
        addresses.append(r.choice([spec, f"Bob <{spec}>", f"{spec} (Bob)"]))
    text = ", ".join(addresses)
    if r.random() < 0.2:
        text = f"team: {text};"
    return [text, "ceo@partner.org"] if r.random() < 0.2 else text


@pytest.fixture(scope="module")
def smtp() -> Iterator[so.SmtpOracle]:
    oracle = so.SmtpOracle()
    yield oracle
    oracle.close()


def _final_recipients(smtp: so.SmtpOracle, value: str | list[str]) -> list[str]:
    smtp.run(value)
    return [postfix_rewrite(r) for batch in smtp.received for r in batch]


def test_the_oracle_routes_a_percent_hack_to_the_other_domain(smtp: so.SmtpOracle) -> None:
    assert _final_recipients(smtp, "e%evil.com@corp.com") == ["e@evil.com"]
    assert _final_recipients(smtp, "evil.com!e@corp.com") == ["e@evil.com"]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(so.strategy(routed_value))
def test_allowed_recipients_stay_allowed_after_the_server_rewrites_them(
    smtp: so.SmtpOracle, value: str | list[str]
) -> None:
    if SCOPE.contains(value):
        finals = _final_recipients(smtp, value)
        assert finals, value
        outside = [r for r in finals if not so._email_allowed(r)]
        assert not outside, (value, outside)


@pytest.mark.parametrize("local", ["e%evil.com", "evil.com!e", "a%b", "x!y"])
def test_a_routed_local_part_is_refused_even_for_a_listed_domain(local: str) -> None:
    assert not SCOPE.contains(f"{local}@corp.com")
    assert not Emails(domains=["*.corp.com"]).contains(f"{local}@eu.corp.com")


@pytest.mark.parametrize("value", ["john@corp.com", "x+tag@corp.com", "a.b-c_d@corp.com"])
def test_ordinary_local_parts_still_pass(smtp: so.SmtpOracle, value: str) -> None:
    SCOPE.check(value)
    assert _final_recipients(smtp, value) == [value]
