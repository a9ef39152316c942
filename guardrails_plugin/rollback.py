"""Undo what an agent did to the world: compensations, a durable journal, exactly-once undo.

Three pieces, framework-free (LangGraph's part lives in ``guardrails_plugin.langgraph``):

- ``Compensations``: which action undoes which tool, and what it needs to know
  (``capture``, taken when the tool ran).
- ``Journal``: every side effect a tool had (an ``SideEffect``), every safe point and every
  violation, kept per thread in the guard's ``Store`` (a ``SQLiteStore`` can share the file
  of a LangGraph ``SqliteSaver``). Each write is one ``put`` of a whole document, so each
  entry is always either the old or the new version, never half of each.
- ``undo_effects``: runs the compensations of a thread's effects, newest first, and
  exactly once across crashes (see ``undo_effects`` for the protocol).

>>> from guardrails_plugin import MemoryStore, ToolCall
>>> compensations = Compensations()
>>> posts = []
>>> @compensations.undo("post", capture=lambda args, result: {"post_id": result})
... def delete_post(effect):
...     if effect.data["post_id"] in posts:  # idempotent: a retry finds it gone
...         posts.remove(effect.data["post_id"])
>>> journal = Journal(MemoryStore())
>>> call = ToolCall("post", {"text": "hello"})
>>> posts.append("p-1")  # the tool ran and returned "p-1"
>>> effect = journal.record_effect(
...     "thread-1", None, "", call, compensations.capture("post", call.args, "p-1")
... )
>>> report = undo_effects(journal, compensations, "thread-1", after_checkpoint=None)
>>> report.ok, posts, journal.effects("thread-1")[0].status.value
(True, [], 'undone')
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeAlias, TypeVar
from urllib.parse import quote

from ._errors import RollbackError, StoreError
from ._events import ToolCall
from .store import Store

__all__ = [
    "Compensation",
    "Compensations",
    "SideEffect",
    "EffectStatus",
    "Journal",
    "RollbackError",
    "RollbackRecord",
    "SafePoint",
    "UndoReport",
    "Violation",
    "at_or_after",
    "aundo_effects",
    "new_entry_id",
    "undo_effects",
]


# -- records ------------------------------------------------------------------------------

Undo: TypeAlias = Callable[["SideEffect"], object]
"""A compensation: receives the ``SideEffect`` to undo; sync, or async (returns an awaitable)."""

Capture: TypeAlias = Callable[[Mapping[str, Any], Any], Mapping[str, Any]]
"""``capture(args, result)``: the JSON-serializable data the undo will need."""


class EffectStatus(enum.StrEnum):
    """Where an effect stands. ``done`` -> ``undoing`` -> ``undone`` (or ``failed``)."""

    DONE = "done"
    """The tool ran; the effect is in the world."""
    UNDOING = "undoing"
    """Its compensation was started; found on a rerun, the process stopped in the middle."""
    UNDONE = "undone"
    """Its compensation finished (or a person settled it as undone)."""
    FAILED = "failed"
    """Its compensation raised; ``error`` says what. The next rollback tries again."""
    IN_DOUBT = "in_doubt"
    """A non-idempotent compensation was interrupted: nobody knows whether it took effect.
    A person checks and calls ``Journal.settle``."""


# Like LangGraph's uuid6, the id generator remembers its last stamp so that ids never go
# back or repeat within a process (this is not shared state: each process has its own).
_id_lock = threading.Lock()
_last_id_ns = 0


def new_entry_id() -> str:
    """A unique id that sorts by creation time: ``"<time_ns, 20 digits>-<8 hex>"``.

    Strictly increasing within a process (two ids in the same nanosecond still sort in
    creation order), so sorting a thread's effects by id gives the order they were recorded.
    """
    global _last_id_ns
    with _id_lock:
        now = max(time.time_ns(), _last_id_ns + 1)
        _last_id_ns = now
    return f"{now:020d}-{uuid.uuid4().hex[:8]}"


def _id_time_ns(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a mapping, found {type(value).__name__}: {value!r}")
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


@dataclass(frozen=True, slots=True)
class SideEffect:
    """One side effect a tool had on the world, and how far its undoing got.

    ``checkpoint_id`` is the LangGraph checkpoint the step that ran the tool started from
    (``None`` when unknown); ``data`` is what the tool's ``capture`` returned. The undo
    callable receives the ``SideEffect``: pass ``effect.key`` to external systems as the
    idempotency key, and read ``effect.attempts`` (``> 1`` on a retry).
    """

    id: str
    thread_id: str
    checkpoint_id: str | None
    checkpoint_ns: str
    tool: str
    agent: str
    call_id: str | None
    args: Mapping[str, Any]
    data: Mapping[str, Any]
    status: EffectStatus = EffectStatus.DONE
    attempts: int = 0
    error: str | None = None
    note: str | None = None
    recorded_at: float = 0.0
    undone_at: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", EffectStatus(self.status))
        object.__setattr__(self, "args", _frozen(self.args))
        object.__setattr__(self, "data", _frozen(self.data))

    def __hash__(self) -> int:
        return hash((self.id, self.status, self.attempts))

    def __repr__(self) -> str:
        return (
            f"SideEffect({self.id!r}, tool={self.tool!r}, status={self.status.value!r}, "
            f"checkpoint={self.checkpoint_id!r}, attempts={self.attempts})"
        )

    @property
    def key(self) -> str:
        """The idempotency key for external systems: the same on every attempt."""
        return self.id

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; ``SideEffect.from_json`` reads it back."""
        return _to_json(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SideEffect:
        """The effect ``doc`` describes; ``ValueError`` when it is malformed."""
        return _from_json(cls, doc)

    def describe(self) -> str:
        """One line for reports: id, tool, checkpoint and attempts."""
        where = f"checkpoint {self.checkpoint_id}" if self.checkpoint_id else "no checkpoint"
        tries = f", attempt {self.attempts}" if self.attempts else ""
        return f"{self.id} {self.tool} by {self.agent} ({where}{tries})"


@dataclass(frozen=True, slots=True)
class SafePoint:
    """A checkpoint the guard judged safe to return to: the one before a risky step."""

    thread_id: str
    checkpoint_id: str
    checkpoint_ns: str = ""
    step: int | None = None
    agent: str | None = None
    tool: str | None = None
    reason: str = ""
    at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SafePoint:
        return _from_json(cls, doc)


@dataclass(frozen=True, slots=True)
class Violation:
    """Something went wrong in the step that started from ``checkpoint_id``.

    ``id`` orders violations (and rollbacks) in the time they were recorded.
    """

    thread_id: str
    checkpoint_id: str | None
    checkpoint_ns: str = ""
    agent: str | None = None
    tool: str | None = None
    rule: str = ""
    reason: str = ""
    at: float = 0.0
    id: str = ""

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Violation:
        return _from_json(cls, doc)


@dataclass(frozen=True, slots=True)
class RollbackRecord:
    """What one rollback did, kept in the journal whether it succeeded or not.

    Effects are named by id. ``restored`` says whether the graph state was returned to
    ``target``; ``new_checkpoint_id`` is the checkpoint that did it.
    """

    id: str
    thread_id: str
    target: str
    reason: str
    restored: bool
    new_checkpoint_id: str | None = None
    violation_id: str | None = None
    undone: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    in_doubt: tuple[str, ...] = ()
    not_undoable: tuple[str, ...] = ()
    not_attempted: tuple[str, ...] = ()
    problem: str | None = None
    at: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.restored
            and self.problem is None
            and not (self.failed or self.in_doubt or self.not_undoable or self.not_attempted)
        )

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RollbackRecord:
        return _from_json(cls, doc)


_Record = TypeVar("_Record", SideEffect, SafePoint, Violation, RollbackRecord)


# The JSON types each annotation of the records above accepts (annotations are strings here).
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "str | None": (str, type(None)),
    "int": (int,),
    "int | None": (int, type(None)),
    "float": (int, float),
    "float | None": (int, float, type(None)),
    "bool": (bool,),
    "tuple[str, ...]": (tuple,),
    "Mapping[str, Any]": (Mapping,),
    "EffectStatus": (str,),
}


def _to_json(record: SideEffect | SafePoint | Violation | RollbackRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, enum.Enum):
            value = value.value
        out[f.name] = value
    return out


def _from_json(cls: type[_Record], doc: Mapping[str, Any]) -> _Record:
    if not isinstance(doc, Mapping):
        raise ValueError(f"a {cls.__name__} is a JSON object, found {doc!r}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in doc:
            continue  # a required one missing fails below; later versions may add fields
        value = doc[f.name]
        if isinstance(value, list):
            value = tuple(value)
        expected = _JSON_TYPES[str(f.type)]
        if not isinstance(value, expected):
            raise ValueError(
                f"{cls.__name__}.{f.name} must be {f.type}, found {type(value).__name__}"
            )
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed {cls.__name__} {dict(doc)!r}: {exc}") from exc


# -- compensations ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compensation:
    """How to undo one tool: ``undo(effect)``, and what to ``capture`` when it runs.

    ``idempotent`` promises that running ``undo`` twice for one effect does no more than
    running it once (deleting a file that may be gone, a refund keyed by ``effect.key``).
    Only idempotent undos are re-run after a crash left one half-done.
    """

    tool: str
    undo: Undo
    capture: Capture | None = None
    idempotent: bool = True

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.undo)

    def __repr__(self) -> str:
        name = getattr(self.undo, "__qualname__", repr(self.undo))
        flags = "" if self.idempotent else ", idempotent=False"
        return f"Compensation({self.tool!r}, undo={name}{flags})"


class Compensations:
    """The registry of undo actions, one per tool name.

    >>> compensations = Compensations()
    >>> @compensations.undo("send_email", idempotent=False)
    ... def recall(effect):
    ...     pass
    >>> "send_email" in compensations, "read_file" in compensations
    (True, False)
    >>> compensations
    Compensations(['send_email'])
    """

    def __init__(self) -> None:
        self._by_tool: dict[str, Compensation] = {}

    def register(
        self, tool: str, undo: Undo, *, capture: Capture | None = None, idempotent: bool = True
    ) -> Compensation:
        """Register ``undo`` for ``tool``; ``ValueError`` if the tool already has one."""
        if not isinstance(tool, str) or not tool:
            raise ValueError(f"tool must be a non-empty string, found {tool!r}")
        if not callable(undo):
            raise TypeError(f"the undo for {tool!r} must be callable, found {undo!r}")
        if capture is not None and not callable(capture):
            raise TypeError(f"the capture for {tool!r} must be callable, found {capture!r}")
        if tool in self._by_tool:
            raise ValueError(
                f"tool {tool!r} already has a compensation: {self._by_tool[tool]!r}; "
                "a tool has one undo, which may do several things"
            )
        compensation = Compensation(tool, undo, capture, idempotent)
        self._by_tool[tool] = compensation
        return compensation

    def undo(
        self, tool: str, *, capture: Capture | None = None, idempotent: bool = True
    ) -> Callable[[Callable[[SideEffect], Any]], Callable[[SideEffect], Any]]:
        """Decorator form of ``register``: ``@compensations.undo("send_email")``."""

        def decorate(undo: Callable[[SideEffect], Any]) -> Callable[[SideEffect], Any]:
            self.register(tool, undo, capture=capture, idempotent=idempotent)
            return undo

        return decorate

    def for_tool(self, tool: str) -> Compensation | None:
        """The compensation registered for ``tool``, or ``None``."""
        return self._by_tool.get(tool)

    def capture(self, tool: str, args: Mapping[str, Any], result: Any) -> dict[str, Any]:
        """What to record for a call of ``tool`` that returned ``result``.

        The tool's ``capture(args, result)`` if it has one, else ``{"args": args, "result":
        str(result)}`` (tools without a compensation are recorded too, so that a rollback can
        say it could not undo them). ``TypeError`` when the data is not JSON-serializable.
        """
        compensation = self._by_tool.get(tool)
        if compensation is None or compensation.capture is None:
            return {"args": _jsonable(args), "result": str(result)}
        try:
            data = compensation.capture(args, result)
        except Exception as exc:
            exc.add_note(f"while capturing undo data for tool {tool!r}")
            raise
        if not isinstance(data, Mapping):
            raise TypeError(
                f"capture for tool {tool!r} must return a mapping, found {type(data).__name__}"
            )
        return _checked_json(dict(data), f"undo data captured for tool {tool!r}")

    def __contains__(self, tool: object) -> bool:
        return tool in self._by_tool

    def __iter__(self) -> Iterator[Compensation]:
        return iter(self._by_tool.values())

    def __len__(self) -> int:
        return len(self._by_tool)

    def __repr__(self) -> str:
        return f"Compensations({sorted(self._by_tool)!r})"


def _jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data; what JSON cannot hold is kept as its ``repr``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return repr(value)


def _checked_json(data: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON-serializable: {exc}") from exc
    return data


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
    """

    thread_id: str
    after_checkpoint: str | None
    undone: tuple[SideEffect, ...] = ()
    failed: tuple[SideEffect, ...] = ()
    in_doubt: tuple[SideEffect, ...] = ()
    not_undoable: tuple[SideEffect, ...] = ()
    not_attempted: tuple[SideEffect, ...] = ()

    @property
    def ok(self) -> bool:
        """True only if everything selected is now undone."""
        return not (self.failed or self.in_doubt or self.not_undoable or self.not_attempted)

    @property
    def stopped(self) -> bool:
        """True when a failed or in-doubt effect stopped the undo before older effects."""
        return bool(self.failed or self.in_doubt)

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
        if not any(effects for _, effects, _ in sections):
            lines.append("  nothing to undo")
        for title, effects, detail in sections:
            if effects:
                lines.append(f"  {title} ({len(effects)}):")
                lines.extend(f"    {e.describe()}{detail(e)}" for e in effects)
        return "\n".join(lines)


# The undo protocol, written once as a generator that yields I/O requests; the sync and
# async drivers below carry them out. ``_Save`` writes an effect's entry; ``_Run`` calls a
# compensation and sends back the exception it raised (or ``None``).


@dataclass(frozen=True, slots=True)
class _Save:
    effect: SideEffect


@dataclass(frozen=True, slots=True)
class _Run:
    compensation: Compensation
    effect: SideEffect


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
) -> Generator[_Save | _Run, BaseException | None, UndoReport]:
    """Undo ``selected`` (newest first), exactly once per effect across crashes.

    Per effect: save ``undoing`` (attempts + 1), run the compensation, save ``undone``.
    A rerun that finds ``undoing`` runs an idempotent compensation again (same key) and
    marks a non-idempotent one ``in_doubt`` without running it. A failure or an effect in
    doubt stops the undo: newer effects can depend on older ones (a message that links to
    an uploaded file, money moved into an account the agent opened), so undoing an older
    effect while a newer one stands can do harm, and the next rollback resumes in order.
    An effect without a compensation cannot be helped by waiting, so it is reported, noted
    in its entry, and the undo goes on past it.
    """
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
    )


def undo_effects(
    journal: Journal,
    compensations: Compensations,
    thread_id: str,
    *,
    after_checkpoint: str | None,
) -> UndoReport:
    """Undo the thread's effects from ``after_checkpoint`` on (all if ``None``), newest first.

    Selected: effects not yet undone (``done``, ``failed``, ``undoing``, ``in_doubt``) whose
    step started from ``after_checkpoint`` or a later checkpoint (see ``at_or_after``).
    Each compensation runs at most once per effect unless a crash interrupted it, and then
    again only if it is idempotent. Exceptions from compensations are reported, not raised;
    ``KeyboardInterrupt`` and the like stop the undo where it is, and a rerun resumes it.
    ``RollbackError`` (before anything runs) if a selected effect's compensation is async:
    use ``aundo_effects``. A failing store raises ``StoreError``; rerun once it is back.

    Run one undo per thread at a time: the journal marks each effect ``undoing`` before its
    compensation runs, which tells a later run what a crash interrupted, but does not lock
    out a concurrent one (the ``Store`` has no compare-and-set).
    """
    selected = _select(journal.effects(thread_id), after_checkpoint)
    for effect in selected:
        compensation = compensations.for_tool(effect.tool)
        if compensation is not None and compensation.is_async:
            raise RollbackError(
                f"the compensation for tool {effect.tool!r} is async: "
                "undo with aundo_effects (or Recovery.arollback)"
            )
    protocol = _protocol(thread_id, after_checkpoint, selected, compensations, journal.clock)
    reply: BaseException | None = None
    try:
        while True:
            request = protocol.send(reply)
            reply = None
            if isinstance(request, _Save):
                journal.save_effect(request.effect)
            else:
                reply = _run_sync(request)
    except StopIteration as done:
        report: UndoReport = done.value
        return report


async def aundo_effects(
    journal: Journal,
    compensations: Compensations,
    thread_id: str,
    *,
    after_checkpoint: str | None,
) -> UndoReport:
    """``undo_effects`` for async code: awaits async compensations, calls sync ones as is."""
    selected = _select(await journal.aeffects(thread_id), after_checkpoint)
    protocol = _protocol(thread_id, after_checkpoint, selected, compensations, journal.clock)
    reply: BaseException | None = None
    try:
        while True:
            request = protocol.send(reply)
            reply = None
            if isinstance(request, _Save):
                await journal.asave_effect(request.effect)
            else:
                reply = await _run_async(request)
    except StopIteration as done:
        report: UndoReport = done.value
        return report


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
