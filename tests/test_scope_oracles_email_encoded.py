"""Emails: RFC 2047 encoded words that decode to address syntax.

``=?utf-8?q?e=40evil.com?= <a@corp.com>`` is one address at ``corp.com`` for the header
parser and for smtplib (the encoded word is a display name). A program that decodes the
header before reading its addresses, as ``email.header``'s documentation invites
(``str(make_header(decode_header(value)))`` then ``getaddresses``, a common way to read a
``To:`` header whose names are encoded), reads ``e@evil.com`` and ``a@corp.com``; a
decoded ``,`` or ``<``/``>`` splits or moves addresses the same way, and a bare name left
behind (``root``) is delivered by a mail server to a mailbox in its own domain.

Two oracles, both real: smtplib's ``send_message`` to a local aiosmtpd server (the envelope
the standard library sends) and the decode-then-read consumer above. A value the scope
allows must reach only allowed mailboxes through both.

Encoded words inside a local part (``x=?utf-8?q?e=40evil.com?=@corp.com``) reach no other
mailbox through either consumer (neither decodes them: RFC 2047 forbids encoded words in an
address), which this file checks too; the scope still refuses them, since some mail
libraries outside Python do decode them and no real address holds one.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.header import decode_header, make_header
from email.utils import getaddresses
from random import Random

import pytest
import scope_oracles as so
from hypothesis import HealthCheck, given, settings

SCOPE = so.email_scope()  # ceo@partner.org and anyone at corp.com

_DECODED = ["e@evil.com", "<e@evil.com>", "e@evil.com,", "root,", "root;", "e@evil.com>",
            "a, b", "x\"y", "J\u00f6rg", "M\u00fcller Hans", "e(at)evil.com", "@evil.com",
            "ceo@partner.org", "a@corp.com", "Bob"]  # fmt: skip


def _encode(r: Random, text: str) -> str:
    if r.random() < 0.5:
        import base64

        return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="
    quoted = "".join(
        c if c.isalnum() and c.isascii() else "_" if c == " " else f"={b:02X}"
        for c in text
        for b in ([ord(c)] if len(c.encode()) == 1 else list(c.encode()))
    )
    return f"=?{r.choice(['utf-8', 'UTF-8', 'iso-8859-1'])}?{r.choice('qQ')}?{quoted}?="


def encoded_value(r: Random) -> str:
    """A header whose display names, comments or local parts hold encoded words."""
    parts = []
    for _ in range(r.randint(1, 2)):
        word = _encode(r, r.choice(_DECODED)) if r.random() < 0.8 else "Bob"
        spec = r.choice(["a@corp.com", "ceo@partner.org", "x.y@corp.com"])
        form = r.randrange(5)
        if form == 0:
            parts.append(f"{word} <{spec}>")
        elif form == 1:
            parts.append(f"{spec} ({word})")
        elif form == 2:
            parts.append(f"{word}<{spec}>")
        elif form == 3:
            local, _, domain = spec.partition("@")
            parts.append(f"{local}{word}@{domain}")
        else:
            parts.append(f"{word} {word} <{spec}>")
    return ", ".join(parts)


def decoded_recipients(value: str) -> list[str]:
    """What a program that decodes the header before reading it sends to."""
    return [addr for _, addr in getaddresses([str(make_header(decode_header(value)))]) if addr]


@pytest.fixture(scope="module")
def smtp() -> Iterator[so.SmtpOracle]:
    oracle = so.SmtpOracle()
    yield oracle
    oracle.close()


def test_the_oracle_decodes_a_display_name_into_another_mailbox() -> None:
    assert "e@evil.com" in decoded_recipients("=?utf-8?q?e=40evil.com?= <a@corp.com>")
    assert "root" in decoded_recipients("=?utf-8?q?root=2C?= <a@corp.com>")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(so.strategy(encoded_value))
def test_allowed_headers_reach_only_allowed_mailboxes_when_decoded(
    smtp: so.SmtpOracle, value: str
) -> None:
    if SCOPE.contains(value):
        problem, _ = smtp.run(value)
        assert problem is None, value
        outside = [a for a in decoded_recipients(value) if not so._email_allowed(a)]
        assert not outside, (value, outside)


@pytest.mark.parametrize(
    "value",
    ["=?utf-8?q?J=C3=B6rg?= <a@corp.com>", "=?utf-8?b?TcO8bGxlciBIYW5z?= <a@corp.com>",
     "a@corp.com (=?utf-8?q?Bob?=)", "=?iso-8859-1?q?Andr=E9?= <ceo@partner.org>"],
)  # fmt: skip
def test_encoded_names_without_address_syntax_still_pass(smtp: so.SmtpOracle, value: str) -> None:
    SCOPE.check(value)
    assert smtp.run(value)[0] is None
    assert all(so._email_allowed(a) for a in decoded_recipients(value))


@pytest.mark.parametrize(
    "local", ["x=?utf-8?q?e=40evil.com?=", "x.=?utf-8?b?ZUBldmlsLmNvbQ==?=", "a=?utf-8?q?b?="]
)
def test_an_encoded_word_in_a_local_part_reaches_no_one_else_and_is_refused(
    smtp: so.SmtpOracle, local: str
) -> None:
    value = f"{local}@corp.com"
    assert smtp.run(value)[0] is None  # the standard library sends it as written, to corp.com
    assert all(a.endswith("@corp.com") for a in decoded_recipients(value))
    assert not SCOPE.contains(value)
