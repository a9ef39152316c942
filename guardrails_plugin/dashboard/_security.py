"""The dashboard's defences, in one ASGI middleware and a few checks.

- **Who may look**: with a token configured, every ``/api`` request carries it, as
  ``Authorization: Bearer <token>``, or the HttpOnly, SameSite=Strict cookie the page URL's
  ``?token=`` sets. The cookie is named for the dashboard's port (a host's cookies go to all
  its ports: two dashboards must not overwrite each other's) and holds a keyed hash of the
  token, not the token (other servers on the host receive it too). Without a token the
  dashboard serves loopback only (``serve`` refuses anything else).
- **DNS rebinding**: the ``Host`` header must name the address the dashboard is bound to
  (a rebound name of an attacker's site resolving to 127.0.0.1 does not).
- **CSRF**: state-changing requests are POSTs with a JSON body and the custom header
  ``X-Guardrails: 1`` (a cross-site page cannot send it without a CORS preflight, which is
  never granted); an ``Origin`` or ``Sec-Fetch-Site`` header, when sent, must say the
  request comes from the dashboard's own page.
- **Untrusted content**: agents' arguments and messages may carry injected text. The page
  renders everything with ``textContent``; a strict Content-Security-Policy (scripts and
  styles from the dashboard only, no inline script, no framing, no outside connections)
  backs that up.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "guardrails_dashboard"
CSRF_HEADER = "x-guardrails"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Tokens:
    """The tokens that open the dashboard, each with the operator name actions record."""

    def __init__(self, token: str | Mapping[str, str] | None, by: str) -> None:
        if token is None:
            self._names: dict[str, str] = {}
        elif isinstance(token, str):
            self._names = {token: by}
        else:
            self._names = dict(token)
        for t in self._names:
            if not isinstance(t, str) or len(t) < 8:
                raise ValueError("a dashboard token must be a string of at least 8 characters")
        self.by = by
        self._sessions = {self.session(t): name for t, name in self._names.items()}

    @property
    def required(self) -> bool:
        return bool(self._names)

    def name(self, token: str | None) -> str | None:
        """The operator a token belongs to, None when it opens nothing (constant time)."""
        return None if token is None else _lookup(self._names, token)

    @staticmethod
    def session(token: str) -> str:
        """What the login cookie holds for ``token``: a hash keyed by it, so that the cookie
        (which every server on the host receives) does not give the token away."""
        return hmac.new(token.encode(), b"guardrails-dashboard-session", hashlib.sha256).hexdigest()

    def who(self, scope: Scope) -> str | None:
        """The operator a request comes from (``by`` when no token is needed), or None."""
        if not self.required:
            return self.by
        headers = Headers(scope=scope)
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return self.name(auth[7:].strip())
        value = cookie(headers, cookie_name(scope))
        return None if value is None else _lookup(self._sessions, value)


def _lookup(known: Mapping[str, str], value: str) -> str | None:
    """``known[value]``, comparing digests in constant time (neither the value nor its
    length shows in the timing)."""
    digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()
    found = None
    for key, name in known.items():
        if hmac.compare_digest(hashlib.sha256(key.encode()).digest(), digest):
            found = name
    return found


def cookie_name(scope: Scope) -> str:
    """The login cookie of the dashboard serving ``scope``: named for its port."""
    server = scope.get("server")
    port = server[1] if server and len(server) > 1 and server[1] else None
    return COOKIE if port is None else f"{COOKIE}_{port}"


def cookie(headers: Headers, name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except CookieError:  # a malformed cookie header: no cookie
        return None
    morsel = jar.get(name)
    return None if morsel is None else morsel.value


def host_name(value: str) -> str:
    """``example.com:8765`` -> ``example.com``; ``[::1]:8765`` -> ``::1``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


class Protect:
    """ASGI middleware: Host check, security headers, CSRF checks on POST.

    ``hosts``: the host names requests may name (``"*"``: any, only when a token guards the
    dashboard). Authentication itself is checked by the routes (``Tokens.who``).
    """

    def __init__(self, app: ASGIApp, *, hosts: Iterable[str], tokens: Tokens) -> None:
        self.app = app
        self.hosts = {h.lower().strip("[]") for h in hosts}
        self.tokens = tokens

    def allow_host(self, host: str) -> None:
        self.hosts.add(host.lower().strip("[]"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem = self._problem(scope, headers)
        if problem is not None:
            status, text = problem
            await PlainTextResponse(text, status_code=status, headers=_plain_headers())(
                scope, receive, send
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() not in _OURS
                ] + list(HEADERS)
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _problem(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        host = host_name(headers.get("host", ""))
        if "*" not in self.hosts and host not in self.hosts:
            return 421, f"unexpected Host {host!r}: open the dashboard at the address it serves"
        if scope["method"] not in ("GET", "HEAD", "POST"):
            return 405, "method not allowed"
        if scope["method"] != "POST":
            return None
        if headers.get(CSRF_HEADER) != "1":
            return 403, "state-changing requests need the header X-Guardrails: 1"
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return 415, "send a JSON body (Content-Type: application/json)"
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return 403, f"cross-site request refused (Sec-Fetch-Site: {site})"
        origin = headers.get("origin")
        if origin is not None:
            scheme, _, rest = origin.partition("://")
            if scheme not in ("http", "https") or rest.lower() != headers.get("host", "").lower():
                return 403, f"request from another origin refused (Origin: {origin})"
        return None


_OURS = frozenset(k for k, _ in HEADERS)


def _plain_headers() -> dict[str, Any]:
    return {k.decode(): v.decode() for k, v in HEADERS}
