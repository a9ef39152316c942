# Shared pytest fixtures for the whole test suite live here.
#
# - postgres_url (session): DSN of a real, throwaway PostgreSQL database on 127.0.0.1,
#   started by tests/postgres_server.py. Skips when PostgreSQL is unavailable, fails instead
#   when GUARDRAILS_REQUIRE_POSTGRES=1 (as .ci/run sets).

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import NoReturn

import pytest
from postgres_server import PostgresServerError, postgres_server

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


def _postgres_unavailable(problem: str) -> NoReturn:
    reason = f"no PostgreSQL server for tests: {problem}"
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        reason += f"\n({REQUIRE_POSTGRES_ENV}=1: failing instead of skipping)"
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


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
