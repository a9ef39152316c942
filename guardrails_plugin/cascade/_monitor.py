"""The cascade monitor: every message between agents, through every signal, per scope."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from .._events import AgentMessage
from ._cycles import Cycles
from ._depth import Depth
from ._replication import Replication
from ._signals import Alarm, Observed, Signal, Tracker
from ._storms import Storms


def default_signals() -> list[Signal]:
    """``Cycles()``, ``Storms()``, ``Replication()``, ``Depth()`` with their defaults.

    Cycles and Replication share one sketch per message (same ``num_perm`` and shingle)."""
    return [Cycles(), Storms(), Replication(), Depth()]


class _Scope:
    __slots__ = ("count", "trackers")

    def __init__(self, trackers: list[Tracker]) -> None:
        self.count = 0
        self.trackers = trackers


class CascadeMonitor:
    """Watch the messages agents send each other and raise an ``Alarm`` when a cascade
    starts: a loop, a storm, a payload replicating, a delegation chain too deep.

    State is per scope (``message.scope_key``: the thread, else the run), bounded per
    signal, and the monitor keeps the ``max_scopes`` most recently active scopes (least
    recently used are forgotten). Each message costs amortized O(1): no signal rescans
    history. Pure and in-process, with no I/O, so async code calls ``observe`` directly;
    thread-safe (one lock).

    The monitor only detects. Acting on an alarm (interrupt for a person, quarantine an
    agent, stop the run) is the circuit breaker's job, whose state is to live in the guard's
    ``Store`` so that every process sees a trip; the monitor's own state is a detector's
    short memory and is not shared.

    >>> monitor = CascadeMonitor()
    >>> text = "Please double-check the totals in the attached invoice before we pay it. "
    >>> alarms = []
    >>> for i in range(6):
    ...     sender, recipient = ("checker", "payer") if i % 2 else ("payer", "checker")
    ...     alarms += monitor.observe(AgentMessage(sender, recipient, text, thread_id="t"))
    >>> [(a.signal, a.at_message, a.agents) for a in alarms]
    [('cycles', 5, ('payer', 'checker'))]
    """

    def __init__(self, signals: Sequence[Signal] | None = None, *, max_scopes: int = 10_000):
        if max_scopes < 1:
            raise ValueError(f"CascadeMonitor: expected max_scopes >= 1, got {max_scopes}")
        self.signals: tuple[Signal, ...] = tuple(default_signals() if signals is None else signals)
        self.max_scopes = max_scopes
        self._scopes: OrderedDict[str, _Scope] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, message: AgentMessage) -> list[Alarm]:
        """Feed one message; return the alarms it trips (usually none)."""
        key = message.scope_key
        with self._lock:
            scope = self._scopes.get(key)
            if scope is None:
                scope = self._scopes[key] = _Scope([s.track() for s in self.signals])
                if len(self._scopes) > self.max_scopes:
                    self._scopes.popitem(last=False)
            else:
                self._scopes.move_to_end(key)
            seen = Observed(message, scope.count, key)
            scope.count += 1
            alarms = []
            for tracker in scope.trackers:
                alarm = tracker.observe(seen)
                if alarm is not None:
                    alarms.append(alarm)
            return alarms

    def reset(self, scope: str) -> None:
        """Forget a scope (after a person cleared its alarm, or when its run ends)."""
        with self._lock:
            self._scopes.pop(scope, None)

    def scopes(self) -> list[str]:
        """The scopes currently tracked, least recently active first."""
        with self._lock:
            return list(self._scopes)
