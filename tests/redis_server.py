"""Throwaway Redis servers for tests: a real ``redis-server``, on loopback only, removed afterwards.

    with redis_server() as server:      # server.url == "redis://127.0.0.1:PORT/0"
        ...
        server.stop()                   # a fault: the server is gone
        server.start()                  # back, on the same port (its data is gone too)

``redis-server`` is looked up in ``$GUARDRAILS_REDIS_SERVER`` if set, then on ``PATH``. The
server binds 127.0.0.1 at a free port, keeps nothing on disk (no RDB, no AOF) and runs in a
fresh temporary directory. Every failure to find or start it raises ``RedisServerError``
with the reason and the server's own log, so callers can skip or fail with a clear message.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["RedisNotFound", "RedisServer", "RedisServerError", "redis_server"]

START_TIMEOUT_S = 20


class RedisServerError(RuntimeError):
    """The throwaway Redis server could not be set up."""


class RedisNotFound(RedisServerError):
    """No ``redis-server`` binary on this machine."""


def find_redis_server() -> str:
    override = os.environ.get("GUARDRAILS_REDIS_SERVER")
    found = override or shutil.which("redis-server")
    if not found or not os.access(found, os.X_OK):
        where = f"GUARDRAILS_REDIS_SERVER={override}" if override else "PATH"
        raise RedisNotFound(
            f"redis-server not found in {where}; install it, e.g. `apt-get install redis-server`"
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process in ``directory``; ``stop`` and ``start`` keep the port."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "server.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (on a new free port the first time, on the same port after)."""
        attempts = 1 if self.port else 3
        for attempt in range(1, attempts + 1):
            if not self.port or attempt > 1:
                self.port = _free_port()  # another process may grab it first: retry
            try:
                self._start_once()
                return
            except RedisServerError:
                if attempt == attempts:
                    raise
                time.sleep(0.1)

    def _start_once(self) -> None:
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.log),
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._answers():
                return
            time.sleep(0.02)
        log = self.log.read_text(errors="replace").strip() if self.log.exists() else ""
        self.stop()
        raise RedisServerError(
            f"redis-server did not start on 127.0.0.1:{self.port}\n--- server log ---\n{log}"
        )

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill the server at once (SIGKILL: no goodbye to clients, as in a crash)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start a throwaway ``redis-server`` on loopback, yield it, then remove it all."""
    binary = find_redis_server()
    base = Path(tempfile.mkdtemp(prefix="guardrails-redis-"))
    server = RedisServer(binary, base)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()  # SIGKILL ends a frozen (SIGSTOP) server too
        finally:
            shutil.rmtree(base, ignore_errors=True)
