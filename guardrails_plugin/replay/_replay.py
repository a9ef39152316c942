"""Re-decide recorded calls with a candidate policy, and say what would change.

``replay(policy, source)`` feeds every recorded call to a fresh ``Guard`` (a new in-memory
store unless one is given, the recorded time as its clock) in the order it was recorded,
and compares each new decision with the recorded one. It is deterministic (the same
traffic and policy give the same report) and streaming: it holds the report's counters, a
few examples and the guard's own state (budget counters per thread and run, taint labels),
never the traffic, so memory stays flat however long the history is.

What a replay assumes: the agents make the same calls whatever the candidate decides. In
reality a denied call changes what the model does next; a replay shows where the policy
bites, not the conversation that would follow. Calls the candidate asks about are
approved (``asks="approve"``: budgets count them, as if people answered as before) or
denied (``asks="deny"``). A recorded result reaches the guard (data-flow labels, result
tokens) only when the candidate let its call run. A call that runs now but was denied then
has no recorded result: the guard records it as run with an empty result (its data-flow
labels count, its result tokens cannot), and the report counts it (``unseen_results``).
"""

from __future__ import annotations

import collections
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

from .._approvals import Approval
from .._decision import Decision, Effect
from .._events import ToolCall, ToolResult
from ..guard import Guard
from ..policy import Policy
from ..store import MemoryStore, Store
from ._report import Change, ReplayReport
from ._sources import Recorded, RecordedCall, RecordedResult, ReplayError

__all__ = ["replay"]

_OPEN_RESULTS = 4_096
"""Calls the candidate let run whose result has not been seen yet (oldest forgotten)."""

_PLAIN = {
    "allow": "allow",
    "modify": "allow",
    "deny": "deny",
    "respond": "deny",
    "ask": "ask",
}


def replay(
    policy: Policy,
    source: Iterable[Recorded],
    *,
    store: Store | None = None,
    asks: Literal["approve", "deny"] = "approve",
    examples: int = 5,
    progress: Callable[[int], None] | None = None,
    name: str = "",
) -> ReplayReport:
    """Re-decide every call of ``source`` with ``policy``; the report of what changed.

    ``store``: the guard's store (default: a new ``MemoryStore``; pass another to replay
    against budgets already spent). ``asks``: how calls the candidate asks about go on.
    ``examples``: how many calls each kind of change keeps as examples. ``progress`` is
    called with the number of calls replayed so far, now and then. ``name`` labels the
    source in the report.

    >>> from guardrails_plugin import Policy, allow
    >>> from guardrails_plugin.replay import RecordedCall, replay
    >>> calls = [RecordedCall("search", {"q": "x"}, outcome="allow"),
    ...          RecordedCall("rm", {"path": "/"}, outcome="allow")]
    >>> report = replay(Policy([allow("search")]), calls)
    >>> report.changes[Change.NEWLY_DENIED], report.changes[Change.UNCHANGED]
    (1, 1)
    """
    if asks not in ("approve", "deny"):
        raise ValueError(f"asks must be 'approve' or 'deny', found {asks!r}")
    now = [0.0]
    guard = Guard(policy, store=store if store is not None else MemoryStore(), clock=lambda: now[0])
    report = ReplayReport(
        policy=guard.policy_id, source=name, asks=asks, examples_kept=max(0, examples)
    )
    ran = _OpenCalls()
    last_progress = 0
    for item in source:
        if isinstance(item, RecordedCall):
            if item.at is not None:
                now[0] = item.at
            call = _call(item)
            final = _decide(guard, call, asks, report, item)
            if final.allowed:
                if item.result is not None:
                    _record(guard, call, item.result, item.is_error, report)
                elif item.call_id is None or _PLAIN.get(item.outcome or "") == "deny":
                    # It runs now but did not then (or its result cannot be matched): the
                    # guard sees it ran, with an empty result (labels count, tokens do not).
                    report.unseen_results += 1
                    _record(guard, call, "", False, report)
                else:
                    ran.add(item.call_id, item.thread_id, item.run_id, call)
            if progress is not None and report.calls - last_progress >= 1_000:
                last_progress = report.calls
                progress(report.calls)
        elif isinstance(item, RecordedResult):
            if item.at is not None:
                now[0] = item.at
            report.results += 1
            made = ran.take(item.call_id, item.thread_id, item.run_id)
            if made is None:
                report.unmatched_results += 1
            else:
                _record(guard, made, item.content, item.is_error, report)
        else:
            raise ReplayError(f"a source yields RecordedCall or RecordedResult, found {item!r}")
    if progress is not None:
        progress(report.calls)
    return report


class _OpenCalls:
    """Calls the candidate let run whose result has not been seen yet, the oldest forgotten
    past ``_OPEN_RESULTS``. A result finds its call by (thread, run, call id); a result
    recorded without its run finds the latest open call of its id on its thread. Both
    lookups are dictionary reads."""

    def __init__(self) -> None:
        self._calls: collections.OrderedDict[_Key, ToolCall] = collections.OrderedDict()
        self._latest: dict[tuple[str | None, str], _Key] = {}

    def add(self, call_id: str, thread: str | None, run: str | None, call: ToolCall) -> None:
        key = (thread, run, call_id)
        self._calls.pop(key, None)  # a reused id: the latest call is the one open
        self._calls[key] = call
        self._latest[(thread, call_id)] = key
        if len(self._calls) > _OPEN_RESULTS:
            self._forget(*self._calls.popitem(last=False))

    def take(self, call_id: str, thread: str | None, run: str | None) -> ToolCall | None:
        key = (thread, run, call_id)
        if key not in self._calls:
            if run is not None:
                return None
            found = self._latest.get((thread, call_id))
            if found is None:
                return None
            key = found
        call = self._calls.pop(key)
        self._forget(key, call)
        return call

    def _forget(self, key: _Key, call: ToolCall) -> None:
        thread, _, call_id = key
        if self._latest.get((thread, call_id)) == key:
            del self._latest[(thread, call_id)]


_Key = tuple[str | None, str | None, str]


def _call(item: RecordedCall) -> ToolCall:
    return ToolCall(
        item.tool,
        item.args,
        agent=item.agent,
        call_id=item.call_id,
        run_id=item.run_id,
        thread_id=item.thread_id,
        step=item.step,
    )


def _decide(
    guard: Guard, call: ToolCall, asks: str, report: ReplayReport, item: RecordedCall
) -> Decision:
    decision = guard.check(call)
    final = decision
    if decision.effect is Effect.ASK and decision.kind != "control":
        answer = (
            Approval.approve(approver="replay")
            if asks == "approve"
            else Approval.reject("replay: asks are denied", approver="replay")
        )
        final = guard.resolve(call, decision, answer)
    report.calls += 1
    new = _PLAIN[str(decision.effect)]
    report.outcomes[new] += 1
    if item.redacted:
        report.redacted += 1
    old = _PLAIN.get(item.outcome or "")
    change = _change(old, new)
    report.changes[change] += 1
    if change is not Change.UNCHANGED and change is not Change.UNKNOWN:
        report.by_rule[decision.rule][change] += 1
        report.by_agent[call.agent][change] += 1
    if decision.kind == "budget" or final.kind == "budget":
        budget = decision if decision.kind == "budget" else final
        report._budget_denied(budget.rule, guard.clock(), report.calls, call)
    report._example(change, item, decision)
    return final


def _change(old: str | None, new: str) -> Change:
    if old is None:
        return Change.UNKNOWN
    if old == new:
        return Change.UNCHANGED
    if new == "deny":
        return Change.NEWLY_DENIED
    if new == "ask":
        return Change.NEWLY_ASKED
    return Change.NEWLY_ALLOWED


def _record(
    guard: Guard, call: ToolCall, content: str, is_error: bool, report: ReplayReport
) -> None:
    result = ToolResult(
        call.tool,
        content,
        agent=call.agent,
        call_id=call.call_id,
        run_id=call.run_id,
        thread_id=call.thread_id,
        is_error=is_error,
    )
    decision = guard.record(result)
    if decision.effect is Effect.DENY:
        report._record_denied(decision.rule, call)


# -- opening a source by name (the command line) -----------------------------------------------


def open_source(
    spec: str, *, threads: Iterable[str] | None = None, agent: str = "agent"
) -> Iterator[Recorded]:
    """The recorded traffic ``spec`` names: ``audit:PATH`` (an audit log), ``calls:PATH``
    (JSON Lines of calls), ``checkpoints:URL`` (a LangGraph checkpointer: ``sqlite:///path``,
    or a ``postgresql://`` URL), or a plain path, recognised by its content."""
    from . import _sources

    kind, sep, rest = spec.partition(":")
    if not sep or kind not in ("audit", "calls", "checkpoints"):
        kind, rest = _sniff(spec), spec
    if kind == "audit":
        return _sources.from_audit(rest)
    if kind == "calls":
        return _sources.from_jsonl(rest)
    return _checkpoints(rest, threads, agent)


def _sniff(path: str) -> str:
    if not os.path.exists(path):
        raise ReplayError(f"no recorded traffic at {path!r}")
    if path.endswith((".jsonl", ".ndjson")) or not _is_sqlite(path):
        try:
            with open(path, encoding="utf-8") as f:
                first = next((line for line in f if line.strip()), "")
        except (OSError, UnicodeDecodeError) as exc:
            raise ReplayError(f"cannot read {path!r}: {exc}") from None
        try:
            data = json.loads(first) if first else {}
        except json.JSONDecodeError:
            return "calls"  # the reader names the line that is not JSON
        return "audit" if isinstance(data, dict) and "hash" in data and "prev" in data else "calls"
    tables = _tables(path)
    if "guardrails_audit" in tables:
        return "audit"
    if "checkpoints" in tables:
        return "checkpoints-file"
    raise ReplayError(f"{path!r} holds neither an audit log nor LangGraph checkpoints")


def _is_sqlite(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _tables(path: str) -> set[str]:
    import pathlib
    import sqlite3

    uri = pathlib.Path(path).absolute().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ReplayError(f"cannot read {path!r}: {exc}") from None
    return {r[0] for r in rows}


def _checkpoints(url: str, threads: Iterable[str] | None, agent: str) -> Iterator[Recorded]:
    from ._sources import from_checkpoints

    if url.startswith(("postgresql://", "postgres://")):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError:
            raise ReplayError(
                "reading Postgres checkpoints needs the postgres extra: "
                "pip install 'guardrails-plugin[postgres]'"
            ) from None

        def postgres() -> Iterator[Recorded]:
            with PostgresSaver.from_conn_string(url) as saver:
                yield from from_checkpoints(saver, threads, agent=agent)

        return postgres()
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    if not os.path.exists(path):
        raise ReplayError(f"no checkpoint database at {path!r}")
    try:
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver
    except ImportError:
        raise ReplayError(
            "reading SQLite checkpoints needs the langgraph extra: "
            "pip install 'guardrails-plugin[langgraph]'"
        ) from None

    def sqlite() -> Iterator[Recorded]:
        conn = sqlite3.connect(path, check_same_thread=False)
        try:
            yield from from_checkpoints(SqliteSaver(conn), threads, agent=agent)
        finally:
            conn.close()

    return sqlite()


def progress_bar(total: int | None = None) -> Callable[[int], None] | None:
    """A progress callback drawing a bar on standard error when it is a terminal (tqdm)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(total=total, unit=" calls", file=sys.stderr, leave=False)
    done = [0]

    def update(n: int) -> None:
        bar.update(n - done[0])
        done[0] = n

    return update


def _timing(start: float, calls: int) -> str:
    spent = time.perf_counter() - start
    rate = calls / spent if spent > 0 else math.inf
    return f"{calls:,} calls in {spent:.1f} s ({rate:,.0f} calls/s)"
