"""Undo a thread's side effects: newest first, exactly once across crashes."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

from .._errors import RollbackError
from ._claim import RollbackClaim
from ._compensations import Compensation, Compensations
from ._journal import Journal, _checkpoint_id, at_or_after
from ._records import EffectStatus, SideEffect

# -- undoing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UndoReport:
    """What an undo did, effect by effect. ``ok`` only when every selected effect is undone.

    - ``undone``: compensated in this run, newest first.
    - ``failed``: the compensation raised (``effect.error``); the undo stopped there.
    - ``in_doubt``: a non-idempotent compensation had been interrupted; a person must check
      and ``Journal.settle`` it. The undo stopped there.
    - ``not_undoable``: no compensation is registered for the tool; it stays in the world
      (its journal entry carries a note saying so).
    - ``not_attempted``: older effects left alone because the undo stopped.
    - ``problem``: why the undo stopped when no effect is to blame (the rollback lost its
      claim on the thread to another one).
    """

    thread_id: str
    after_checkpoint: str | None
    undone: tuple[SideEffect, ...] = ()
    failed: tuple[SideEffect, ...] = ()
    in_doubt: tuple[SideEffect, ...] = ()
    not_undoable: tuple[SideEffect, ...] = ()
    not_attempted: tuple[SideEffect, ...] = ()
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """True only if everything selected is now undone."""
        return not (
            self.failed or self.in_doubt or self.not_undoable or self.not_attempted or self.problem
        )

    @property
    def stopped(self) -> bool:
        """True when a failed or in-doubt effect (or a lost claim) stopped the undo."""
        return bool(self.failed or self.in_doubt or self.problem)

    def __str__(self) -> str:
        since = (
            f"from checkpoint {self.after_checkpoint} on"
            if self.after_checkpoint
            else "(all effects)"
        )
        lines = [f"undo of thread {self.thread_id!r} {since}: {'ok' if self.ok else 'NOT OK'}"]
        sections: list[tuple[str, Sequence[SideEffect], Callable[[SideEffect], str]]] = [
            ("undone", self.undone, lambda e: ""),
            ("FAILED", self.failed, lambda e: f": {e.error}"),
            (
                "IN DOUBT (check by hand, then Journal.settle)",
                self.in_doubt,
                lambda e: f": {e.error}",
            ),
            ("CANNOT UNDO", self.not_undoable, lambda e: f": {e.note}"),
            ("not attempted (stopped above)", self.not_attempted, lambda e: ""),
        ]
        if self.problem:
            lines.append(f"  STOPPED: {self.problem}")
        if not any(effects for _, effects, _ in sections):
            lines.append("  nothing to undo")
        for title, effects, detail in sections:
            if effects:
                lines.append(f"  {title} ({len(effects)}):")
                lines.extend(f"    {e.describe()}{detail(e)}" for e in effects)
        return "\n".join(lines)


# The undo protocol, written once as a generator that yields I/O requests; the sync and
# async drivers below carry them out. ``_Save`` writes an effect's entry; ``_Run`` calls a
# compensation and sends back the exception it raised (or ``None``); ``_Renew`` renews the
# claim on the thread and sends back whether it is still held.


@dataclass(frozen=True, slots=True)
class _Save:
    effect: SideEffect


@dataclass(frozen=True, slots=True)
class _Run:
    compensation: Compensation
    effect: SideEffect


@dataclass(frozen=True, slots=True)
class _Renew:
    """Renew the rollback's claim on the thread; the reply says whether it still holds it."""


_SELECTED = frozenset(
    {EffectStatus.DONE, EffectStatus.FAILED, EffectStatus.UNDOING, EffectStatus.IN_DOUBT}
)


def _select(effects: Sequence[SideEffect], after_checkpoint: str | None) -> list[SideEffect]:
    """The effects still in the world from ``after_checkpoint`` on, newest first."""
    cut = None if after_checkpoint is None else _checkpoint_id(after_checkpoint, "a checkpoint")
    chosen = [
        effect
        for effect in effects
        if effect.status in _SELECTED and (cut is None or at_or_after(effect, cut))
    ]
    return sorted(chosen, key=lambda effect: effect.id, reverse=True)


def _protocol(
    thread_id: str,
    after_checkpoint: str | None,
    selected: Sequence[SideEffect],
    compensations: Compensations,
    clock: Callable[[], float],
) -> Generator[_Save | _Run | _Renew, BaseException | bool | None, UndoReport]:
    """Undo ``selected`` (newest first), exactly once per effect across crashes.

    Per effect: save ``undoing`` (attempts + 1), run the compensation, save ``undone``.
    A rerun that finds ``undoing`` runs an idempotent compensation again (same key) and
    marks a non-idempotent one ``in_doubt`` without running it. A failure or an effect in
    doubt stops the undo: newer effects can depend on older ones (a message that links to
    an uploaded file, money moved into an account the agent opened), so undoing an older
    effect while a newer one stands can do harm, and the next rollback resumes in order.
    An effect without a compensation cannot be helped by waiting, so it is reported, noted
    in its entry, and the undo goes on past it. Before each compensation the claim on the
    thread is renewed; a lost claim stops the undo before it touches the effect.
    """
    problem: str | None = None
    undone: list[SideEffect] = []
    failed: list[SideEffect] = []
    in_doubt: list[SideEffect] = []
    not_undoable: list[SideEffect] = []
    remaining = list(selected)
    while remaining:
        effect = remaining.pop(0)
        compensation = compensations.for_tool(effect.tool)
        if compensation is None:
            note = f"cannot undo: no compensation is registered for tool {effect.tool!r}"
            if effect.note != note:
                effect = dataclasses.replace(effect, note=note)
                yield _Save(effect)
            not_undoable.append(effect)
            continue
        if effect.status is EffectStatus.IN_DOUBT:
            in_doubt.append(effect)
            break
        if not (yield _Renew()):
            remaining.insert(0, effect)
            problem = "lost the claim on the thread"
            break
        if effect.status is EffectStatus.UNDOING and not compensation.idempotent:
            effect = dataclasses.replace(
                effect,
                status=EffectStatus.IN_DOUBT,
                error=(
                    f"interrupted while undoing (attempt {effect.attempts}); the compensation "
                    "is not idempotent, so it was not run again: check whether it took effect"
                ),
            )
            yield _Save(effect)
            in_doubt.append(effect)
            break
        effect = dataclasses.replace(
            effect, status=EffectStatus.UNDOING, attempts=effect.attempts + 1, error=None
        )
        yield _Save(effect)
        error = yield _Run(compensation, effect)
        if error is None:
            effect = dataclasses.replace(effect, status=EffectStatus.UNDONE, undone_at=clock())
            yield _Save(effect)
            undone.append(effect)
        else:
            effect = dataclasses.replace(
                effect, status=EffectStatus.FAILED, error=f"{type(error).__name__}: {error}"
            )
            yield _Save(effect)
            failed.append(effect)
            break
    return UndoReport(
        thread_id=thread_id,
        after_checkpoint=after_checkpoint,
        undone=tuple(undone),
        failed=tuple(failed),
        in_doubt=tuple(in_doubt),
        not_undoable=tuple(not_undoable),
        not_attempted=tuple(remaining),
        problem=problem,
    )


def undo_effects(
    journal: Journal,
    compensations: Compensations,
    thread_id: str,
    *,
    after_checkpoint: str | None,
    claim: RollbackClaim | None = None,
) -> UndoReport:
    """Undo the thread's effects from ``after_checkpoint`` on (all if ``None``), newest first.

    Selected: effects not yet undone (``done``, ``failed``, ``undoing``, ``in_doubt``) whose
    step started from ``after_checkpoint`` or a later checkpoint (see ``at_or_after``).
    Each compensation runs at most once per effect unless a crash interrupted it, and then
    again only if it is idempotent. Exceptions from compensations are reported, not raised;
    ``KeyboardInterrupt`` and the like stop the undo where it is, and a rerun resumes it.
    ``RollbackError`` (before anything runs) if a selected effect's compensation is async:
    use ``aundo_effects``. A failing store raises ``StoreError``; rerun once it is back.

    One undo per thread at a time, across processes: it claims the thread first
    (``Journal.claim_rollback``; ``RollbackBusy`` if another undo or rollback holds it) and
    releases it at the end, or works under ``claim`` if given (the caller's, kept).
    """
    if claim is None:
        with journal.claim_rollback(thread_id) as own:
            return undo_effects(
                journal, compensations, thread_id, after_checkpoint=after_checkpoint, claim=own
            )
    selected = _select(journal.effects(thread_id), after_checkpoint)
    for effect in selected:
        compensation = compensations.for_tool(effect.tool)
        if compensation is not None and compensation.is_async:
            raise RollbackError(
                f"the compensation for tool {effect.tool!r} is async: "
                "undo with aundo_effects (or Recovery.arollback)"
            )
    protocol = _protocol(thread_id, after_checkpoint, selected, compensations, journal.clock)
    reply: BaseException | bool | None = None
    try:
        while True:
            request = protocol.send(reply)
            reply = None
            if isinstance(request, _Save):
                journal.save_effect(request.effect)
            elif isinstance(request, _Renew):
                reply = claim.renew()
            else:
                reply = _run_sync(request)
    except StopIteration as done:
        return _with_claim(done.value, claim)


async def aundo_effects(
    journal: Journal,
    compensations: Compensations,
    thread_id: str,
    *,
    after_checkpoint: str | None,
    claim: RollbackClaim | None = None,
) -> UndoReport:
    """``undo_effects`` for async code: awaits async compensations, calls sync ones as is."""
    if claim is None:
        async with await journal.aclaim_rollback(thread_id) as own:
            return await aundo_effects(
                journal, compensations, thread_id, after_checkpoint=after_checkpoint, claim=own
            )
    selected = _select(await journal.aeffects(thread_id), after_checkpoint)
    protocol = _protocol(thread_id, after_checkpoint, selected, compensations, journal.clock)
    reply: BaseException | bool | None = None
    try:
        while True:
            request = protocol.send(reply)
            reply = None
            if isinstance(request, _Save):
                await journal.asave_effect(request.effect)
            elif isinstance(request, _Renew):
                reply = await claim.arenew()
            else:
                reply = await _run_async(request)
    except StopIteration as done:
        return _with_claim(done.value, claim)


def _with_claim(report: UndoReport, claim: RollbackClaim) -> UndoReport:
    if report.problem is None:
        return report
    return dataclasses.replace(report, problem=claim.lost_problem())


def _run_sync(request: _Run) -> Exception | None:
    try:
        result = request.compensation.undo(request.effect)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never awaited: do not leave a warning behind
            raise TypeError(
                f"the compensation for tool {request.effect.tool!r} returned an awaitable; "
                "undo with aundo_effects (or Recovery.arollback)"
            )
    except Exception as exc:
        return exc
    return None


async def _run_async(request: _Run) -> Exception | None:
    try:
        result = request.compensation.undo(request.effect)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        return exc
    return None
