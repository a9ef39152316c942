# Shared pytest fixtures for the whole test suite live here.
#
# - postgres_url (session): DSN of a real, throwaway PostgreSQL database on 127.0.0.1,
#   started by tests/postgres_server.py. Skips when PostgreSQL is unavailable, fails instead
#   when GUARDRAILS_REQUIRE_POSTGRES=1 (as .ci/run sets).
# - postgres_cluster_own (function): a cluster of the test's own, which it may stop and start.
# - redis_server_session (session): a real, throwaway redis-server on 127.0.0.1, started by
#   tests/redis_server.py; redis_url: its URL, the database flushed for each test. Skips
#   when redis-server is unavailable, fails instead when GUARDRAILS_REQUIRE_REDIS=1.

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import NoReturn

import pytest
from postgres_server import PostgresCluster, PostgresServerError, postgres_cluster, postgres_server
from redis_server import RedisServer, RedisServerError, redis_server

REQUIRE_POSTGRES_ENV = "GUARDRAILS_REQUIRE_POSTGRES"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:PORT/guardrails_test``: one server for the session."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_server())
        except PostgresServerError as exc:
            problem = str(exc)  # reported below, outside this handler: no chained traceback
        else:
            yield url
            return
    _postgres_unavailable(problem)


@pytest.fixture
def postgres_cluster_own() -> Iterator[PostgresCluster]:
    """A throwaway cluster for one test, which may ``stop()`` and ``start()`` it (commits
    acknowledged only once they would survive that)."""
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(postgres_cluster(durable_commits=True))
        except PostgresServerError as exc:
            problem = str(exc)
        else:
            yield cluster
            return
    _postgres_unavailable(problem)


def _postgres_unavailable(problem: str) -> NoReturn:
    reason = f"no PostgreSQL server for tests: {problem}"
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        reason += f"\n({REQUIRE_POSTGRES_ENV}=1: failing instead of skipping)"
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


REQUIRE_REDIS_ENV = "GUARDRAILS_REQUIRE_REDIS"


@pytest.fixture(scope="session")
def redis_server_session() -> Iterator[RedisServer]:
    """One real ``redis-server`` on loopback for the session."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(redis_server())
        except RedisServerError as exc:
            problem = str(exc)
        else:
            yield server
            return
    reason = f"no Redis server for tests: {problem}"
    if os.environ.get(REQUIRE_REDIS_ENV) == "1":
        reason += f"\n({REQUIRE_REDIS_ENV}=1: failing instead of skipping)"
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def redis_url(redis_server_session: RedisServer) -> str:
    """``redis://127.0.0.1:PORT/0`` of the session's server, emptied for this test."""
    with socket.create_connection(("127.0.0.1", redis_server_session.port), timeout=5) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        assert sock.recv(16).startswith(b"+OK")
    return redis_server_session.url


# -- cascade scenarios: the results tables (tests/test_cascade_scenarios.py, _graphs.py) -------


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After a run that included the cascade scenarios, print one row per scenario run:
    the signal expected and tripped, at which message, how many messages the monitor saw,
    false alarms, and what containment did."""
    import sys

    for module in ("cascade_graphs", "cascade_scenarios", "cascade_graph_scenarios"):
        scenarios = sys.modules.get(module)  # only if the scenarios ran
        rows = getattr(scenarios, "GRAPH_RESULTS" if "graph_" in module else "RESULTS", None)
        if scenarios is None or not rows:
            continue
        terminalreporter.section(module.replace("_", " "))
        for line in scenarios.table(rows):
            terminalreporter.write_line(line)


# -- a scripted OpenAI-compatible server on loopback (tests/openai_server.py) ------------------


@pytest.fixture(scope="session")
def _openai_server_session() -> Iterator[object]:
    from openai_server import serve

    with serve() as server:
        yield server


@pytest.fixture
def openai_server(_openai_server_session: object) -> object:
    """The session's scripted OpenAI server (``tests/openai_server.py``), emptied for this test:
    ``openai_server.push(Turn(...))``, ``openai_server.base_url``, ``openai_server.requests``."""
    _openai_server_session.reset()  # type: ignore[attr-defined]
    return _openai_server_session
