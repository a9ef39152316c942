"""URLs, checked on the host a real HTTP client would connect to.

The value is parsed with ada (a WHATWG URL parser, the standard browsers and Node follow),
which folds the classic confusions into the one host that gets contacted: backslashes as
slashes (``http://evil.com\\@good.com`` goes to ``evil.com``), userinfo
(``https://good.com@evil.com``), IDN to punycode, IPv4 in hex, octal or one big number
(``http://0x7f.1``, ``http://2130706433`` are ``127.0.0.1``). Python clients that follow
RFC 3986 instead (``urllib``, ``requests``, ``httpx``) read some strings differently: they end
the authority at ``/``, ``?`` or ``#`` but not at ``\\``, keep tabs and newlines that WHATWG
strips, do not percent-decode or IDNA-map the host the same way. So before ada's answer is
trusted, the raw text must be plain: ``scheme://`` then an authority made of ASCII host
characters (letters, digits, ``.``, ``-``, ``_``, or a bracketed IPv6 literal), an optional
numeric port and at most one ``@``, and no control character or space anywhere. Everything
else is denied as ambiguous rather than parsed a second way: a second parse of the host (as
a URL again) would turn ``\\`` back into a separator and agree with the wrong reading.

``default_scheme`` (say ``"https"``) is for tools that take ``www.example.com`` and complete
it: a value that does not start with ``scheme://`` is judged as ``https://<value>``, the
string such a tool hands to its client, by the same parse and the same checks (userinfo,
backslashes, IDNA, IP spellings, ports). Values that start with ``/`` or ``\\`` (a
scheme-relative ``//host`` is read differently by different completions) are refused; so is
anything that does not parse once completed (``javascript:...``, ``http:evil.com``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

import ada_url

from ._base import Scope, ScopeError, ScopeViolation
from ._text import describe, preview, string_list

__all__ = ["Urls", "host_of"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
"""Ports a client uses when the URL names none (the WHATWG "special" schemes)."""

_ATTRIBUTES = ("protocol", "username", "password", "hostname", "port", "host_type")
_IPV4 = ada_url.HostType.IPV4
_IPV6 = ada_url.HostType.IPV6


# The plain form every client reads alike: scheme "://" authority, then "/", "?", "#" or end.
_PLAIN = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)")
_HOST_CHARS = re.compile(r"[A-Za-z0-9._\-]+")
_IPV6_LITERAL = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_HAS_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")


def _idna_agrees(host: str, hostname: str) -> bool:
    """Whether Python's own IDNA codec (what ``socket`` uses for a non-ASCII host) gives the
    host ada gave: true for ordinary IDN names, false for ``ß``, joiners and other characters
    IDNA 2003 and UTS 46 map differently."""
    try:
        encoded = host.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        return False
    return _HOST_CHARS.fullmatch(encoded) is not None and encoded.rstrip(".") == hostname.rstrip(
        "."
    )


def _ambiguity(url: str, hostname: str) -> str | None:
    """Why RFC 3986 clients could read ``url``'s authority differently from WHATWG (which
    connects to ``hostname``), if so."""
    bad = next((c for c in url if c <= " " or c == "\x7f"), None)
    if bad is not None:
        return (
            f"holds a space or control character (U+{ord(bad):04X}), which WHATWG parsers "
            "strip or refuse and other clients keep"
        )
    match = _PLAIN.match(url)
    if match is None:
        return "does not start with 'scheme://'"
    authority = match.group(2)
    if "\\" in authority:
        return (
            "has a backslash in its authority: WHATWG parsers end the host there, "
            "Python clients read it as part of the host"
        )
    userinfo, _, hostport = authority.rpartition("@")
    if "@" in userinfo:
        return "has more than one '@' in its authority"
    if "@" in authority and not userinfo:
        return "has an empty userinfo before '@' (urllib then connects to '@host')"
    if hostport.startswith("["):
        end = hostport.find("]") + 1
        host, rest = hostport[:end], hostport[end:]
        plain_host = end > 0 and _IPV6_LITERAL.fullmatch(host) is not None
    else:
        host, colon, port = hostport.partition(":")
        rest = colon + port
        plain_host = _HOST_CHARS.fullmatch(host) is not None or (
            not host.isascii() and "%" not in host and _idna_agrees(host, hostname)
        )
    if not plain_host:
        return (
            f"has a host {preview(host, 60)} that is not plain (ASCII letters, digits, '.', "
            "'-', '_', or a name Python's IDNA codec maps to the same host): "
            "percent-encoding and look-alike characters are mapped differently by "
            "different clients; write the host in ASCII (punycode)"
        )
    if rest and not (rest[0] == ":" and rest[1:].isdigit() and rest[1:].isascii()):
        return f"has a port part {preview(rest, 30)} that is not ':' and digits"
    return None


def _parse(url: str) -> dict[str, Any]:
    """ada's parse of ``url`` (only what the scope reads); ``ValueError`` when invalid."""
    return dict(ada_url.parse_url(url, attributes=_ATTRIBUTES))


def _bare_host(pattern: str) -> tuple[str, Any]:
    """The canonical host of ``pattern`` (punycode, lower case, no trailing dot) and its type.

    Derived by letting ada parse ``http://<pattern>/``, so patterns and values are normalized
    by the same code; anything that is not a bare host (a port, a path, userinfo) is refused.
    """
    candidate = f"[{pattern}]" if ":" in pattern and not pattern.startswith("[") else pattern
    try:
        parsed = dict(ada_url.parse_url(f"http://{candidate}/", attributes=("href", *_ATTRIBUTES)))
    except ValueError:
        raise ScopeError(
            f"host {preview(pattern)} is not a valid host name or IP address"
        ) from None
    hostname = str(parsed["hostname"])
    if parsed["href"] != f"http://{hostname}/" or not hostname:
        raise ScopeError(
            f"host {preview(pattern)} must be a bare host name or IP address "
            "(no scheme, port, path or userinfo)"
        )
    is_ipv6 = parsed["host_type"] == _IPV6
    hostname = hostname[1:-1] if is_ipv6 else hostname.removesuffix(".")
    if parsed["host_type"] not in (_IPV4, _IPV6) and "" in hostname.split("."):
        raise ScopeError(f"host {preview(pattern)} has an empty label")
    return hostname, parsed["host_type"]


def host_of(value: str) -> str | None:
    """The host a WHATWG client connects to for ``value``, canonical as ``Urls`` compares
    hosts (punycode, lower case, no trailing dot, an IPv6 literal without brackets); ``None``
    when ``value`` is not a ``scheme://`` URL naming a host.

        >>> host_of("https://Docs.Example.COM./a?b"), host_of("http://0x7f.1/")
        ('docs.example.com', '127.0.0.1')
    """
    if _HAS_SCHEME.match(value) is None:
        return None
    try:
        url = _parse(value)
    except ValueError:
        return None
    hostname = str(url["hostname"])
    if not hostname:
        return None
    return hostname[1:-1] if url["host_type"] == _IPV6 else hostname.removesuffix(".")


def _ip(hostname: str) -> IPAddress:
    return ipaddress.ip_address(hostname.strip("[]"))


class Urls(Scope):
    """URLs whose scheme, host, port and userinfo are allowed.

    - ``hosts``: ``"example.com"`` allows exactly that host; ``"*.example.com"`` allows any
      subdomain at any depth but not ``example.com`` itself (list both for both). Patterns
      are normalized like values: lower case, IDN to punycode, trailing dot dropped. An IP
      address in ``hosts`` allows that exact address.
    - IP literal hosts (in any spelling ada accepts) are denied unless the address is listed
      in ``hosts`` or falls in one of ``networks`` (CIDR strings such as ``"10.0.0.0/8"``).
      Host names are not resolved: DNS pointing ``good.com`` at ``127.0.0.1`` is not seen.
    - ``schemes``: allowed schemes, lower case, without ``:``.
    - ``ports``: ``None`` allows only the scheme's default port (written or not:
      ``https://x:443`` is fine); a list allows exactly those ports, where a URL without a
      port uses the scheme's default (``https`` 443, ``http`` 80, ``ws`` 80, ``wss`` 443,
      ``ftp`` 21; a scheme with no default needs an explicit listed port).
    - ``allow_userinfo``: URLs carrying ``user:pass@`` are denied unless this is set.
    - ``default_scheme``: one of ``schemes``; a value without ``scheme://`` is judged as
      ``<default_scheme>://<value>`` (see the module's docstring). ``None`` (the default)
      refuses such values as not URLs.

    Example::

        >>> scope = Urls(["api.example.com", "*.cdn.example.com"])
        >>> scope.contains("https://api.example.com/v1/items")
        True
        >>> scope.contains("https://api.example.com@evil.com/")
        False
        >>> scope.contains("https://img.eu.cdn.example.com/logo.png")
        True
        >>> scope.contains("http://api.example.com/")  # scheme not allowed
        False
    """

    kind = "url"

    def __init__(
        self,
        hosts: str | Iterable[str],
        *,
        schemes: str | Iterable[str] = ("https",),
        ports: Iterable[int] | None = None,
        allow_userinfo: bool = False,
        networks: str | Iterable[str] = (),
        default_scheme: str | None = None,
    ) -> None:
        exact: set[str] = set()
        wildcards: set[str] = set()
        ips: set[IPAddress] = set()
        for pattern in string_list(hosts, "hosts"):
            if pattern.startswith("*."):
                host, host_type = _bare_host(pattern[2:])
                if host_type in (_IPV4, _IPV6):
                    raise ScopeError(f"host pattern {preview(pattern)}: '*.' needs a domain name")
                if "*" in host:
                    raise ScopeError(f"host pattern {preview(pattern)}: '*' only as a leading '*.'")
                wildcards.add(host)
            elif "*" in pattern:
                raise ScopeError(
                    f"host pattern {preview(pattern)}: '*' is only allowed as a leading '*.' "
                    "(as in '*.example.com')"
                )
            else:
                host, host_type = _bare_host(pattern)
                if host_type in (_IPV4, _IPV6):
                    ips.add(_ip(host))
                else:
                    exact.add(host)
        nets: set[IPNetwork] = set()
        for cidr in string_list(networks, "networks"):
            try:
                nets.add(ipaddress.ip_network(cidr))
            except ValueError as exc:
                raise ScopeError(f"networks: {preview(cidr)} is not a CIDR network: {exc}") from exc
        if not (exact or wildcards or ips or nets):
            raise ScopeError("hosts (or networks) must allow at least one host, found none")

        scheme_set: set[str] = set()
        for scheme in string_list(schemes, "schemes"):
            try:
                protocol = _parse(f"{scheme}://x/")["protocol"]
            except ValueError:
                protocol = None
            if protocol != scheme.lower() + ":":
                raise ScopeError(f"schemes: {preview(scheme)} is not a URL scheme (as in 'https')")
            scheme_set.add(scheme.lower())
        if not scheme_set:
            raise ScopeError("schemes must allow at least one scheme, found none")

        port_set: frozenset[int] | None = None
        if ports is not None:
            if isinstance(ports, str | bytes) or not isinstance(ports, Iterable):
                raise ScopeError(
                    f"ports must be a list of integers or None, found {describe(ports)}"
                )
            port_list = list(ports)
            for port in port_list:
                if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                    raise ScopeError(f"ports must be integers in 1..65535, found {describe(port)}")
            port_set = frozenset(port_list)
        if not isinstance(allow_userinfo, bool):
            raise ScopeError(f"allow_userinfo must be a bool, found {describe(allow_userinfo)}")
        if default_scheme is not None:
            if not isinstance(default_scheme, str) or default_scheme.lower() not in scheme_set:
                raise ScopeError(
                    f"default_scheme must be one of schemes {sorted(scheme_set)}, found "
                    f"{describe(default_scheme)}"
                )
            default_scheme = default_scheme.lower()
        self._default_scheme = default_scheme

        self._exact = frozenset(exact)
        self._wildcards = frozenset(wildcards)
        self._ips = frozenset(ips)
        self._networks = tuple(sorted(nets, key=lambda n: (n.version, n)))
        self._schemes = frozenset(scheme_set)
        self._protocols = frozenset(s + ":" for s in scheme_set)
        self._ports = port_set
        self._allow_userinfo = allow_userinfo
        self._hosts_shown = sorted(exact) + sorted("*." + w for w in wildcards)
        self._hosts_shown += sorted(str(ip) for ip in ips)

    def check(self, value: object) -> None:
        if not isinstance(value, str):
            raise ScopeViolation(f"expected a URL string, found {describe(value)}", unreadable=True)
        if self._default_scheme is not None and _HAS_SCHEME.match(value) is None:
            value = self._completed(value)
        try:
            url = _parse(value)
        except ValueError:
            raise ScopeViolation(f"{preview(value)} is not a valid URL", unreadable=True) from None
        protocol: str = url["protocol"]
        if protocol not in self._protocols:
            raise ScopeViolation(
                f"{preview(value)} uses scheme {protocol[:-1]!r}, not an allowed scheme",
                allowed=f"allowed schemes: {sorted(self._schemes)}",
            )
        hostname: str = url["hostname"]
        if not hostname:
            raise ScopeViolation(f"{preview(value)} names no host", unreadable=True)
        self._check_host(value, hostname, url["host_type"])
        problem = _ambiguity(value, hostname)
        if problem is not None:
            raise ScopeViolation(
                f"{preview(value)} is ambiguous: WHATWG parsers connect to {hostname!r}, but "
                f"it {problem}",
                unreadable=True,
            )
        if (url["username"] or url["password"]) and not self._allow_userinfo:
            raise ScopeViolation(
                f"{preview(value)} carries credentials before '@' (user:password@); "
                f"it connects to host {hostname!r}, but userinfo is not allowed"
            )
        self._check_port(value, protocol[:-1], url["port"])

    def _completed(self, value: str) -> str:
        """``value`` (no ``scheme://``) as the tool completes it: ``<default_scheme>://value``."""
        if value[:1] in ("/", "\\"):
            raise ScopeViolation(
                f"{preview(value)} starts with {value[0]!r}: tools complete such a value "
                "differently (a scheme-relative '//host' or a path); write the host first",
                unreadable=True,
            )
        return f"{self._default_scheme}://{value}"

    def _check_host(self, value: str, hostname: str, host_type: Any) -> None:
        if host_type in (_IPV4, _IPV6):
            ip = _ip(hostname)
            if ip in self._ips or any(ip in net for net in self._networks):
                return
            raise ScopeViolation(
                f"{preview(value)} connects to IP address {str(ip)!r}, which is not in allowed "
                "hosts or networks",
                allowed=f"allowed hosts {self._hosts_shown}, networks "
                f"{[str(n) for n in self._networks]}",
            )
        host = hostname[:-1] if hostname.endswith(".") else hostname
        if host in self._exact:
            return
        labels = host.split(".")
        if "" not in labels:
            # "a.b.example.com": try "b.example.com", then "example.com", ... as wildcard bases.
            suffix_start = 0
            for label in labels[:-1]:
                suffix_start += len(label) + 1
                if host[suffix_start:] in self._wildcards:
                    return
        raise ScopeViolation(
            f"{preview(value)} connects to host {hostname!r}, not in allowed hosts",
            allowed=f"allowed hosts {self._hosts_shown}",
        )

    def _check_port(self, value: str, scheme: str, port: str) -> None:
        if self._ports is None:
            if port:
                raise ScopeViolation(
                    f"{preview(value)} uses port {port}; only the default port of "
                    f"{scheme!r} is allowed"
                )
            return
        effective = int(port) if port else DEFAULT_PORTS.get(scheme)
        if effective is None:
            raise ScopeViolation(
                f"{preview(value)} names no port and {scheme!r} has no default",
                allowed=f"allowed ports: {sorted(self._ports)}",
            )
        if effective not in self._ports:
            raise ScopeViolation(
                f"{preview(value)} uses port {effective}",
                allowed=f"allowed ports: {sorted(self._ports)}",
            )

    def spec(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "hosts": list(self._hosts_shown),
            "schemes": sorted(self._schemes),
            "ports": None if self._ports is None else sorted(self._ports),
            "allow_userinfo": self._allow_userinfo,
            "networks": [str(n) for n in self._networks],
        }
        if self._default_scheme is not None:  # absent otherwise: older digests unchanged
            data["default_scheme"] = self._default_scheme
        return data

    def _host_covered(self, host: str) -> bool:
        if host in self._exact:
            return True
        parts = host.split(".")
        return any(".".join(parts[i:]) in self._wildcards for i in range(1, len(parts)))

    def _wildcard_covered(self, base: str) -> bool:
        parts = base.split(".")
        return any(".".join(parts[i:]) in self._wildcards for i in range(len(parts)))

    def _ip_covered(self, ip: IPAddress) -> bool:
        return ip in self._ips or any(ip in net for net in self._networks)

    def within(self, other: Scope) -> bool:
        """Every host, network, scheme and port ``self`` allows, ``other`` allows too."""
        if not isinstance(other, Urls):
            return False
        if not self._schemes <= other._schemes:
            return False
        if self._allow_userinfo and not other._allow_userinfo:
            return False
        if self._default_scheme not in (None, other._default_scheme):
            return False  # scheme-less values: other refuses them, or completes them otherwise
        if not self._ports_within(other):
            return False
        if not all(other._host_covered(h) for h in self._exact):
            return False
        if not all(other._wildcard_covered(w) for w in self._wildcards):
            return False
        if not all(other._ip_covered(ip) for ip in self._ips):
            return False
        return all(
            any(
                net.version == wide.version and net.subnet_of(wide)  # type: ignore[arg-type]
                for wide in other._networks
            )
            for net in self._networks
        )

    def _ports_within(self, other: Urls) -> bool:
        if other._ports is None:
            return self._ports is None
        if self._ports is None:
            # self allows each scheme's default port; other must list every one of them.
            defaults = [DEFAULT_PORTS.get(s) for s in self._schemes]
            return all(p is not None and p in other._ports for p in defaults)
        return self._ports <= other._ports
