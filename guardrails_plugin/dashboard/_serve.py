"""Running the dashboard: ``serve`` (blocking, until Ctrl-C) and ``serving`` (a background
thread, for notebooks, tests and apps that host their agents in the same process)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from types import FrameType

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
    dashboard: Dashboard, host: str = "127.0.0.1", port: int = 8765, *, log_level: str = "warning"
) -> None:
    """Serve the dashboard with uvicorn until interrupted (Ctrl-C).

    Binds 127.0.0.1 by default; any other address needs a token (``ValueError`` otherwise).
    """
    check_bind(dashboard, host)
    config = uvicorn.Config(
        dashboard.app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=2,
        proxy_headers=False,
    )
    try:
        _Server(config, dashboard).run()
    finally:
        dashboard.close()


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
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        dashboard.app,
        log_level=log_level,
        timeout_graceful_shutdown=1,
        proxy_headers=False,
        lifespan="off",
    )
    server = _Server(config, dashboard)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="guardrails-dashboard", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the dashboard server did not start")
        time.sleep(0.01)
    try:
        yield url(host, bound)
    finally:
        dashboard.close()
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
