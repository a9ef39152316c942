"""The cascade monitor: every message between agents, through every signal, per scope."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .._events import AgentMessage, ToolCall, ToolResult
from ._cycles import Cycles
from ._depth import Depth
from ._escalation import Escalation
from ._infection import Infection
from ._signals import Alarm, Observed, Signal, Tracker
from ._storms import Storms


def default_signals() -> list[Signal]:
    """``Cycles()``, ``Storms()``, ``Infection()``, ``Escalation()``, ``Depth()`` with their
    defaults. (``Replication()``, whole-text near-duplicates forwarded three hops, is
    available but not a default: it trips on a trusted document relayed through three
    desks, and ``Infection`` catches what it was for, earlier.)"""
    return [Cycles(), Storms(), Infection(), Escalation(), Depth()]


_SEEN_IDS = 512


class _Scope:
    __slots__ = (
        "active",
        "call_trackers",
        "count",
        "deep",
        "hot",
        "kinds",
        "last",
        "paths",
        "result_trackers",
        "seen",
        "sleeping",
        "trackers",
    )

    def __init__(self, trackers: list[Tracker]) -> None:
        self.last = 0.0  # when it last saw a message or call (the monitor's clock)
        self.active = False  # an adapter that sees hand-offs themselves reported here
        self.count = 0
        self.trackers = trackers
        # recipient -> the last message to it (its chain is computed when asked for)
        self.paths: dict[str, AgentMessage] = {}
        self.call_trackers: list[Any] = [t for t in trackers if hasattr(t, "observe_call")]
        self.result_trackers: list[Any] = [t for t in trackers if hasattr(t, "observe_result")]
        # (tracker, has ``idle``, has ``deeper_than``): asked once, so that sorting reads
        # only the attributes a tracker has
        self.kinds: list[tuple[Any, bool, bool]] = [
            (t, hasattr(t, "idle"), hasattr(t, "deeper_than")) for t in trackers
        ]
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.hot: list[Tracker] = []  # trackers fed every message, in order
        self.deep = _NEVER  # a path longer than this needs the trackers gated on depth
        self.sleeping: list[Any] = []  # the idle trackers (sorted again when one wakes)
        self.sort()

    def sort(self) -> None:
        """Sort the trackers into those fed every message (``hot``), those fed only messages
        whose path is longer than their ``deeper_than``, and the ``idle`` ones, fed nothing
        until a call or result wakes them."""
        hot = []
        deep = _NEVER
        sleeping = []
        for tracker, sleeps, gated in self.kinds:
            if sleeps and tracker.idle:
                sleeping.append(tracker)
                continue
            gate = tracker.deeper_than if gated else None
            if gate is None:
                hot.append(tracker)
            elif gate < deep:
                deep = gate
        self.hot = hot
        self.deep = deep
        self.sleeping = sleeping

    def woke(self) -> None:
        """Sort again if a call or result woke an idle tracker (idle turns false only
        there, and stays false)."""
        for tracker in self.sleeping:
            if not tracker.idle:
                self.sort()
                return

    def deeper(self, depth: int) -> list[Tracker]:
        """The awake trackers, in order, that a message whose path holds ``depth`` agents
        goes to."""
        found = []
        for tracker, sleeps, gated in self.kinds:
            if sleeps and tracker.idle:
                continue
            gate = tracker.deeper_than if gated else None
            if gate is None or depth > gate:
                found.append(tracker)
        return found

    def first_time(self, key: str | None) -> bool:
        """False for a message or call id seen recently (a re-run task observing again)."""
        if key is None:
            return True
        if key in self.seen:
            return False
        self.seen[key] = None
        if len(self.seen) > _SEEN_IDS:
            self.seen.popitem(last=False)
        return True


_NEVER = 1 << 62


class CascadeMonitor:
    """Watch the messages agents send each other and raise an ``Alarm`` when a cascade
    starts: a loop, a storm, a payload replicating, a delegation chain too deep.

    State is per scope (``message.scope_key``: the thread, else the run), bounded per
    signal; the monitor keeps at most the ``max_scopes`` most recently active scopes and
    forgets a scope idle for ``idle`` seconds (least recently used first), so finished
    threads do not pile up in a long-running service (a busy scope holds a few hundred kB
    of sketches). Each message costs amortized O(1): no signal rescans
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

    Messages carry their causal ``parent`` and ``generation`` when the adapter knows them;
    signals read them when present and fall back to the order of messages when not.
    """

    def __init__(
        self,
        signals: Sequence[Signal] | None = None,
        *,
        ignore: Iterable[str] = (),
        max_scopes: int = 1_000,
        idle: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_scopes < 1:
            raise ValueError(f"CascadeMonitor: expected max_scopes >= 1, got {max_scopes}")
        if not idle > 0:
            raise ValueError(f"CascadeMonitor: expected idle > 0 seconds, got {idle}")
        self.idle = idle
        self.clock = clock
        self.signals: tuple[Signal, ...] = tuple(default_signals() if signals is None else signals)
        self.ignore = frozenset(ignore)
        """Agents whose messages (sent or received) are not watched: a health monitor
        exchanging verbose heartbeats with every agent, a logger. Their tool calls still
        are (escalation)."""
        self.max_scopes = max_scopes
        self._every_call = any(getattr(s, "every_call", False) for s in self.signals)
        # A signal that scores every call (``every_call``: ``baselines.Anomaly``) needs a scope
        # for every call; the others need one only where messages or denials were seen.
        self._scopes: OrderedDict[str, _Scope] = OrderedDict()
        self._oldest: _Scope | None = None  # the first scope of ``_scopes``
        self._newest: str | None = None  # the key of its last
        self._lock = threading.Lock()
        cls = type(self)
        # a subclass that overrides ``observe`` or ``observe_call`` (to record what it is fed,
        # say) and not ``observe_handoff`` is fed a hand-off through them, apart
        self._apart = cls.observe_handoff is CascadeMonitor.observe_handoff and (
            cls.observe is not CascadeMonitor.observe
            or cls.observe_call is not CascadeMonitor.observe_call
        )

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self.signals)
        return f"CascadeMonitor([{names}], scopes={len(self._scopes)})"

    def _scope(self, key: str, now: float) -> _Scope:
        scopes = self._scopes
        scope = scopes.get(key)
        if scope is None:
            scope = scopes[key] = _Scope([s.track() for s in self.signals])
            if len(scopes) > self.max_scopes:
                scopes.popitem(last=False)
                self._oldest = None
            self._newest = key
        elif key != self._newest:
            scopes.move_to_end(key)
            self._newest = key
            if scope is self._oldest:
                self._oldest = None
        scope.last = now
        # Forget runs gone quiet (least recently active first: amortized O(1)). A scope
        # holds a few hundred kB of sketches; finished threads must not pile up.
        oldest = self._oldest
        if oldest is not scope:
            if oldest is None:
                oldest = self._oldest = next(iter(scopes.values()))
            while oldest is not scope and not now - oldest.last <= self.idle:
                scopes.popitem(last=False)
                oldest = self._oldest = next(iter(scopes.values()))
        return scope

    def observe_call(self, call: ToolCall, *, denied: bool) -> list[Alarm]:
        """Feed one decided tool call (``denied``: the policy refused it); return the alarms
        it trips. Only signals that watch calls (``Escalation``, and a signal with
        ``every_call`` set, which sees every call, not only those of scopes with messages
        or denials) see it; a call id seen before (a re-run task) counts once."""
        with self._lock:
            return self._call(call, denied, call.scope_key)

    def _call(self, call: ToolCall, denied: bool, key: str) -> list[Alarm]:
        """``observe_call``'s work, the lock held."""
        if denied or self._every_call:
            scope: _Scope | None = self._scope(key, self.clock())
        else:
            scope = self._scopes.get(key)
        if scope is None or not scope.call_trackers:
            return []
        scope.last = self.clock()
        if call.call_id is not None and not scope.first_time("call:" + call.call_id):
            return []
        alarms = []
        index = max(scope.count - 1, 0)
        for tracker in scope.call_trackers:
            alarm = tracker.observe_call(call, denied, key, index)
            if alarm is not None:
                alarms.append(alarm)
        if scope.sleeping:
            scope.woke()
        return alarms

    def observe_handoff(self, call: ToolCall) -> tuple[list[Alarm], list[Alarm] | None]:
        """Feed a permitted call that hands a message on (``call.message``, a hand-off):
        ``observe_call(call, denied=False)``, then, unless that tripped,
        ``observe(call.message)``, with one lock and one look-up of the scope. Returns the
        call's alarms and the message's; the message's are None when the call tripped (the
        message is then not fed: the caller acts on the call's alarms first, and feeds the
        message with ``observe`` if the hand-off still goes ahead). A subclass that
        overrides ``observe`` or ``observe_call``, and not this, is fed through them."""
        message = call.message
        if message is None:
            raise ValueError("CascadeMonitor.observe_handoff: the call carries no message")
        if self._apart:
            alarms = self.observe_call(call, denied=False)
            return (alarms, None) if alarms else (alarms, self.observe(message))
        key = call.scope_key
        with self._lock:
            alarms = self._call(call, False, key)
            if alarms:
                return alarms, None
            ignore = self.ignore
            if ignore and (message.sender in ignore or message.recipient in ignore):
                return alarms, []
            return alarms, self._message(message, message.thread_id or message.run_id or "-")

    def observe_result(self, result: ToolResult, *, untrusted: bool) -> None:
        """Feed one tool result (``untrusted``: its tool is a data-flow source of the
        policy). Signals that watch results see it: ``Cycles`` (a result with new facts is
        news its agent brings), ``Infection`` (untrusted content to look for in messages).
        A result of an agent in ``ignore`` is not watched."""
        if result.agent in self.ignore:
            return
        key = result.scope_key
        with self._lock:
            scope = self._scope(key, self.clock())
            if not scope.result_trackers:
                return
            seen = Observed(
                AgentMessage(result.agent, result.agent, result.content, thread_id=key),
                max(scope.count - 1, 0),
                key,
            )
            for tracker in scope.result_trackers:
                tracker.observe_result(result, untrusted, seen)
            if scope.sleeping:
                scope.woke()

    def provenance(self, scope: str, agent: str) -> tuple[str, ...]:
        """The delegation chain that led to ``agent`` in ``scope``, as the messages seen so
        far tell it: the ``path`` for a message ``agent`` sends now. Handing work back to an
        agent already on the chain returns to it (the chain shortens), so a supervisor
        dispatching to workers in turn stays at depth 1 however long it runs."""
        with self._lock:
            scope_ = self._scopes.get(scope)
            message = None if scope_ is None else scope_.paths.get(agent)
        if message is None:
            return ()
        # its path and sender, cut where the recipient was on it (an immutable message:
        # read without the lock)
        chain = (*message.path, message.sender)
        recipient = message.recipient
        return chain[: chain.index(recipient)] if recipient in chain else chain

    def observe(self, message: AgentMessage) -> list[Alarm]:
        """Feed one message; return the alarms it trips (usually none). A message whose
        ``id`` was seen recently in its scope (a re-run task) is not counted again."""
        ignore = self.ignore
        if ignore and (message.sender in ignore or message.recipient in ignore):
            return []
        with self._lock:
            return self._message(message, message.thread_id or message.run_id or "-")

    def _message(self, message: AgentMessage, key: str) -> list[Alarm]:
        """``observe``'s work, the lock held (``key``: ``message.scope_key``)."""
        scope = self._scope(key, self.clock())
        if message.passive:
            if scope.active:
                return []
        else:
            scope.active = True
        mid = message.id
        if mid is not None:  # scope.first_time(mid), inlined
            seen_ids = scope.seen
            if mid in seen_ids:
                return []
            seen_ids[mid] = None
            if len(seen_ids) > _SEEN_IDS:
                seen_ids.popitem(last=False)
        seen = Observed(message, scope.count, key)
        scope.count += 1
        recipient = message.recipient
        paths = scope.paths
        if len(paths) > _SEEN_IDS and recipient not in paths:
            paths.pop(next(iter(paths)))
        paths[recipient] = message
        trackers = scope.hot
        if len(message.path) > scope.deep:
            trackers = scope.deeper(len(message.path))
        alarms = []
        for tracker in trackers:
            alarm = tracker.observe(seen)
            if alarm is not None:
                alarms.append(alarm)
        return alarms

    def reset(self, scope: str) -> None:
        """Forget a scope (after a person cleared its alarm, or when its run ends)."""
        with self._lock:
            self._scopes.pop(scope, None)
            self._oldest = None
            if scope == self._newest:
                self._newest = None

    def scopes(self) -> list[str]:
        """The scopes currently tracked, least recently active first."""
        with self._lock:
            return list(self._scopes)
