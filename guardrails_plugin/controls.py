"""The kill switch: pause, resume and kill one thread, one agent, or everything.

Flags live in the Store, so an operator in another process (a CLI, a dashboard, a worker
supervisor) sets them and every guard sharing that store sees them at its next guarded step::

    from guardrails_plugin import Controls, SQLiteStore

    controls = Controls(SQLiteStore("guard.db"))
    controls.pause(thread="ticket-42", reason="looks like a loop", by="alice")
    controls.kill(agent="researcher")
    controls.kill()                        # everything
    controls.resume(thread="ticket-42")    # lifts a pause or a kill at that level

A ``Guard`` checks the flags before every guarded model and tool call (one counter read per
check; the flags themselves are re-read only when the counter moves). A kill denies with
``RunKilled``; a pause stops the step — inside a LangGraph graph through ``interrupt()``,
resumable once the flag is lifted; elsewhere with ``RunPaused``.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._decision import Decision, Effect
from ._errors import GuardrailsError
from .store import Store

CONTROL_PREFIX = "control/flag/"
CONTROL_EPOCH = "control/epoch"

Level = Literal["global", "agent", "thread"]
_LEVELS: tuple[Level, ...] = ("thread", "agent", "global")

_Op = tuple[str, tuple[Any, ...], dict[str, Any]]


class State(enum.StrEnum):
    PAUSED = "paused"
    KILLED = "killed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Flag:
    """A pause or kill set by an operator on one thread, one agent, or globally."""

    level: Level
    target: str
    state: State
    reason: str = ""
    by: str = ""
    at: float = 0.0

    @property
    def key(self) -> str:
        return _key(self.level, self.target)

    def describe(self) -> str:
        where = "everything" if self.level == "global" else f"{self.level} {self.target!r}"
        who = f" by {self.by}" if self.by else ""
        why = f": {self.reason}" if self.reason else ""
        return f"{where} {self.state}{who}{why}"

    def to_doc(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "target": self.target,
            "state": str(self.state),
            "reason": self.reason,
            "by": self.by,
            "at": self.at,
        }

    @classmethod
    def from_doc(cls, doc: Any) -> Flag:
        if not isinstance(doc, Mapping) or doc.get("level") not in _LEVELS:
            raise GuardrailsError(f"unreadable control flag in the store: {doc!r}")
        return cls(
            level=doc["level"],
            target=str(doc.get("target", "")),
            state=State(str(doc.get("state"))),
            reason=str(doc.get("reason") or ""),
            by=str(doc.get("by") or ""),
            at=float(doc.get("at") or 0.0),
        )


def _key(level: Level, target: str) -> str:
    return f"{CONTROL_PREFIX}{level}/{target}"


def _target(thread: str | None, agent: str | None) -> tuple[Level, str]:
    if thread is not None and agent is not None:
        raise ValueError("pass thread= or agent= (or neither, for everything), not both")
    for name, value in (("thread", thread), ("agent", agent)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{name} must be a non-empty string, found {value!r}")
    if thread is not None:
        return "thread", thread
    if agent is not None:
        return "agent", agent
    return "global", "*"


class Controls:
    """Operator flags in a Store: ``pause``, ``kill``, ``resume``, ``flags``; async twins.

    ``Guard(...).controls`` is the guard's own; ``Controls(store)`` alone works for an operator
    process that has no policy.
    """

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._epoch: float | None = None
        self._flags: dict[tuple[Level, str], Flag] = {}

    def __repr__(self) -> str:
        return f"Controls({self.store!r})"

    # -- operator verbs ------------------------------------------------------------------

    def pause(
        self, *, thread: str | None = None, agent: str | None = None, reason: str = "", by: str = ""
    ) -> Flag:
        """Stop at the next guarded step of ``thread`` / ``agent`` / everything, resumably."""
        return self._set(State.PAUSED, thread, agent, reason, by)

    def kill(
        self, *, thread: str | None = None, agent: str | None = None, reason: str = "", by: str = ""
    ) -> Flag:
        """End the run at its next guarded step with ``RunKilled``; stays until ``resume``."""
        return self._set(State.KILLED, thread, agent, reason, by)

    def resume(self, *, thread: str | None = None, agent: str | None = None) -> bool:
        """Lift the pause or kill set at exactly this level; True if there was one."""
        level, target = _target(thread, agent)
        removed = self.store.delete(_key(level, target))
        self.store.charge(CONTROL_EPOCH, 1, math.inf)
        return removed

    def flags(self) -> list[Flag]:
        """Every flag in force, oldest first."""
        return sorted(
            (Flag.from_doc(d) for d in self.store.scan(CONTROL_PREFIX).values()),
            key=lambda f: f.at,
        )

    async def apause(
        self, *, thread: str | None = None, agent: str | None = None, reason: str = "", by: str = ""
    ) -> Flag:
        return await self._aset(State.PAUSED, thread, agent, reason, by)

    async def akill(
        self, *, thread: str | None = None, agent: str | None = None, reason: str = "", by: str = ""
    ) -> Flag:
        return await self._aset(State.KILLED, thread, agent, reason, by)

    async def aresume(self, *, thread: str | None = None, agent: str | None = None) -> bool:
        level, target = _target(thread, agent)
        removed = await self.store.adelete(_key(level, target))
        await self.store.acharge(CONTROL_EPOCH, 1, math.inf)
        return removed

    async def aflags(self) -> list[Flag]:
        docs = await self.store.ascan(CONTROL_PREFIX)
        return sorted((Flag.from_doc(d) for d in docs.values()), key=lambda f: f.at)

    def _flag(
        self, state: State, thread: str | None, agent: str | None, reason: str, by: str
    ) -> Flag:
        level, target = _target(thread, agent)
        return Flag(level, target, state, reason=reason, by=by, at=self.clock())

    def _set(
        self, state: State, thread: str | None, agent: str | None, reason: str, by: str
    ) -> Flag:
        flag = self._flag(state, thread, agent, reason, by)
        self.store.put(flag.key, flag.to_doc())
        self.store.charge(CONTROL_EPOCH, 1, math.inf)
        return flag

    async def _aset(
        self, state: State, thread: str | None, agent: str | None, reason: str, by: str
    ) -> Flag:
        flag = self._flag(state, thread, agent, reason, by)
        await self.store.aput(flag.key, flag.to_doc())
        await self.store.acharge(CONTROL_EPOCH, 1, math.inf)
        return flag

    # -- the check (a sans-IO flow the Guard drives) -------------------------------------

    def flow(self, agent: str, thread_id: str | None) -> Generator[_Op, Any, Decision | None]:
        """The flag that stops a step of ``agent`` on ``thread_id`` as a decision, or None.

        One counter read per step; flags are re-read only when an operator changed them.
        """
        epoch = yield ("total", (CONTROL_EPOCH,), {})
        if epoch != self._epoch:
            docs = yield ("scan", (CONTROL_PREFIX,), {})
            try:
                flags = [Flag.from_doc(d) for d in docs.values()]
            except (GuardrailsError, ValueError, TypeError) as exc:
                return Decision(
                    Effect.DENY,
                    "store-error",
                    f"fail closed: unreadable kill-switch flags: {exc}",
                    agent=agent,
                    kind="guard",
                )
            self._flags = {(f.level, f.target): f for f in flags}
            self._epoch = epoch
        if not self._flags:
            return None
        found = [
            f
            for f in (
                self._flags.get(("thread", thread_id)) if thread_id else None,
                self._flags.get(("agent", agent)),
                self._flags.get(("global", "*")),
            )
            if f is not None
        ]
        if not found:
            return None
        flag = next((f for f in found if f.state is State.KILLED), found[0])
        return control_decision(flag, agent)


def control_decision(flag: Flag, agent: str) -> Decision:
    """A kill is a deny; a pause is an ``ask`` only an operator's ``resume`` answers."""
    if flag.state is State.KILLED:
        return Decision(
            Effect.DENY,
            "kill-switch",
            f"killed by an operator ({flag.describe()})",
            agent=agent,
            kind="control",
        )
    return Decision(
        Effect.ASK,
        "pause",
        f"paused by an operator ({flag.describe()}); lift the pause and resume the run",
        agent=agent,
        kind="control",
    )
