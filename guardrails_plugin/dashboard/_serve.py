"""Running the dashboard: ``serve`` (blocking, until Ctrl-C) and ``serving`` (a background
thread, for notebooks, tests and apps that host their agents in the same process)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from urllib.parse import unquote_plus

try:
    import uvicorn
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the dashboard needs Starlette and uvicorn: pip install 'guardrails-plugin[dashboard]'"
    ) from exc

from ._app import Dashboard
from ._security import WILDCARD_HOSTS, is_loopback


class _Server(uvicorn.Server):
    """uvicorn's server, ending the dashboard's live streams when it is told to stop (they
    would otherwise hold the graceful shutdown until its timeout)."""

    def __init__(self, config: uvicorn.Config, dashboard: Dashboard) -> None:
        super().__init__(config)
        self.dashboard = dashboard

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.dashboard.close()
        super().handle_exit(sig, frame)


def check_bind(dashboard: Dashboard, host: str) -> None:
    """Refuse to serve beyond this machine without a token; let the Host check accept the
    bound address."""
    if not is_loopback(host) and not dashboard.tokens.required:
        raise ValueError(
            f"refusing to serve the dashboard on {host!r} without a token: anyone who can "
            "reach that address could approve tool calls and kill runs. Pass a token "
            "(Dashboard(..., token=...), or --token / GUARDRAILS_DASHBOARD_TOKEN), or bind "
            "127.0.0.1 and use an SSH tunnel"
        )
    dashboard.allow_host("*" if host in WILDCARD_HOSTS else host)


def url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in WILDCARD_HOSTS else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def serve(
    dashboard: Dashboard,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    log_level: str = "warning",
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard with uvicorn until interrupted (Ctrl-C).

    Binds 127.0.0.1 by default; any other address needs a token (``ValueError`` otherwise).
    ``port=0`` takes a free port. ``ready(url)`` is called once the address is bound, before
    serving: a port already taken raises ``OSError`` first, and no address is announced.
    """
    check_bind(dashboard, host)
    sock = listen(host, port)
    try:
        config = uvicorn.Config(
            dashboard.app,
            log_level=log_level,
            timeout_graceful_shutdown=2,
            proxy_headers=False,
        )
        _hide_tokens()
        if ready is not None:
            ready(url(host, sock.getsockname()[1]))
        _Server(config, dashboard).run(sockets=[sock])
    finally:
        dashboard.close()
        sock.close()


@contextlib.contextmanager
def serving(
    dashboard: Dashboard, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning"
) -> Iterator[str]:
    """Serve the dashboard on a background thread; yields its URL (``port=0``: a free port).

    >>> import httpx
    >>> from guardrails_plugin import MemoryStore
    >>> with serving(Dashboard(MemoryStore())) as url:
    ...     httpx.get(url + "api/state").json()["info"]["answering"]
    False
    """
    check_bind(dashboard, host)
    sock = listen(host, port)
    config = uvicorn.Config(
        dashboard.app,
        log_level=log_level,
        timeout_graceful_shutdown=1,
        proxy_headers=False,
        lifespan="off",
    )
    _hide_tokens()
    server = _Server(config, dashboard)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="guardrails-dashboard", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the dashboard server did not start")
        time.sleep(0.01)
    try:
        yield url(host, sock.getsockname()[1])
    finally:
        dashboard.close()
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (``port=0``: a free one), for uvicorn to serve on.
    ``OSError`` saying which address when it is taken or cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno,
            f"cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(is another dashboard or server there? choose another --port, or 0 for any)",
        ) from None
    return sock


class _HideTokens(logging.Filter):
    """Access-log lines show ``?token=[redacted]``, never the token a login URL carries."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                hide_token(a) if isinstance(a, str) and "token" in a else a for a in record.args
            )
        return True


def hide_token(target: str) -> str:
    """``/?token=abc&x=1`` -> ``/?token=[redacted]&x=1`` (the query split as Starlette
    splits it)."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    parts = query.split("&")
    shown = [
        "token=[redacted]" if unquote_plus(p.partition("=")[0]) == "token" else p for p in parts
    ]
    return f"{path}?{'&'.join(shown)}"


_HIDE_TOKENS = _HideTokens()


def _hide_tokens() -> None:
    # uvicorn (re)configures its loggers when a Config is made: add the filter after that.
    access = logging.getLogger("uvicorn.access")
    if _HIDE_TOKENS not in access.filters:
        access.addFilter(_HIDE_TOKENS)
