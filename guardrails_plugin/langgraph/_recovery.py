"""Roll a LangGraph thread back to a safe point: undo its side effects, restore its state.

Why this file is long: ``Recovery``'s verbs come in sync and async twins around one claim,
one target search and one restore; the twins read best side by side.

The guard (or your node) writes to a ``Journal`` while the graph runs: a safe point at the
checkpoint before each risky step, every side effect a tool had, every violation. When
something went wrong, ``Recovery.rollback`` finds the checkpoint to return to, runs the
compensations of everything done since (newest first, exactly once), and forks the thread
back to that checkpoint with LangGraph's own time travel. Any checkpointer works: in memory,
SQLite, Postgres.

    recovery = Recovery(graph, journal, compensations)
    report = recovery.rollback({"configurable": {"thread_id": "t-1"}})
    if not report.ok:
        print(report)  # what could not be undone, and why

A rollback is crash-safe: run it again after a crash and it finishes the job; effects
already undone are skipped and restoring the state again only adds an identical checkpoint.

One rollback of a thread at a time, across threads and processes: each claims the thread in
the journal's store first (an atomic ``put_if``). A rollback that finds the thread claimed
does nothing and returns at once with a report saying who holds it (``report.busy``): the
one holding it does the work, and a second click or a second operator must not wait to
redo it. A crashed holder's claim is taken over once its process is gone (same machine) or
its lease ran out (``Recovery(..., lease=)``); see ``guardrails_plugin.rollback._claim``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel
from langgraph.types import StateSnapshot

from ..rollback import (
    DEFAULT_LEASE,
    ClaimHolder,
    Compensations,
    EffectStatus,
    Journal,
    RollbackBusy,
    RollbackClaim,
    RollbackError,
    RollbackRecord,
    SafePoint,
    SideEffect,
    UndoReport,
    Violation,
    aundo_effects,
    new_entry_id,
    undo_effects,
)
from ..store import Store
from ._ledger import aledger_keys, ledger_keys
from ._links import ParentLinks

if TYPE_CHECKING:
    from ..audit import AuditLog

__all__ = ["Recovery", "RollbackReport"]

COPY = "__copy__"
"""``update_state(config_of_checkpoint, None, as_node="__copy__")`` writes a new checkpoint
holding that checkpoint's values, versions and parent (``Pregel.bulk_update_state``): as
the newest checkpoint it becomes the thread's state, and the next step is the one that ran
from the old checkpoint. The checkpoints in between stay in the history."""


@dataclass(frozen=True, slots=True)
class RollbackReport:
    """What ``Recovery.rollback`` did. ``ok`` only if every effect was undone and the state
    restored; otherwise ``undo`` and ``problem`` say what is left, and the journal keeps it.

    The state is restored only when no compensation failed or is in doubt: a half-undone
    world with a fully rolled-back state would invite the agent to redo what still stands.
    Run ``rollback`` again once the cause is fixed (or the effect settled).

    ``busy``: another rollback held the thread, so this one did nothing (no target was
    chosen: ``target`` is ``""``); ``holder`` says who, when its claim is readable.
    """

    thread_id: str
    target: str
    reason: str
    undo: UndoReport
    restored: bool
    new_checkpoint_id: str | None = None
    violation: Violation | None = None
    problem: str | None = None
    busy: bool = False
    holder: ClaimHolder | None = None

    @property
    def ok(self) -> bool:
        """Whether the rollback finished: state restored, every undo done, nothing in the way."""
        return self.restored and self.problem is None and self.undo.ok and not self.busy

    def __str__(self) -> str:
        if self.busy:
            return f"rollback of thread {self.thread_id!r}: NOT STARTED\n  {self.problem}"
        head = f"rollback of thread {self.thread_id!r} to checkpoint {self.target}"
        lines = [
            f"{head}: {'ok' if self.ok else 'NOT OK'}",
            f"  why this checkpoint: {self.reason}",
        ]
        if self.restored:
            lines.append(f"  state restored as checkpoint {self.new_checkpoint_id}")
        else:
            lines.append(f"  state NOT restored: {self.problem or 'the undo did not finish'}")
        lines.extend("  " + line for line in str(self.undo).splitlines())
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class _Target:
    checkpoint_id: str
    snapshot: StateSnapshot
    reason: str
    violation: Violation | None = None


class Recovery:
    """Lists safe points and violations of a thread, and rolls it back.

    ``graph`` is a compiled graph with a checkpointer; ``journal`` the ``Journal`` (or the
    ``Store`` of one) the guard writes to; ``compensations`` the undo actions of its tools.
    ``config`` arguments name the thread: ``{"configurable": {"thread_id": ...}}``.
    Recovery works on the root graph's checkpoints (``checkpoint_ns`` ``""``).

    Stop the run before rolling it back (a step that writes meanwhile is reported as a
    problem). After a rollback the thread's next step is the one that ran from the safe
    point, the risky one: resuming runs it again, so change what made it go wrong first.
    Safe points need the checkpoint before each step saved: run graphs with the default
    durability (``"async"``) or ``"sync"``, not ``"exit"``.

    ``lease``: seconds a rollback's claim on its thread holds without renewal; it is renewed
    between compensations, so make it longer than the slowest one. A rollback that crashed
    on another machine blocks the thread's rollbacks for at most this long.
    """

    def __init__(
        self,
        graph: Pregel[Any, Any, Any, Any],
        journal: Journal | Store,
        compensations: Compensations,
        *,
        audit: AuditLog | None = None,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        if not lease > 0:
            raise ValueError(f"lease must be a positive number of seconds, found {lease!r}")
        if not isinstance(graph.checkpointer, BaseCheckpointSaver):
            raise RollbackError(
                f"{graph.get_name()!r} has no checkpointer to roll back with: "
                "compile it with one, e.g. graph.compile(checkpointer=InMemorySaver())"
            )
        self.graph = graph
        self.journal = journal if isinstance(journal, Journal) else Journal(journal)
        self.compensations = compensations
        self.audit = audit
        """Where each rollback is recorded (kind ``"rollback"``), whatever its outcome."""
        self.lease = lease

    def __repr__(self) -> str:
        return (
            f"Recovery({self.graph.get_name()!r}, {self.journal!r}, "
            f"checkpointer={type(self.graph.checkpointer).__name__})"
        )

    # -- looking --------------------------------------------------------------------------

    def history(self, config: RunnableConfig) -> list[StateSnapshot]:
        """Every checkpoint of the thread, newest first."""
        return list(self.graph.get_state_history(_thread_config(_thread_id(config))))

    async def ahistory(self, config: RunnableConfig) -> list[StateSnapshot]:
        config = _thread_config(_thread_id(config))
        return [snapshot async for snapshot in self.graph.aget_state_history(config)]

    def safe_points(self, config: RunnableConfig) -> list[SafePoint]:
        """Safe points whose checkpoint is still in the thread's history, newest first."""
        thread = _thread_id(config)
        links = self._links(thread)
        points = self.journal.safe_points(thread)
        return _newest_first([p for p in points if links.parent(p.checkpoint_id)[0]])

    async def asafe_points(self, config: RunnableConfig) -> list[SafePoint]:
        thread = _thread_id(config)
        links = self._links(thread)
        points = await self.journal.asafe_points(thread)
        return _newest_first([p for p in points if (await links.aparent(p.checkpoint_id))[0]])

    def violations(self, config: RunnableConfig) -> list[Violation]:
        """The thread's violations, newest first."""
        return self.journal.violations(_thread_id(config))[::-1]

    async def aviolations(self, config: RunnableConfig) -> list[Violation]:
        return (await self.journal.aviolations(_thread_id(config)))[::-1]

    def rollbacks(self, config: RunnableConfig) -> list[RollbackRecord]:
        """The thread's past rollbacks, newest first, successful or not."""
        return self.journal.rollbacks(_thread_id(config))[::-1]

    async def arollbacks(self, config: RunnableConfig) -> list[RollbackRecord]:
        return (await self.journal.arollbacks(_thread_id(config)))[::-1]

    def target(self, config: RunnableConfig, *, to: str | None = None) -> str:
        """The checkpoint ``rollback`` would return to (see there); changes nothing."""
        return self._target(config, to).checkpoint_id

    async def atarget(self, config: RunnableConfig, *, to: str | None = None) -> str:
        return (await self._atarget(config, to)).checkpoint_id

    # -- rolling back ---------------------------------------------------------------------

    def rollback(
        self, config: RunnableConfig, *, to: str | None = None, by: str | None = None
    ) -> RollbackReport:
        """Undo the thread's effects from the target checkpoint on, then restore its state.

        The target is ``to`` if given, else the last safe point at or before the first
        violation recorded since the thread's last restoring rollback: everything after the
        first violation may follow from it, so returning to just before a later one would
        keep the damage; and a violation already rolled back is not rolled back again. Only
        safe points on the path that led to the violation count (not ones on a branch a
        previous rollback abandoned). ``RollbackError`` when there is no target.

        Steps: undo (``undo_effects``: newest first, exactly once); if nothing failed or is
        in doubt, fork the thread back to the target (``update_state(..., as_node=
        "__copy__")``) and check that its state now equals the target's; record the
        rollback in the journal (and the audit log, ``by`` as who asked), whatever happened.
        Never raises for a failed undo: read ``report.ok``.

        All of it under a claim on the thread (see the module doc): a rollback that finds
        the thread claimed by another returns at once, with ``report.busy``.
        """
        thread = _thread_id(config)
        try:
            claim = self.journal.claim_rollback(thread, lease=self.lease)
        except RollbackBusy as busy:
            report = _busy_report(busy)
            self._audited(report, by)
            return report
        with claim:
            report = self._rollback(claim, config, to)
        self._audited(report, by)
        return report

    def _rollback(
        self, claim: RollbackClaim, config: RunnableConfig, to: str | None
    ) -> RollbackReport:
        thread = claim.thread_id
        target = self._target(config, to)
        undo = undo_effects(
            self.journal,
            self.compensations,
            thread,
            after_checkpoint=target.checkpoint_id,
            claim=claim,
        )
        store = self.journal.store
        for key in ledger_keys(store, thread, _undone_calls(self.journal.effects(thread))):
            store.delete(key)
        new_id: str | None = None
        problem: str | None = None
        if _may_restore(undo):
            if claim.renew():
                forked = self.graph.update_state(
                    _checkpoint_config(thread, target.checkpoint_id), None, as_node=COPY
                )
                new_id = _checkpoint_of(forked)
                problem = _restoration_problem(
                    target, self.graph.get_state(_thread_config(thread)), new_id
                )
            else:
                problem = claim.lost_problem()
        report = _report(thread, target, undo, new_id, problem)
        self.journal.record_rollback(_record(report, self.journal.clock()))
        return report

    async def arollback(
        self, config: RunnableConfig, *, to: str | None = None, by: str | None = None
    ) -> RollbackReport:
        """``rollback`` for async code and async checkpointers; awaits async compensations."""
        thread = _thread_id(config)
        try:
            claim = await self.journal.aclaim_rollback(thread, lease=self.lease)
        except RollbackBusy as busy:
            report = _busy_report(busy)
        else:
            async with claim:
                report = await self._arollback(claim, config, to)
        await asyncio.to_thread(self._audited, report, by)  # off the event loop
        return report

    async def _arollback(
        self, claim: RollbackClaim, config: RunnableConfig, to: str | None
    ) -> RollbackReport:
        thread = claim.thread_id
        target = await self._atarget(config, to)
        undo = await aundo_effects(
            self.journal,
            self.compensations,
            thread,
            after_checkpoint=target.checkpoint_id,
            claim=claim,
        )
        store = self.journal.store
        undone = _undone_calls(await self.journal.aeffects(thread))
        for key in await aledger_keys(store, thread, undone):
            await store.adelete(key)
        new_id: str | None = None
        problem: str | None = None
        if _may_restore(undo):
            if await claim.arenew():
                forked = await self.graph.aupdate_state(
                    _checkpoint_config(thread, target.checkpoint_id), None, as_node=COPY
                )
                new_id = _checkpoint_of(forked)
                problem = _restoration_problem(
                    target, await self.graph.aget_state(_thread_config(thread)), new_id
                )
            else:
                problem = claim.lost_problem()
        report = _report(thread, target, undo, new_id, problem)
        await self.journal.arecord_rollback(_record(report, self.journal.clock()))
        return report

    def _audited(self, report: RollbackReport, by: str | None) -> None:
        if self.audit is None:
            return
        undo = report.undo
        self.audit.append(
            "rollback",
            approver=by,
            outcome="busy" if report.busy else "ok" if report.ok else "not-ok",
            thread_id=report.thread_id,
            checkpoint_id=report.target or None,
            reason=report.reason if report.ok else (report.problem or str(report).splitlines()[0]),
            detail={
                "restored": report.restored,
                "new_checkpoint_id": report.new_checkpoint_id,
                "undone": len(undo.undone),
                "failed": len(undo.failed),
                "in_doubt": len(undo.in_doubt),
                "not_undoable": len(undo.not_undoable),
                "not_attempted": len(undo.not_attempted),
            },
        )

    def _target(self, config: RunnableConfig, to: str | None) -> _Target:
        """Reads only what the choice needs: the journal's violations, safe points and
        rollbacks, the parent links of the few checkpoints on the way from the violation
        back to a safe point (``ParentLinks``: no state loaded), then the snapshot of the
        target alone. Flat in the history's length and in the state's size."""
        thread = _thread_id(config)
        if to is not None:
            snapshot = self.graph.get_state(_checkpoint_config(thread, to))
            return _asked_target(thread, to, snapshot)
        links = self._links(thread)
        flow = _choose_target(
            thread,
            self.journal.safe_points(thread),
            self.journal.violations(thread),
            self.journal.rollbacks(thread),
        )
        try:
            ask = next(flow)
            while True:
                if isinstance(ask, _Path):
                    reply: Any = links.path(ask.start, ask.stops)
                else:
                    reply = links.parent(ask.checkpoint_id) if ask else links.any()
                ask = flow.send(reply)
        except StopIteration as done:
            chosen, reason, violation = done.value
        snapshot = self.graph.get_state(_checkpoint_config(thread, chosen))
        return _Target(chosen, snapshot, reason, violation)

    async def _atarget(self, config: RunnableConfig, to: str | None) -> _Target:
        thread = _thread_id(config)
        if to is not None:
            snapshot = await self.graph.aget_state(_checkpoint_config(thread, to))
            return _asked_target(thread, to, snapshot)
        links = self._links(thread)
        flow = _choose_target(
            thread,
            await self.journal.asafe_points(thread),
            await self.journal.aviolations(thread),
            await self.journal.arollbacks(thread),
        )
        try:
            ask = next(flow)
            while True:
                if isinstance(ask, _Path):
                    reply: Any = await links.apath(ask.start, ask.stops)
                else:
                    reply = await links.aparent(ask.checkpoint_id) if ask else await links.aany()
                ask = flow.send(reply)
        except StopIteration as done:
            chosen, reason, violation = done.value
        snapshot = await self.graph.aget_state(_checkpoint_config(thread, chosen))
        return _Target(chosen, snapshot, reason, violation)

    def _links(self, thread: str) -> ParentLinks:
        return ParentLinks(self._saver(), thread)

    def _saver(self) -> BaseCheckpointSaver[Any]:
        saver = self.graph.checkpointer
        assert isinstance(saver, BaseCheckpointSaver)
        return saver


# -- the decisions, shared by the sync and async paths (no I/O) ---------------------------


def _thread_id(config: RunnableConfig) -> str:
    configurable = config.get("configurable") or {}
    thread = configurable.get("thread_id")
    if thread is None or thread == "":
        raise RollbackError(
            "which thread? pass a config naming it: {'configurable': {'thread_id': ...}}, "
            f"found {config!r}"
        )
    if configurable.get("checkpoint_ns"):
        raise RollbackError(
            "Recovery rolls back the root graph (checkpoint_ns ''); found checkpoint_ns "
            f"{configurable['checkpoint_ns']!r}: pass the thread's config without it"
        )
    return str(thread)  # as LangGraph does with non-string thread ids


def _thread_config(thread: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}


def _checkpoint_config(thread: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}
    }


def _checkpoint_of(config: RunnableConfig) -> str:
    return str(config["configurable"]["checkpoint_id"])


def _newest_first(points: Sequence[SafePoint]) -> list[SafePoint]:
    return sorted(points, key=lambda point: point.checkpoint_id, reverse=True)


def _asked_target(thread: str, to: str, snapshot: StateSnapshot) -> _Target:
    if snapshot.created_at is None or _checkpoint_of(snapshot.config) != to:
        raise RollbackError(f"checkpoint {to!r} is not in thread {thread!r}'s history")
    return _Target(to, snapshot, "the checkpoint asked for")


@dataclass(frozen=True, slots=True)
class _Parent:
    """Is ``checkpoint_id`` in the thread's history, and what is its parent? (a ``Link``)"""

    checkpoint_id: str


@dataclass(frozen=True, slots=True)
class _Path:
    """``start`` and its ancestors, newest first, up to the first in ``stops`` (a ``Path``;
    empty when ``start`` is not in the history)."""

    start: str
    stops: frozenset[str]


_AnyCheckpoint = None
"""Has the thread any checkpoint at all? (a bool; asked only to explain a failure)"""

_Choice = Generator[
    "_Parent | _Path | None", Any, tuple[str, str, Violation]
]  # replies: Link, bool


def _choose_target(
    thread: str,
    safe_points: Sequence[SafePoint],
    violations: Sequence[Violation],
    rollbacks: Sequence[RollbackRecord],
) -> _Choice:
    """The last safe point at or before the first violation since the last restoring
    rollback, on the path that led to that violation: (checkpoint id, reason, violation).

    Asks the checkpointer for the path from the violation's checkpoint back through its
    parents to the first safe point (``_Path``: one query), which is the last safe point on
    that path (a parent is older than its child). Safe points on a branch a rollback
    abandoned are not on that path. A violation whose checkpoint is unknown or
    gone is placed by checkpoint id, or by time when it has none (as ``at_or_after`` places
    effects); then the newest safe point before it that is still in the history wins.
    """
    restored = [record for record in rollbacks if record.restored]
    since = restored[-1].id if restored else ""
    open_violations = [violation for violation in violations if violation.id > since]
    if not open_violations:
        if not (yield _AnyCheckpoint):
            raise RollbackError(f"thread {thread!r} has no checkpoints: nothing to roll back")
        after = f" since the rollback {since} to checkpoint {restored[-1].target}" if since else ""
        raise RollbackError(
            f"thread {thread!r} has no violation recorded{after}: nothing to roll back to; "
            "pass to=<checkpoint id> to return to a checkpoint of your choice"
        )
    first = open_violations[0]
    safe = {point.checkpoint_id: point for point in safe_points}
    chosen: SafePoint | None = None
    on_path = False
    if first.checkpoint_id is not None:
        path = yield _Path(first.checkpoint_id, frozenset(safe))
        on_path = bool(path)
        chosen = next((safe[cid] for cid, _ in path if cid in safe), None)
    if not on_path:
        if first.checkpoint_id is not None:
            before = [p for p in safe_points if p.checkpoint_id <= first.checkpoint_id]
        else:
            before = [p for p in safe_points if p.at <= first.at]
        for point in _newest_first(before):
            if (yield _Parent(point.checkpoint_id))[0]:
                chosen = point
                break
    what = f"violation of rule {first.rule!r} ({first.reason}) at checkpoint {first.checkpoint_id}"
    if chosen is None:
        if not (yield _AnyCheckpoint):
            raise RollbackError(f"thread {thread!r} has no checkpoints: nothing to roll back")
        saved = 0
        for point in safe_points:
            saved += bool((yield _Parent(point.checkpoint_id))[0])
        hint = (
            " (none of them is in the checkpointer's history: a graph run with "
            "durability='exit' saves no checkpoint between its steps)"
            if safe_points and not saved
            else ""
        )
        raise RollbackError(
            f"thread {thread!r}: no safe point at or before the {what}; "
            f"{len(safe_points)} safe point(s) recorded{hint}; "
            "pass to=<checkpoint id> to choose a checkpoint"
        )
    return chosen.checkpoint_id, f"last safe point before the {what}", first


def _may_restore(undo: UndoReport) -> bool:
    # Effects without a compensation never become undoable: they are reported, but must
    # not keep the state from being restored forever.
    return not (undo.failed or undo.in_doubt or undo.not_attempted or undo.problem)


def _restoration_problem(target: _Target, latest: StateSnapshot, new_id: str) -> str | None:
    if _checkpoint_of(latest.config) != new_id:
        return (
            f"the thread's latest checkpoint is {_checkpoint_of(latest.config)}, not the "
            f"restoring one {new_id}: something wrote to the thread during the rollback"
        )
    if latest.values != target.snapshot.values or latest.next != target.snapshot.next:
        return (
            f"the restored state differs from checkpoint {target.checkpoint_id}: "
            f"next {latest.next} vs {target.snapshot.next}"
        )
    return None


def _report(
    thread: str, target: _Target, undo: UndoReport, new_id: str | None, problem: str | None
) -> RollbackReport:
    return RollbackReport(
        thread_id=thread,
        target=target.checkpoint_id,
        reason=target.reason,
        undo=undo,
        restored=new_id is not None and problem is None,
        new_checkpoint_id=new_id,
        violation=target.violation,
        problem=problem,
    )


def _busy_report(busy: RollbackBusy) -> RollbackReport:
    return RollbackReport(
        thread_id=busy.thread_id,
        target="",
        reason="not started: another rollback holds the thread",
        undo=UndoReport(busy.thread_id, None),
        restored=False,
        problem=str(busy),
        busy=True,
        holder=busy.holder,
    )


def _record(report: RollbackReport, at: float) -> RollbackRecord:
    undo = report.undo
    return RollbackRecord(
        id=new_entry_id(),
        thread_id=report.thread_id,
        target=report.target,
        reason=report.reason,
        restored=report.restored,
        new_checkpoint_id=report.new_checkpoint_id,
        violation_id=report.violation.id if report.violation else None,
        undone=tuple(effect.id for effect in undo.undone),
        failed=tuple(effect.id for effect in undo.failed),
        in_doubt=tuple(effect.id for effect in undo.in_doubt),
        not_undoable=tuple(effect.id for effect in undo.not_undoable),
        not_attempted=tuple(effect.id for effect in undo.not_attempted),
        problem=report.problem,
        at=at,
    )


def _undone_calls(effects: Sequence[SideEffect]) -> list[str]:
    """The calls whose effects are undone, whose done-ledger entries go: if their step runs
    again, they must run again, not hand back the result of an effect that no longer stands."""
    return [e.call_id for e in effects if e.status is EffectStatus.UNDONE and e.call_id]
