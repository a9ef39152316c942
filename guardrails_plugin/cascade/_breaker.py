"""The circuit breaker: what happens when a cascade signal trips, kept in the Store."""

from __future__ import annotations

import itertools
import os
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .._decision import Decision, Effect
from ..controls import Controls, Flag, State
from ._signals import Alarm

Response = Literal["interrupt", "quarantine", "stop", "record"]
"""What the breaker does when a signal trips:

- ``"interrupt"``: pause the run for a person (the kill switch's pause on the thread: the
  tripping step waits in an ``interrupt()``; ``controls.resume(thread=...)`` and resuming
  the graph go on);
- ``"quarantine"``: isolate the alarm's culprit (``Controls.quarantine``: grants revoked,
  tool calls and hand-offs denied, hand-offs to it held) while the others go on;
- ``"stop"``: kill the run (``RunKilled``; the thread stays stopped until resumed);
- ``"record"``: only record the trip (tuning a new deployment: count false alarms first).
"""

RESPONSES: tuple[Response, ...] = get_args(Response)
TRIP_PREFIX = "cascade/trip/"
BREAKER = "cascade-breaker"
_STRENGTH: dict[str, int] = {"record": 0, "interrupt": 1, "quarantine": 2, "stop": 3}
_Op = tuple[str, tuple[Any, ...], dict[str, Any]]
_seq = itertools.count()


@dataclass(frozen=True, slots=True)
class Trip:
    """One recorded trip: the alarm, what the breaker did, when, in which run."""

    signal: str
    scope: str
    reason: str
    response: Response
    culprit: str
    agents: tuple[str, ...]
    at: float
    at_message: int
    thread_id: str | None = None
    evidence: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)
    key: str = field(default="", repr=False, compare=False)

    def describe(self) -> str:
        """One line for people: signal, scope, response, culprit and why."""
        return f"{self.signal} in {self.scope} -> {self.response} ({self.culprit}): {self.reason}"

    def to_doc(self) -> dict[str, Any]:
        """The trip as the JSON document kept in the store."""
        return {
            "signal": self.signal,
            "scope": self.scope,
            "reason": self.reason,
            "response": self.response,
            "culprit": self.culprit,
            "agents": list(self.agents),
            "at": self.at,
            "at_message": self.at_message,
            "thread_id": self.thread_id,
            "evidence": [dict(e) for e in self.evidence],
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], key: str = "") -> Trip:
        """Read a trip back from its store document (``key``: where it was found)."""
        response = doc.get("response")
        return cls(
            signal=str(doc.get("signal")),
            scope=str(doc.get("scope")),
            reason=str(doc.get("reason")),
            response=response if response in RESPONSES else "record",
            culprit=str(doc.get("culprit") or ""),
            agents=tuple(doc.get("agents") or ()),
            at=float(doc.get("at") or 0.0),
            at_message=int(doc.get("at_message") or 0),
            thread_id=doc.get("thread_id"),
            evidence=tuple(doc.get("evidence") or ()),
            key=key,
        )


class Breaker:
    """Acts on cascade alarms: ``respond`` maps a signal name to a :data:`Response`;
    signals not named get ``default``.

    Defaults: an infection (untrusted content passed on) or a replicating payload
    quarantines the agent passing it on (the others go on);
    everything else pauses the run for a person. Every trip is recorded in the Store
    (``cascade/trip/<scope>/...``, read with ``Guard.trips()``) before the breaker acts, and
    its actions are kill-switch flags in the same Store, so every process sharing it sees
    them and a person lifts them with ``controls.resume``.

    >>> Breaker({"storms": "stop"})
    Breaker(respond={'replication': 'quarantine', 'infection': 'quarantine', 'storms': 'stop'}, default='interrupt')
    """

    DEFAULTS: Mapping[str, Response] = {"replication": "quarantine", "infection": "quarantine"}

    def __init__(
        self, respond: Mapping[str, Response] | None = None, *, default: Response = "interrupt"
    ) -> None:
        merged = {**self.DEFAULTS, **(respond or {})}
        for name, r in [*merged.items(), ("default", default)]:
            if r not in RESPONSES:
                raise ValueError(
                    f"Breaker: the response for {name!r} must be one of {RESPONSES}, got {r!r}"
                )
        self.respond: dict[str, Response] = merged
        self.default: Response = default

    def __repr__(self) -> str:
        return f"Breaker(respond={self.respond!r}, default={self.default!r})"

    def response(self, signal: str) -> Response:
        """What the breaker does when ``signal`` fires."""
        return self.respond.get(signal, self.default)

    def flow(
        self,
        alarms: Sequence[Alarm],
        agent: str,
        thread_id: str | None,
        controls: Controls,
        now: float,
        trips: list[Trip] | None = None,
    ) -> Generator[_Op, Any, Decision | None]:
        """Record each alarm as a trip (also appended to ``trips``), act on the strongest;
        the decision for the step that tripped (None for ``record``)."""
        chosen: tuple[Alarm, Response] | None = None
        for alarm in alarms:
            response = self.response(alarm.signal)
            trip = Trip(
                signal=alarm.signal,
                scope=alarm.scope,
                reason=alarm.reason,
                response=response,
                culprit=alarm.culprit,
                agents=alarm.agents,
                at=now,
                at_message=alarm.at_message,
                thread_id=thread_id,
                evidence=tuple(alarm.to_doc()["evidence"]),
            )
            # time first (scans list them in order), then what keeps two processes apart
            key = (
                f"{TRIP_PREFIX}{alarm.scope}/{now:017.6f}-{os.getpid()}-{next(_seq):06d}-"
                f"{alarm.signal}"
            )
            yield ("put", (key, trip.to_doc()), {})
            if trips is not None:
                trips.append(trip)
            if chosen is None or _STRENGTH[response] > _STRENGTH[chosen[1]]:
                chosen = (alarm, response)
        if chosen is None or chosen[1] == "record":
            return None
        alarm, response = chosen
        rule, why = f"cascade:{alarm.signal}", alarm.reason
        if response == "quarantine":
            flag = Flag("agent", alarm.culprit, State.QUARANTINED, why, BREAKER, now)
            yield from controls.set_flow(flag)
            return Decision(
                Effect.DENY,
                rule,
                f"{alarm.reason}; agent {alarm.culprit!r} is quarantined until a person "
                "releases it",
                agent=agent,
                kind="cascade",
            )
        state = State.KILLED if response == "stop" else State.PAUSED
        if thread_id is not None:
            yield from controls.set_flow(Flag("thread", thread_id, state, why, BREAKER, now))
        if state is State.KILLED:
            return Decision(
                Effect.DENY,
                rule,
                f"{alarm.reason}; the run was stopped",
                agent=agent,
                kind="control",
            )
        return Decision(
            Effect.ASK,
            rule,
            f"{alarm.reason}; the run is paused for a person (lift the pause and resume)",
            agent=agent,
            kind="control",
        )


def trips_in(docs: Mapping[str, Any]) -> list[Trip]:
    """Trip documents (a scan of ``TRIP_PREFIX``) as trips, oldest first."""
    return sorted(
        (Trip.from_doc(d, k) for k, d in docs.items() if isinstance(d, Mapping)),
        key=lambda t: (t.at, t.key),
    )
