"""The kill switch: pause, resume and kill one thread, one agent, or everything.

Flags live in the Store, so an operator in another process (a CLI, a dashboard, a worker
supervisor) sets them and every guard sharing that store sees them at its next guarded step::

    from guardrails_plugin import Controls, SQLiteStore

    controls = Controls(SQLiteStore("guard.db"))
    controls.pause(thread="ticket-42", reason="looks like a loop", by="alice")
    controls.kill(agent="researcher")
    controls.kill()                        # everything
    controls.resume(thread="ticket-42")    # lifts a pause or a kill at that level
    controls.quarantine(agent="scraper", reason="spreading an injected instruction")
    controls.resume(agent="scraper")       # lifts it and gives its grants back

A ``Guard`` checks the flags before every guarded model and tool call (one counter read per
check; the flags themselves are re-read only when the counter moves). A kill denies with
``RunKilled``; a pause stops the step — inside a LangGraph graph through ``interrupt()``,
resumable once the flag is lifted; elsewhere with ``RunPaused``.

A quarantine isolates one agent while the others go on: its run-time grants are revoked
(kept in the flag, given back by ``resume``), its tool calls and hand-offs are denied, and
hand-offs to it are held. The cascade breaker sets these flags when it trips.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ._decision import Decision, Effect
from ._errors import GuardrailsError
from ._grants import EPOCH_KEY, GRANT_PREFIX
from .store import Store

if TYPE_CHECKING:
    from .audit import AuditLog

CONTROL_PREFIX = "control/flag/"
CONTROL_EPOCH = "control/epoch"

Level = Literal["global", "agent", "thread"]
_LEVELS: tuple[Level, ...] = ("thread", "agent", "global")

_Op = tuple[str, tuple[Any, ...], dict[str, Any]]
_T = TypeVar("_T")


class State(enum.StrEnum):
    PAUSED = "paused"
    KILLED = "killed"
    QUARANTINED = "quarantined"

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
    grants: Mapping[str, Any] | None = None
    """For a quarantine: the grant documents it revoked, given back by ``resume``."""

    @property
    def key(self) -> str:
        """The store key the flag lives under."""
        return _key(self.level, self.target)

    def describe(self) -> str:
        """One line for people: what is paused or killed, by whom, why."""
        where = "everything" if self.level == "global" else f"{self.level} {self.target!r}"
        who = f" by {self.by}" if self.by else ""
        why = f": {self.reason}" if self.reason else ""
        return f"{where} {self.state}{who}{why}"

    def to_doc(self) -> dict[str, Any]:
        """The flag as the JSON document kept in the store."""
        return {
            "level": self.level,
            "target": self.target,
            "state": str(self.state),
            "reason": self.reason,
            "by": self.by,
            "at": self.at,
            "grants": None if self.grants is None else dict(self.grants),
        }

    @classmethod
    def from_doc(cls, doc: Any) -> Flag:
        """Read a flag back from the store (``GuardrailsError`` for a document it is not)."""
        if not isinstance(doc, Mapping) or doc.get("level") not in _LEVELS:
            raise GuardrailsError(f"unreadable control flag in the store: {doc!r}")
        return cls(
            level=doc["level"],
            target=str(doc.get("target", "")),
            state=State(str(doc.get("state"))),
            reason=str(doc.get("reason") or ""),
            by=str(doc.get("by") or ""),
            at=float(doc.get("at") or 0.0),
            grants=doc.get("grants"),
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
    process that has no policy. With ``audit``, each operator action (pause, kill,
    quarantine, resume) is recorded, ``by`` as the approver.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        audit: AuditLog | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.audit = audit
        self._epoch: float | None = None
        self._flags: dict[tuple[Level, str], Flag] = {}

    def __repr__(self) -> str:
        return f"Controls({self.store!r})"

    # -- operator verbs ------------------------------------------------------------------

    def pause(
        self, *, thread: str | None = None, agent: str | None = None, reason: str = "", by: str = ""
    ) -> Flag:
        """Stop at the next guarded step of ``thread`` / ``agent`` / everything, resumably."""
        return self._done(
            self._run(self.set_flow(self._flag(State.PAUSED, thread, agent, reason, by)))
        )

    def kill(
        self, *, thread: str | None = None, agent: str | None = None, reason: str = "", by: str = ""
    ) -> Flag:
        """End the run at its next guarded step with ``RunKilled``; stays until ``resume``."""
        return self._done(
            self._run(self.set_flow(self._flag(State.KILLED, thread, agent, reason, by)))
        )

    def quarantine(self, agent: str, *, reason: str = "", by: str = "") -> Flag:
        """Isolate ``agent``: revoke its grants, deny its tool calls and hand-offs, hold
        hand-offs to it. The other agents go on. ``resume(agent=...)`` lifts it."""
        flag = self._flag(State.QUARANTINED, None, agent, reason, by)
        return self._done(self._run(self.set_flow(flag)))

    def resume(self, *, thread: str | None = None, agent: str | None = None, by: str = "") -> bool:
        """Lift the pause, kill or quarantine set at exactly this level; True if there was
        one. Grants a quarantine revoked are given back."""
        level, target = _target(thread, agent)
        lifted = self._run(self.resume_flow(level, target))
        self._resumed(level, target, lifted, by)
        return lifted

    def flags(self) -> list[Flag]:
        """Every flag in force, oldest first."""
        return _sorted(self.store.scan(CONTROL_PREFIX))

    async def apause(
        self, *, thread: str | None = None, agent: str | None = None, reason: str = "", by: str = ""
    ) -> Flag:
        flag = self._flag(State.PAUSED, thread, agent, reason, by)
        return await self._adone(await self._arun(self.set_flow(flag)))

    async def akill(
        self, *, thread: str | None = None, agent: str | None = None, reason: str = "", by: str = ""
    ) -> Flag:
        flag = self._flag(State.KILLED, thread, agent, reason, by)
        return await self._adone(await self._arun(self.set_flow(flag)))

    async def aquarantine(self, agent: str, *, reason: str = "", by: str = "") -> Flag:
        flag = self._flag(State.QUARANTINED, None, agent, reason, by)
        return await self._adone(await self._arun(self.set_flow(flag)))

    async def aresume(
        self, *, thread: str | None = None, agent: str | None = None, by: str = ""
    ) -> bool:
        level, target = _target(thread, agent)
        lifted = await self._arun(self.resume_flow(level, target))
        await self._aresumed(level, target, lifted, by)
        return lifted

    # -- the record of operator actions ----------------------------------------------------

    def _done(self, flag: Flag) -> Flag:
        if self.audit is not None:
            action = {State.PAUSED: "pause", State.KILLED: "kill"}.get(flag.state, "quarantine")
            self._record(action, flag.level, flag.target, flag.reason, flag.by, flag.grants)
        return flag

    async def _adone(self, flag: Flag) -> Flag:
        if self.audit is None:
            return flag
        return await asyncio.to_thread(self._done, flag)  # the append off the event loop

    async def _aresumed(self, level: Level, target: str, lifted: bool, by: str) -> None:
        if self.audit is not None:
            await asyncio.to_thread(self._resumed, level, target, lifted, by)

    def _resumed(self, level: Level, target: str, lifted: bool, by: str) -> None:
        if self.audit is not None:
            outcome = "resume" if lifted else "resume-nothing"
            self._record(outcome, level, target, "", by, None)

    def _record(
        self,
        action: str,
        level: Level,
        target: str,
        reason: str,
        by: str,
        grants: Mapping[str, Any] | None,
    ) -> None:
        assert self.audit is not None
        detail: dict[str, Any] = {"level": level, "target": target}
        if grants:
            detail["grants_revoked"] = sorted(grants)
        try:
            self.audit.append(
                "control",
                outcome=action,
                agent=target if level == "agent" else None,
                thread_id=target if level == "thread" else None,
                reason=reason,
                approver=by or None,
                detail=detail,
            )
        except Exception as exc:
            where = "everything" if level == "global" else f"{level} {target!r}"
            raise GuardrailsError(
                f"the {action} of {where} is in force, but the audit log could not record it "
                f"({type(exc).__name__}: {exc}); record it by hand or retry once the log works"
            ) from exc

    async def aflags(self) -> list[Flag]:
        return _sorted(await self.store.ascan(CONTROL_PREFIX))

    def _flag(
        self, state: State, thread: str | None, agent: str | None, reason: str, by: str
    ) -> Flag:
        level, target = _target(thread, agent)
        return Flag(level, target, state, reason=reason, by=by, at=self.clock())

    # -- flows (store I/O yielded; the Guard's cascade breaker drives them too) ---------------

    def set_flow(self, flag: Flag) -> Generator[_Op, Any, Flag]:
        """Store ``flag``; a quarantine first takes the agent's grants away (kept in it)."""
        if flag.state is State.QUARANTINED:
            old = yield ("get", (flag.key,), {})
            revoked: dict[str, Any] = {}
            if isinstance(old, Mapping) and isinstance(old.get("grants"), Mapping):
                revoked.update(old["grants"])  # quarantined again: keep what was taken
            docs = yield ("scan", (GRANT_PREFIX,), {})
            for key, doc in docs.items():
                if isinstance(doc, Mapping) and doc.get("agent") == flag.target:
                    revoked[key] = doc
                    yield ("delete", (key,), {})
            flag = Flag(flag.level, flag.target, flag.state, flag.reason, flag.by, flag.at, revoked)
            if revoked:
                yield ("charge", (EPOCH_KEY, 1, math.inf), {})
        yield ("put", (flag.key, flag.to_doc()), {})
        yield ("charge", (CONTROL_EPOCH, 1, math.inf), {})
        return flag

    def resume_flow(self, level: Level, target: str) -> Generator[_Op, Any, bool]:
        """The sans-IO flow behind ``resume``: lift the flag at ``level``/``target`` (giving back
        what a quarantine took); returns whether there was one."""
        key = _key(level, target)
        old = yield ("get", (key,), {})
        grants = old.get("grants") if isinstance(old, Mapping) else None
        if isinstance(grants, Mapping) and grants:
            for gkey, doc in grants.items():
                yield ("put", (gkey, doc), {})
            yield ("charge", (EPOCH_KEY, 1, math.inf), {})
        removed = yield ("delete", (key,), {})
        yield ("charge", (CONTROL_EPOCH, 1, math.inf), {})
        return bool(removed)

    def _run(self, flow: Generator[_Op, Any, _T]) -> _T:
        store = self.store
        try:
            op = next(flow)
            while True:
                name, args, kwargs = op
                op = flow.send(getattr(store, name)(*args, **kwargs))
        except StopIteration as stop:
            value: _T = stop.value
            return value

    async def _arun(self, flow: Generator[_Op, Any, _T]) -> _T:
        store = self.store
        try:
            op = next(flow)
            while True:
                name, args, kwargs = op
                op = flow.send(await getattr(store, "a" + name)(*args, **kwargs))
        except StopIteration as stop:
            value: _T = stop.value
            return value

    # -- the check (a sans-IO flow the Guard drives) -------------------------------------

    def flow(
        self, agent: str, thread_id: str | None, *, tools: bool = True
    ) -> Generator[_Op, Any, Decision | None]:
        """The flag that stops a step of ``agent`` on ``thread_id`` as a decision, or None.
        ``tools``: the step is a tool call or hand-off (a quarantine denies those; it lets
        the agent's model answer, so the agent can say it is stopped).

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
        if not tools:
            found = [f for f in found if f.state is not State.QUARANTINED]
        if not found:
            return None
        flag = min(found, key=lambda f: _SEVERITY[f.state])
        return control_decision(flag, agent)

    def quarantined(self, agent: str) -> Flag | None:
        """The quarantine of ``agent`` as of the last ``flow`` (no store read)."""
        flag = self._flags.get(("agent", agent))
        return flag if flag is not None and flag.state is State.QUARANTINED else None


_SEVERITY = {State.KILLED: 0, State.PAUSED: 1, State.QUARANTINED: 2}


def _sorted(docs: Mapping[str, Any]) -> list[Flag]:
    return sorted((Flag.from_doc(d) for d in docs.values()), key=lambda f: f.at)


def control_decision(flag: Flag, agent: str) -> Decision:
    """A kill is a deny; a pause is an ``ask`` only an operator's ``resume`` answers; a
    quarantine denies the agent's tool calls and hand-offs (kind ``"cascade"``: the model
    reads why, the run goes on)."""
    if flag.state is State.QUARANTINED:
        return Decision(
            Effect.DENY,
            "quarantine",
            f"agent {flag.target!r} is quarantined ({flag.describe()}); a person must release it",
            agent=agent,
            kind="cascade",
        )
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
        f"paused by {'an operator' if flag.by != 'cascade-breaker' else 'the cascade breaker'} "
        f"({flag.describe()}); lift the pause and resume the run",
        agent=agent,
        kind="control",
    )
