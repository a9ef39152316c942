"""The durable journal of a thread's side effects, safe points, violations and rollbacks."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from .._errors import RollbackError, StoreError
from .._events import ToolCall
from ..store import Store
from ._claim import DEFAULT_LEASE, RollbackBusy, RollbackClaim, claim_flow
from ._compensations import _checked_json, _jsonable
from ._records import (
    EffectStatus,
    RollbackRecord,
    SafePoint,
    SideEffect,
    Violation,
    _from_json,
    _id_time_ns,
    _Record,
    new_entry_id,
)

# -- checkpoint ids -----------------------------------------------------------------------

# LangGraph checkpoint ids are UUIDv6 (``langgraph.checkpoint.base.id.uuid6``, called by
# ``create_checkpoint`` and ``empty_checkpoint``): the 60-bit timestamp, in 100 ns since
# 1582, fills the first 15 hex digits most significant first (the version digit "6" sits at
# a fixed place among them) and the generator never repeats or goes back within a process.
# So the canonical lowercase strings sort in creation order, which is how every LangGraph
# saver finds the latest checkpoint (``ORDER BY checkpoint_id DESC`` in SQLite and Postgres,
# ``sorted(..., reverse=True)`` in memory). We compare them as strings for the same reason.
_UUID_EPOCH_100NS = 0x01B21DD213814000


def _checkpoint_id(value: str, what: str) -> str:
    """``value`` in canonical form; ``ValueError`` unless it is a UUIDv6 checkpoint id."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{what} must be a LangGraph checkpoint id, found {value!r}") from exc
    if parsed.version != 6:
        raise ValueError(
            f"{what} must be a LangGraph checkpoint id (a time-ordered UUIDv6), "
            f"found {value!r} (UUID version {parsed.version})"
        )
    return str(parsed)


def _checkpoint_time_ns(checkpoint_id: str) -> int:
    """When the checkpoint was made, in Unix nanoseconds (read from its UUIDv6)."""
    digits = checkpoint_id.replace("-", "")
    stamp = (int(digits[:12], 16) << 12) | int(digits[13:16], 16)
    return (stamp - _UUID_EPOCH_100NS) * 100


def at_or_after(effect: SideEffect, checkpoint_id: str) -> bool:
    """Whether ``effect`` happened in the step that started from ``checkpoint_id`` or later.

    An effect recorded without a checkpoint is placed by time: it counts when it was
    recorded after the checkpoint was made. The step that starts from a checkpoint runs
    after the checkpoint was written, so this agrees with the id order for every effect
    that has one; refusing to place such effects would leave them in the world silently.
    """
    if effect.checkpoint_id is not None:
        return effect.checkpoint_id >= checkpoint_id
    return _id_time_ns(effect.id) >= _checkpoint_time_ns(checkpoint_id)


# -- the journal --------------------------------------------------------------------------


class Journal:
    """Effects, safe points, violations and rollbacks of each thread, in a ``Store``.

    Keys are ``<prefix><thread>/effect/<id>`` (and ``/safe/<checkpoint>``,
    ``/violation/<id>``, ``/rollback/<id>``), the thread percent-encoded so that one
    thread's ``scan`` never sees another's. Listings come back in the order recorded.
    ``clock`` stamps ``recorded_at``, ``undone_at`` and ``at`` (ids use the real clock,
    which orders them).
    """

    def __init__(
        self, store: Store, *, clock: Callable[[], float] = time.time, prefix: str = "journal/"
    ) -> None:
        self.store = store
        self.clock = clock
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"Journal({self.store!r}, prefix={self.prefix!r})"

    # -- building entries (no I/O) --------------------------------------------------------

    def _thread_prefix(self, thread_id: str, kind: str) -> str:
        if not isinstance(thread_id, str) or not thread_id:
            raise ValueError(f"thread_id must be a non-empty string, found {thread_id!r}")
        return f"{self.prefix}{quote(thread_id, safe='')}/{kind}/"

    def _effect_key(self, effect: SideEffect) -> str:
        return self._thread_prefix(effect.thread_id, "effect") + effect.id

    def _new_effect(
        self,
        thread_id: str,
        checkpoint_id: str | None,
        checkpoint_ns: str,
        call: ToolCall,
        data: Mapping[str, Any],
    ) -> tuple[str, SideEffect]:
        if not isinstance(data, Mapping):
            raise TypeError(f"effect data must be a mapping, found {type(data).__name__}")
        effect = SideEffect(
            id=new_entry_id(),
            thread_id=thread_id,
            checkpoint_id=(
                None
                if checkpoint_id is None
                else _checkpoint_id(checkpoint_id, "an effect's checkpoint_id")
            ),
            checkpoint_ns=checkpoint_ns,
            tool=call.tool,
            agent=call.agent,
            call_id=call.call_id,
            args=_jsonable(call.args),
            data=_checked_json(dict(data), f"the data recorded for tool {call.tool!r}"),
            recorded_at=self.clock(),
        )
        return self._effect_key(effect), effect

    def _new_safe_point(
        self,
        thread_id: str,
        checkpoint_id: str,
        checkpoint_ns: str,
        step: int | None,
        agent: str | None,
        tool: str | None,
        reason: str,
    ) -> tuple[str, SafePoint]:
        point = SafePoint(
            thread_id=thread_id,
            checkpoint_id=_checkpoint_id(checkpoint_id, "a safe point's checkpoint_id"),
            checkpoint_ns=checkpoint_ns,
            step=step,
            agent=agent,
            tool=tool,
            reason=reason,
            at=self.clock(),
        )
        # Keyed by checkpoint: marking the same checkpoint twice keeps one safe point.
        return self._thread_prefix(thread_id, "safe") + point.checkpoint_id, point

    def _new_violation(
        self,
        thread_id: str,
        checkpoint_id: str | None,
        checkpoint_ns: str,
        rule: str,
        reason: str,
        agent: str | None,
        tool: str | None,
    ) -> tuple[str, Violation]:
        violation = Violation(
            thread_id=thread_id,
            checkpoint_id=(
                None
                if checkpoint_id is None
                else _checkpoint_id(checkpoint_id, "a violation's checkpoint_id")
            ),
            checkpoint_ns=checkpoint_ns,
            agent=agent,
            tool=tool,
            rule=rule,
            reason=reason,
            at=self.clock(),
            id=new_entry_id(),
        )
        return self._thread_prefix(thread_id, "violation") + violation.id, violation

    def _rollback_key(self, record: RollbackRecord) -> str:
        return self._thread_prefix(record.thread_id, "rollback") + record.id

    def _settled(self, found: Any, key: str, undone: bool, note: str) -> SideEffect:
        if found is None:
            raise RollbackError(f"{self!r}: no effect at {key!r}; nothing to settle")
        if not isinstance(note, str) or not note.strip():
            raise ValueError("settle needs a note saying what was checked and by whom")
        effect = _read(SideEffect, key, found, self.store)
        return dataclasses.replace(
            effect,
            status=EffectStatus.UNDONE if undone else EffectStatus.DONE,
            undone_at=self.clock() if undone else None,
            note=f"settled by hand as {'undone' if undone else 'not undone'}: {note}",
        )

    # -- writing --------------------------------------------------------------------------

    def record_effect(
        self,
        thread_id: str,
        checkpoint_id: str | None,
        checkpoint_ns: str,
        call: ToolCall,
        data: Mapping[str, Any],
    ) -> SideEffect:
        """Record that ``call`` changed the world; ``data`` is what its undo will need.

        ``checkpoint_id`` is the checkpoint the step started from: inside a LangGraph node,
        ``config["configurable"]["checkpoint_map"][""]`` (the root graph's, also from a
        subgraph). Call it right after the tool ran, before the step ends.
        """
        key, effect = self._new_effect(thread_id, checkpoint_id, checkpoint_ns, call, data)
        self.store.put(key, effect.to_json())
        return effect

    async def arecord_effect(
        self,
        thread_id: str,
        checkpoint_id: str | None,
        checkpoint_ns: str,
        call: ToolCall,
        data: Mapping[str, Any],
    ) -> SideEffect:
        key, effect = self._new_effect(thread_id, checkpoint_id, checkpoint_ns, call, data)
        await self.store.aput(key, effect.to_json())
        return effect

    def mark_safe_point(
        self,
        thread_id: str,
        checkpoint_id: str,
        checkpoint_ns: str = "",
        *,
        step: int | None = None,
        agent: str | None = None,
        tool: str | None = None,
        reason: str = "",
    ) -> SafePoint:
        """Mark ``checkpoint_id`` safe to return to (the checkpoint before a risky step)."""
        key, point = self._new_safe_point(
            thread_id, checkpoint_id, checkpoint_ns, step, agent, tool, reason
        )
        self.store.put(key, point.to_json())
        return point

    async def amark_safe_point(
        self,
        thread_id: str,
        checkpoint_id: str,
        checkpoint_ns: str = "",
        *,
        step: int | None = None,
        agent: str | None = None,
        tool: str | None = None,
        reason: str = "",
    ) -> SafePoint:
        key, point = self._new_safe_point(
            thread_id, checkpoint_id, checkpoint_ns, step, agent, tool, reason
        )
        await self.store.aput(key, point.to_json())
        return point

    def mark_violation(
        self,
        thread_id: str,
        checkpoint_id: str | None,
        checkpoint_ns: str = "",
        *,
        rule: str,
        reason: str,
        agent: str | None = None,
        tool: str | None = None,
    ) -> Violation:
        """Record that the step started from ``checkpoint_id`` broke ``rule``."""
        key, violation = self._new_violation(
            thread_id, checkpoint_id, checkpoint_ns, rule, reason, agent, tool
        )
        self.store.put(key, violation.to_json())
        return violation

    async def amark_violation(
        self,
        thread_id: str,
        checkpoint_id: str | None,
        checkpoint_ns: str = "",
        *,
        rule: str,
        reason: str,
        agent: str | None = None,
        tool: str | None = None,
    ) -> Violation:
        key, violation = self._new_violation(
            thread_id, checkpoint_id, checkpoint_ns, rule, reason, agent, tool
        )
        await self.store.aput(key, violation.to_json())
        return violation

    def record_rollback(self, record: RollbackRecord) -> None:
        """Keep what a rollback did (``Recovery`` calls this)."""
        self.store.put(self._rollback_key(record), record.to_json())

    async def arecord_rollback(self, record: RollbackRecord) -> None:
        await self.store.aput(self._rollback_key(record), record.to_json())

    def save_effect(self, effect: SideEffect) -> None:
        """Write ``effect`` over its entry: one ``put``, so a reader sees it whole."""
        self.store.put(self._effect_key(effect), effect.to_json())

    async def asave_effect(self, effect: SideEffect) -> None:
        await self.store.aput(self._effect_key(effect), effect.to_json())

    def settle(self, thread_id: str, effect_id: str, *, undone: bool, note: str) -> SideEffect:
        """A person's verdict on an effect the rollback could not decide (``in_doubt``).

        ``undone=True``: the person made sure it is undone; it becomes ``undone``.
        ``undone=False``: it is still in the world; it becomes ``done`` again, so the next
        rollback runs its compensation. ``note`` (required) says what was checked.
        """
        key = self._thread_prefix(thread_id, "effect") + effect_id
        effect = self._settled(self.store.get(key), key, undone, note)
        self.store.put(key, effect.to_json())
        return effect

    async def asettle(
        self, thread_id: str, effect_id: str, *, undone: bool, note: str
    ) -> SideEffect:
        key = self._thread_prefix(thread_id, "effect") + effect_id
        effect = self._settled(await self.store.aget(key), key, undone, note)
        await self.store.aput(key, effect.to_json())
        return effect

    # -- one rollback at a time -----------------------------------------------------------

    def _claim_key(self, thread_id: str) -> str:
        # Its own kind: no listing of effects, safe points, violations or rollbacks sees it.
        return self._thread_prefix(thread_id, "claim") + "rollback"

    def _claimed(self, thread_id: str, key: str, result: Any, lease: float) -> RollbackClaim:
        mine, other = result
        if mine == "busy":
            raise RollbackBusy(thread_id, key, other)
        return RollbackClaim(self.store, key, thread_id, mine, lease, self.clock, other)

    def claim_rollback(self, thread_id: str, *, lease: float = DEFAULT_LEASE) -> RollbackClaim:
        """Claim ``thread_id`` for one rollback (see ``guardrails_plugin.rollback._claim``:
        atomic across processes, taken over from a crashed holder). ``RollbackBusy`` when
        another rollback holds it. Release the claim when done (``with`` does)."""
        if not lease > 0:
            raise ValueError(f"lease must be a positive number of seconds, found {lease!r}")
        key = self._claim_key(thread_id)
        flow = claim_flow(key, self.clock(), lease)
        try:
            op = next(flow)
            while True:
                name, args = op
                if name == "put_if":
                    reply: Any = self.store.put_if(args[0], args[1], expected=args[2])
                else:
                    reply = self.store.get(args[0])
                op = flow.send(reply)
        except StopIteration as done:
            return self._claimed(thread_id, key, done.value, lease)

    async def aclaim_rollback(
        self, thread_id: str, *, lease: float = DEFAULT_LEASE
    ) -> RollbackClaim:
        if not lease > 0:
            raise ValueError(f"lease must be a positive number of seconds, found {lease!r}")
        key = self._claim_key(thread_id)
        flow = claim_flow(key, self.clock(), lease)
        try:
            op = next(flow)
            while True:
                name, args = op
                if name == "put_if":
                    reply: Any = await self.store.aput_if(args[0], args[1], expected=args[2])
                else:
                    reply = await self.store.aget(args[0])
                op = flow.send(reply)
        except StopIteration as done:
            return self._claimed(thread_id, key, done.value, lease)

    # -- reading --------------------------------------------------------------------------

    def effects(self, thread_id: str) -> list[SideEffect]:
        """The thread's effects, oldest first."""
        return _read_all(
            SideEffect, self.store.scan(self._thread_prefix(thread_id, "effect")), self
        )

    async def aeffects(self, thread_id: str) -> list[SideEffect]:
        found = await self.store.ascan(self._thread_prefix(thread_id, "effect"))
        return _read_all(SideEffect, found, self)

    def safe_points(self, thread_id: str) -> list[SafePoint]:
        """The thread's safe points, oldest checkpoint first."""
        return _read_all(SafePoint, self.store.scan(self._thread_prefix(thread_id, "safe")), self)

    async def asafe_points(self, thread_id: str) -> list[SafePoint]:
        found = await self.store.ascan(self._thread_prefix(thread_id, "safe"))
        return _read_all(SafePoint, found, self)

    def violations(self, thread_id: str) -> list[Violation]:
        """The thread's violations, oldest first."""
        found = self.store.scan(self._thread_prefix(thread_id, "violation"))
        return _read_all(Violation, found, self)

    async def aviolations(self, thread_id: str) -> list[Violation]:
        found = await self.store.ascan(self._thread_prefix(thread_id, "violation"))
        return _read_all(Violation, found, self)

    def rollbacks(self, thread_id: str) -> list[RollbackRecord]:
        """The thread's rollbacks, oldest first."""
        found = self.store.scan(self._thread_prefix(thread_id, "rollback"))
        return _read_all(RollbackRecord, found, self)

    async def arollbacks(self, thread_id: str) -> list[RollbackRecord]:
        found = await self.store.ascan(self._thread_prefix(thread_id, "rollback"))
        return _read_all(RollbackRecord, found, self)


def _read(cls: type[_Record], key: str, doc: Any, where: object) -> _Record:
    try:
        return _from_json(cls, doc)
    except ValueError as exc:
        raise StoreError(f"{where!r}: journal entry {key!r} is unreadable: {exc}") from exc


def _read_all(cls: type[_Record], found: Mapping[str, Any], where: object) -> list[_Record]:
    # Ids and checkpoint ids sort by time, and each kind has a prefix of its own.
    return [_read(cls, key, found[key], where) for key in sorted(found)]
