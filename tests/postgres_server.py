"""Throwaway PostgreSQL servers for tests: a real cluster, on loopback only, removed afterwards.

    with postgres_server() as url:   # postgresql://postgres@127.0.0.1:PORT/guardrails_test
        ...

The server binaries (``initdb``, ``pg_ctl``, ``postgres``) are looked up in
``$GUARDRAILS_PG_BINDIR`` if set, then on ``PATH``, then in Debian's
``/usr/lib/postgresql/<version>/bin`` (newest version first). The cluster lives in a fresh
temporary directory: it listens on 127.0.0.1 at a free port and on a unix socket inside that
directory, nowhere else; authentication is ``trust`` for loopback and that socket only; durability
is switched off (``fsync=off`` and friends) since the data is thrown away.

PostgreSQL refuses to run as root. When the tests run as root (as CI does), ``initdb`` and
``pg_ctl`` run as an unprivileged user instead -- ``postgres`` (created by Debian's package) if
it exists, else ``nobody`` -- via ``runuser`` (or ``su``), and the temporary directory is handed
to that user.

Every failure to find the binaries or start the server raises :class:`PostgresServerError` with
the reason and the server's own output, so callers can skip or fail with a clear message.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PostgresCluster",
    "PostgresNotFound",
    "PostgresServerError",
    "find_postgres_bindir",
    "postgres_cluster",
    "postgres_server",
]

SUPERUSER = "postgres"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
START_TIMEOUT_S = 60
_SERVER_SETTINGS = {
    # Loopback only: TCP on 127.0.0.1, plus a unix socket inside the cluster's own directory.
    "listen_addresses": "'127.0.0.1'",
    # Throwaway data: no durability, small footprint, fast start.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "shared_buffers": "'32MB'",
    "max_connections": "50",
    "jit": "off",
    "ssl": "off",
    "logging_collector": "off",
}
_PG_HBA = """\
# Written by tests/postgres_server.py: trust, but only on the private socket and loopback.
local all all              trust
host  all all 127.0.0.1/32 trust
"""


class PostgresServerError(RuntimeError):
    """The throwaway PostgreSQL server could not be set up."""


class PostgresNotFound(PostgresServerError):
    """No PostgreSQL server binaries (initdb, pg_ctl) on this machine."""


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (-1,)


def find_postgres_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates: list[Path] = []
    override = os.environ.get("GUARDRAILS_PG_BINDIR")
    if override:
        candidates.append(Path(override))
    else:
        on_path = shutil.which("initdb")
        if on_path:
            # Debian's /usr/local or /usr/bin entries may be symlinks: resolve to the real bin dir.
            candidates.extend([Path(on_path).resolve().parent, Path(on_path).parent])
        if DEBIAN_ROOT.is_dir():
            versions = sorted(DEBIAN_ROOT.iterdir(), key=_version_key, reverse=True)
            candidates.extend(version / "bin" for version in versions)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    where = f"GUARDRAILS_PG_BINDIR={override}" if override else f"PATH or {DEBIAN_ROOT}/*/bin"
    raise PostgresNotFound(
        f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in {where}; "
        "install them, e.g. `apt-get install postgresql` on Debian"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresServerError(
        "running as root, and PostgreSQL refuses to run as root, but neither a `postgres` "
        "nor a `nobody` user exists to run it as"
    )


def _world_traversable(directory: Path) -> bool:
    """Whether any user can reach entries below ``directory`` (every ancestor has o+x)."""
    return all(part.stat().st_mode & stat.S_IXOTH for part in [directory, *directory.parents])


@dataclass
class _Runner:
    """Runs the server's programs, as another user when we are root."""

    user: pwd.struct_passwd | None  # None: as ourselves
    cwd: Path

    def command(self, argv: list[str]) -> list[str]:
        if self.user is None:
            return argv
        if shutil.which("runuser"):
            return ["runuser", "-u", self.user.pw_name, "--", *argv]
        if shutil.which("su"):
            return ["su", "-s", "/bin/sh", self.user.pw_name, "-c", shlex.join(argv)]
        raise PostgresServerError(
            f"running as root, and neither `runuser` nor `su` is available to run PostgreSQL "
            f"as {self.user.pw_name!r}"
        )

    def run(self, argv: list[str], what: str, timeout: float = START_TIMEOUT_S + 30) -> str:
        argv = self.command(argv)
        try:
            done = subprocess.run(
                argv,
                cwd=self.cwd,  # the user we switch to may not be able to read our cwd
                env={**os.environ, "LC_ALL": "C", "LANG": "C"},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresServerError(f"{what} failed: {shlex.join(argv)}: {exc}") from exc
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0:
            raise PostgresServerError(
                f"{what} failed (exit {done.returncode}): {shlex.join(argv)}\n{output}"
            )
        return output


def _create_database(port: int, dbname: str) -> None:
    try:
        import psycopg
        from psycopg import sql
    except ImportError as exc:
        raise PostgresServerError(f"psycopg is needed to create the test database: {exc}") from exc
    try:
        with psycopg.connect(
            host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    except psycopg.Error as exc:
        raise PostgresServerError(f"could not create database {dbname!r}: {exc}") from exc


@dataclass
class PostgresCluster:
    """A running throwaway cluster that a test may stop and start again (same port, same
    data): what a server crash, a restart or a failover looks like to its clients."""

    url: str
    port: int
    datadir: Path
    logfile: Path
    bindir: Path
    runner: _Runner
    running: bool = True

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: as if it crashed; ``fast``: a clean shutdown)."""
        self.runner.run(
            [str(self.bindir / "pg_ctl"), "stop", f"--pgdata={self.datadir}", f"--mode={mode}"],
            "stopping PostgreSQL",
        )
        self.running = False

    def start(self) -> None:
        """Start it again on the same port."""
        self.runner.run(
            [
                str(self.bindir / "pg_ctl"),
                "start",
                f"--pgdata={self.datadir}",
                f"--log={self.logfile}",
                "--wait",
                f"--timeout={START_TIMEOUT_S}",
                f"--options=-p {self.port}",
            ],
            "restarting PostgreSQL",
        )
        self.running = True


@contextlib.contextmanager
def postgres_server(dbname: str = "guardrails_test") -> Iterator[str]:
    """Start a throwaway cluster, yield a DSN for a fresh database in it, then remove it all."""
    with postgres_cluster(dbname) as cluster:
        yield cluster.url


@contextlib.contextmanager
def postgres_cluster(
    dbname: str = "guardrails_test",
    *,
    durable_commits: bool = False,
    settings: dict[str, str] | None = None,
) -> Iterator[PostgresCluster]:
    """Like ``postgres_server``, yielding the cluster itself (``.url``, ``.stop()``,
    ``.start()``). ``durable_commits``: a commit is acknowledged only once its WAL reached
    the OS (``synchronous_commit=on``), so it survives the server being killed; without it
    the last fraction of a second of commits dies with the server. ``settings``: more
    ``postgresql.conf`` lines (``{"max_connections": "200"}``)."""
    bindir = find_postgres_bindir()
    user = _unprivileged_user() if os.geteuid() == 0 else None
    parent = Path(tempfile.gettempdir())
    if user is not None and not _world_traversable(parent):
        parent = Path("/tmp")
    base = Path(tempfile.mkdtemp(prefix="guardrails-pg-", dir=parent))
    datadir, sockdir, logfile = base / "data", base / "sock", base / "server.log"
    runner = _Runner(user=user, cwd=base)
    started = False
    cluster: PostgresCluster | None = None
    try:
        sockdir.mkdir()
        logfile.touch()
        if user is not None:
            for path in (base, sockdir, logfile):
                os.chown(path, user.pw_uid, user.pw_gid)
        runner.run(
            [
                str(bindir / "initdb"),
                f"--pgdata={datadir}",
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            "initdb",
        )
        # Files initdb created stay owned by the server's user when we rewrite them.
        (datadir / "pg_hba.conf").write_text(_PG_HBA)
        lines = {**_SERVER_SETTINGS, "unix_socket_directories": f"'{sockdir}'", **(settings or {})}
        if durable_commits:
            lines["synchronous_commit"] = "on"
        with (datadir / "postgresql.conf").open("a") as conf:
            conf.write("\n# Added by tests/postgres_server.py\n")
            conf.writelines(f"{key} = {value}\n" for key, value in lines.items())

        port, attempts = 0, 3
        for attempt in range(1, attempts + 1):
            port = _free_port()  # another process may grab it before the server does: retry
            try:
                runner.run(
                    [
                        str(bindir / "pg_ctl"),
                        "start",
                        f"--pgdata={datadir}",
                        f"--log={logfile}",
                        "--wait",
                        f"--timeout={START_TIMEOUT_S}",
                        f"--options=-p {port}",
                    ],
                    "starting PostgreSQL",
                )
                started = True
                break
            except PostgresServerError as exc:
                log = logfile.read_text(errors="replace").strip()
                in_use = "could not bind" in log or "already in use" in log
                if attempt == attempts or not in_use:
                    raise PostgresServerError(f"{exc}\n--- server log ---\n{log}") from exc
                time.sleep(0.1)
        _create_database(port, dbname)
        cluster = PostgresCluster(
            url=f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{dbname}",
            port=port,
            datadir=datadir,
            logfile=logfile,
            bindir=bindir,
            runner=runner,
        )
        yield cluster
    finally:
        try:
            if started and (cluster is None or cluster.running):
                runner.run(
                    [str(bindir / "pg_ctl"), "stop", f"--pgdata={datadir}", "--mode=immediate"],
                    "stopping PostgreSQL",
                )
        finally:
            shutil.rmtree(base, ignore_errors=True)
