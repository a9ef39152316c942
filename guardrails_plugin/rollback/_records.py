"""The journal's records: side effects, safe points, violations, rollbacks."""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeAlias, TypeVar

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
        """The safe point as a JSON document (kept in the journal)."""
        return _to_json(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SafePoint:
        """Read a safe point back from its journal document."""
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
        """The violation as a JSON document (kept in the journal)."""
        return _to_json(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Violation:
        """Read a violation back from its journal document."""
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
        """Whether the rollback finished: state restored and every undo done."""
        return (
            self.restored
            and self.problem is None
            and not (self.failed or self.in_doubt or self.not_undoable or self.not_attempted)
        )

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON document (kept in the journal)."""
        return _to_json(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RollbackRecord:
        """Read a rollback record back from its journal document."""
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
