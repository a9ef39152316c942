"""Email recipients, checked on every address a header really contains.

An argument such as ``to`` is read the way a mail library reads a ``To:`` header: with the
standard library's RFC 5322 parser (``email.headerregistry``), so display names, comments,
groups (``team: a@x.com, b@y.com;``) and quoting are understood, and every address found
is validated and normalized by ``email_validator`` (IDN domains to punycode). Anything the
parser flags as a defect, and any line break, denies: a header that two mail libraries could
read differently is not one to send. The one defect tolerated is a period in an unquoted
display name (``John Q. Public <john@corp.com>``), which real headers are full of and every
reader agrees on. Tabs count as spaces (folding whitespace); addresses are separated by
commas, as RFC 5322 says (``a@x.com<TAB>b@x.com`` is one malformed address, not two).

The addresses found must also be exactly those ``email.utils.getaddresses`` finds, in order:
that is how ``smtplib``'s ``send_message`` derives the envelope recipients from the headers,
and a header the two readers disagree on is denied.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from email.errors import ObsoleteHeaderDefect
from email.header import decode_header
from email.policy import default as _email_policy
from email.utils import getaddresses
from typing import Any

import email_validator

from ._base import Scope, ScopeError, ScopeViolation
from ._text import describe, preview, string_list

__all__ = ["Emails", "addresses_in"]

Recipient = tuple[str, str]
"""An address as ``(local part, ascii domain in lower case)``."""

_CACHE_LIMIT = 2048  # longest header text kept in the parse cache


_ROUTING = frozenset("%!")
"""Characters that make a local part a route: ``user%site@local`` (the percent hack) and
``site!user@local`` (UUCP bang paths) are rewritten to ``user@site`` by mail servers that
follow the old conventions, Postfix by default (``allow_percent_hack``, ``swap_bangpath``)."""


_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_ADDRESS_SYNTAX = frozenset('@<>,;:"()[]\\')
"""What an encoded word must not decode to: a program that decodes the header before
reading its addresses (``decode_header`` then ``getaddresses``) would read new addresses."""


def _encoded_words(text: str) -> None:
    """``ScopeViolation`` if an RFC 2047 encoded word in ``text`` decodes to address syntax
    (``=?utf-8?q?e=40evil.com?= <a@x.com>``) or to an invisible character."""
    if "=?" not in text:
        return
    try:
        chunks = decode_header(text)
        decoded = [
            data.decode(charset) if isinstance(data, bytes) else data
            for data, charset in chunks
            if charset is not None
        ]
    except (LookupError, UnicodeError, ValueError) as exc:
        raise ScopeViolation(
            f"recipient list {preview(text)} holds an encoded word that cannot be decoded: {exc}",
            unreadable=True,
        ) from None
    for word in decoded:
        if not _ADDRESS_SYNTAX.isdisjoint(word) or not word.isprintable():
            raise ScopeViolation(
                f"recipient list {preview(text)} holds an encoded word that decodes to "
                f"{preview(word, 40)}: a program that decodes the header before reading it "
                "would find other recipients there",
                unreadable=True,
            )


def _validated(addr_spec: str) -> Recipient:
    """``addr_spec`` normalized by email_validator; ``ValueError`` if it is not deliverable
    syntax (quoted local parts and IP-literal domains are refused too) or if its local part
    is a route to another domain (``%`` or ``!``)."""
    result = email_validator.validate_email(addr_spec, check_deliverability=False)
    if not _ROUTING.isdisjoint(result.local_part):
        raise ValueError(
            "the part before the @-sign holds '%' or '!', which mail servers read as a route "
            "to another domain (user%site@x and site!user@x are delivered to user@site)"
        )
    if _ENCODED_WORD.search(result.local_part):
        raise ValueError(
            "the part before the @-sign holds an encoded word (=?charset?q?...?=), which some "
            "mail libraries decode into another address"
        )
    domain = result.ascii_domain
    if not domain:  # pragma: no cover - only for domain literals, which are refused above
        raise ValueError("the domain must be a name")
    return result.local_part, domain.lower()


@functools.lru_cache(maxsize=1024)
def _parse_header_cached(text: str) -> tuple[Recipient, ...]:
    return _parse_header(text)


def _tolerated(defect: Exception) -> bool:
    return isinstance(defect, ObsoleteHeaderDefect) and str(defect) == "period in 'phrase'"


def _parse_header(text: str) -> tuple[Recipient, ...]:
    """Every recipient in one header value; ``ScopeViolation`` if it is not clean."""
    if not text.replace("\t", " ").isprintable():
        bad = next(c for c in text if not c.isprintable() and c != "\t")
        raise ScopeViolation(
            f"recipient list {preview(text)} contains a line break or invisible character "
            f"(U+{ord(bad):04X}), which could smuggle extra headers or recipients",
            unreadable=True,
        )
    _encoded_words(text)
    try:
        header = _email_policy.header_factory("To", text)
    except Exception as exc:  # the stdlib parser crashes on some odd headers (nested groups)
        raise ScopeViolation(
            f"cannot parse recipient list {preview(text)}: {type(exc).__name__}: {exc}",
            unreadable=True,
        ) from None
    defects = [defect for defect in header.defects if not _tolerated(defect)]
    if defects:
        raise ScopeViolation(
            f"recipient list {preview(text)} is not a clean address list: {defects[0]}",
            unreadable=True,
        )
    specs = [address.addr_spec for address in header.addresses]
    envelope = [addr for _, addr in getaddresses([text]) if addr]
    if specs != envelope:
        raise ScopeViolation(
            f"recipient list {preview(text)} is ambiguous: the header parser reads "
            f"{preview(specs, 80)} but smtplib would send to {preview(envelope, 80)}",
            unreadable=True,
        )
    found: list[Recipient] = []
    for address in header.addresses:
        try:
            found.append(_validated(address.addr_spec))
        except (email_validator.EmailNotValidError, ValueError) as exc:
            raise ScopeViolation(
                f"recipient {preview(address.addr_spec)} is not a valid address: {exc}",
                unreadable=True,
            ) from None
    return tuple(found)


def _recipients(value: object) -> list[Recipient]:
    """Every recipient in a header string or a list of them; at least one in each string."""
    if isinstance(value, str):
        texts: Iterable[object] = (value,)
    elif isinstance(value, list | tuple):
        texts = value
    else:
        raise ScopeViolation(
            f"expected recipients as a string or a list of strings, found {describe(value)}",
            unreadable=True,
        )
    found: list[Recipient] = []
    for text in texts:
        if not isinstance(text, str):
            raise ScopeViolation(
                f"expected recipient strings, found {describe(text)}", unreadable=True
            )
        in_text = _parse_header_cached(text) if len(text) <= _CACHE_LIMIT else _parse_header(text)
        if not in_text:
            # ["", "a@x.com"]: an empty entry is not "no one"; the tool may read it as
            # anything (a default recipient, a mailing list), so it denies.
            raise ScopeViolation(
                f"found no recipient address in {preview(text)} (in {preview(value, 80)})",
                unreadable=True,
            )
        found.extend(in_text)
    if not found:
        raise ScopeViolation(f"found no recipient address in {preview(value)}", unreadable=True)
    return found


def addresses_in(value: object) -> list[str]:
    """Every address in ``value`` (a header string or a list of them), normalized as
    ``local@ascii-domain``, in order and with repeats.

    Raises ``ScopeViolation`` for anything ``Emails`` would refuse to read (wrong type, a
    line break, a parser defect, an invalid address, no address at all).

        >>> addresses_in("Alice <alice@Example.com>, team: bob@example.com;")
        ['alice@example.com', 'bob@example.com']
    """
    return [f"{local}@{domain}" for local, domain in _recipients(value)]


def _domain_setting(pattern: str) -> str:
    try:
        return _validated(f"postmaster@{pattern}")[1]
    except (email_validator.EmailNotValidError, ValueError) as exc:
        raise ScopeError(f"domains: {preview(pattern)} is not a valid mail domain: {exc}") from None


class Emails(Scope):
    """Recipients limited to listed addresses and domains.

    A value is a header string (``"Alice <a@x.com>, b@y.com"``, groups included) or a list
    of them; every address in it must be allowed, and there must be at least one.

    - ``addresses``: exact addresses. Domains compare case-insensitively (after IDN to
      punycode); local parts compare exactly as normalized (``Bob@x.com`` is not
      ``bob@x.com``: the receiving server decides whether case matters, so the guard does not).
    - ``domains``: ``"example.com"`` allows every address at exactly that domain;
      ``"*.example.com"`` allows every subdomain at any depth, but not ``example.com`` itself.

    Refused outright, whatever the settings: quoted local parts (``"a@good.com"@evil.com``
    is an address at ``evil.com``, and quoting is a classic smuggling channel), local parts
    holding ``%`` or ``!`` (``e%evil.com@good.com`` and ``evil.com!e@good.com`` are routes:
    mail servers such as Postfix, by default, deliver them to ``e@evil.com``), IP-literal
    domains, special-use domains (``.test``, ``.local``, ``localhost``), line breaks and
    invisible characters, and any header the stdlib parser reports a defect in (stray text,
    undecodable encoded words, a trailing comma). RFC 2047 encoded words are refused where
    they decode to address syntax (``@ < > , ; : " ( ) [ ] \\``: ``=?utf-8?q?e=40evil.com?=
    <a@x.com>`` is read as ``e@evil.com`` by a program that decodes the header before reading
    it) and anywhere in a local part; encoded names (``=?utf-8?q?J=C3=B6rg?= <j@x.com>``)
    pass.

    Example::

        >>> scope = Emails(addresses=["ceo@partner.org"], domains=["example.com"])
        >>> scope.contains("Alice <alice@example.com>, ceo@partner.org")
        True
        >>> scope.contains(["alice@example.com", "mallory@evil.com"])
        False
        >>> scope.contains('"alice@example.com"@evil.com')
        False
    """

    kind = "email"

    def __init__(
        self, addresses: str | Iterable[str] = (), domains: str | Iterable[str] = ()
    ) -> None:
        allowed: set[Recipient] = set()
        for address in string_list(addresses, "addresses"):
            try:
                allowed.add(_validated(address))
            except (email_validator.EmailNotValidError, ValueError) as exc:
                raise ScopeError(
                    f"addresses: {preview(address)} is not a plain valid address: {exc}"
                ) from None
        exact: set[str] = set()
        wildcards: set[str] = set()
        for pattern in string_list(domains, "domains"):
            if pattern.startswith("*."):
                wildcards.add(_domain_setting(pattern[2:]))
            elif "*" in pattern:
                raise ScopeError(
                    f"domains: {preview(pattern)}: '*' is only allowed as a leading '*.' "
                    "(as in '*.example.com')"
                )
            else:
                exact.add(_domain_setting(pattern))
        if not (allowed or exact or wildcards):
            raise ScopeError("Emails needs at least one allowed address or domain, found none")
        self._addresses = frozenset(allowed)
        self._domains = frozenset(exact)
        self._wildcards = frozenset(wildcards)
        self._shown_addresses = sorted(f"{local}@{domain}" for local, domain in allowed)
        self._shown_domains = sorted(exact) + sorted("*." + w for w in wildcards)

    def _allows(self, recipient: Recipient) -> bool:
        if recipient in self._addresses:
            return True
        return self._domain_allowed(recipient[1])

    def _domain_allowed(self, domain: str) -> bool:
        if domain in self._domains:
            return True
        start = domain.find(".")
        while start != -1:
            if domain[start + 1 :] in self._wildcards:
                return True
            start = domain.find(".", start + 1)
        return False

    def check(self, value: object) -> None:
        for recipient in _recipients(value):
            if not self._allows(recipient):
                local, domain = recipient
                raise ScopeViolation(
                    f"recipient {local}@{domain} is not allowed",
                    allowed=f"allowed addresses {self._shown_addresses}, allowed domains "
                    f"{self._shown_domains}",
                )

    def spec(self) -> dict[str, Any]:
        return {"addresses": list(self._shown_addresses), "domains": list(self._shown_domains)}

    def within(self, other: Scope) -> bool:
        """Every address and domain ``self`` allows, ``other`` allows too."""
        if not isinstance(other, Emails):
            return False
        if not all(other._allows(recipient) for recipient in self._addresses):
            return False
        if not all(other._domain_allowed(domain) for domain in self._domains):
            return False
        return all(
            base in other._wildcards or other._wildcard_base_covered(base)
            for base in self._wildcards
        )

    def _wildcard_base_covered(self, base: str) -> bool:
        # "*.a.example.com" is covered by "*.example.com": every name under a.example.com
        # is also under example.com. It is not covered by the exact domain "a.example.com".
        start = base.find(".")
        while start != -1:
            if base[start + 1 :] in self._wildcards:
                return True
            start = base.find(".", start + 1)
        return False
