"""Escalation: an action denied to one agent, requested again through another."""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from .._events import ToolCall
from ._signals import Alarm, Evidence, Observed, Tracker, chain
from ._sketch import Sketcher


class Escalation:
    """Trip when a tool call the policy denied to agent A is made again, with the same or
    nearly the same arguments, by another agent B that A's messages reached after the
    denial (directly or through other agents): the confused deputy.

    The monitor feeds it both the messages between agents (who reached whom, and since
    when) and every decided tool call of the scope. Arguments match when their canonical
    JSON is equal, or, for texts of at least ``min_chars``, when their MinHash similarity
    is at least ``threshold`` (a reworded e-mail body still matches). Only calls the policy
    would let through report: a re-request the policy denies anyway escalated nothing.
    The culprit (the agent a quarantine isolates) is A, whose denied action came back.

    State per scope: the last ``memory`` denials per tool, and for each agent the agents
    whose messages reached it (at most ``memory`` each, most recent kept). Each message
    costs O(memory) at most; a call costs nothing unless its tool was denied before.
    """

    name = "escalation"

    def __init__(
        self,
        threshold: float = 0.8,
        *,
        memory: int = 64,
        min_chars: int = 24,
        sketcher: Sketcher | None = None,
    ) -> None:
        if not 0.0 < threshold <= 1.0 or memory < 1:
            raise ValueError(
                "Escalation: expected 0 < threshold <= 1 and memory >= 1, got "
                f"threshold={threshold}, memory={memory}"
            )
        self.threshold = threshold
        self.memory = memory
        self.min_chars = min_chars
        self.sketcher = sketcher or Sketcher()

    def __repr__(self) -> str:
        return f"Escalation(threshold={self.threshold}, memory={self.memory})"

    def track(self) -> Tracker:
        return _EscalationTracker(self)


@dataclass(slots=True)
class _Reach:
    since: int  # tick at which the origin's message left the origin
    evidence: tuple[Evidence, ...]  # first hop from the origin, ..., the hop into the agent


@dataclass(slots=True)
class _Denied:
    agent: str
    text: str
    tick: int
    sketch: Any = None


class _EscalationTracker:
    __slots__ = ("_denied", "_denied_agents", "_reached", "_signal", "_tick")

    def __init__(self, signal: Escalation) -> None:
        self._signal = signal
        self._tick = 0
        self._reached: dict[str, OrderedDict[str, _Reach]] = {}
        self._denied: dict[str, deque[_Denied]] = {}
        # Agents denied a call in this scope so far. Only their reach can ever matter: a
        # reach counts when it left its origin after the origin's denial (since > tick).
        self._denied_agents: set[str] = set()

    @property
    def name(self) -> str:
        return self._signal.name

    def observe(self, seen: Observed) -> Alarm | None:
        self._tick += 1
        denied = self._denied_agents
        if not denied:
            return None  # nothing denied in this scope yet: no reach can count
        m = seen.message
        into = self._reached.get(m.recipient)
        if into is None:
            into = self._reached[m.recipient] = OrderedDict()
        hop = (seen.evidence,)
        # What reached the sender now reaches the recipient too, since the same time.
        for origin, reach in list(self._reached.get(m.sender, {}).items()):
            if origin != m.recipient:
                self._put(into, origin, _Reach(reach.since, (reach.evidence[0], *hop)))
        for origin in (*m.path, m.sender):
            if origin != m.recipient and origin in denied:
                self._put(into, origin, _Reach(self._tick, hop))
        return None

    def _put(self, into: OrderedDict[str, _Reach], origin: str, reach: _Reach) -> None:
        into[origin] = reach
        into.move_to_end(origin)
        if len(into) > self._signal.memory:
            into.popitem(last=False)

    def observe_call(self, call: ToolCall, denied: bool, scope: str, index: int) -> Alarm | None:
        self._tick += 1
        signal = self._signal
        if denied:
            queue = self._denied.get(call.tool)
            if queue is None:
                queue = self._denied[call.tool] = deque(maxlen=signal.memory)
            queue.append(_Denied(call.agent, _canonical(call), self._tick))
            self._denied_agents.add(call.agent)
            return None
        queue = self._denied.get(call.tool)
        reached = self._reached.get(call.agent)
        if not queue or not reached:
            return None
        text = _canonical(call)
        sketch: Any = None
        for d in reversed(queue):
            if d.agent == call.agent:
                continue
            reach = reached.get(d.agent)
            if reach is None or reach.since <= d.tick:
                continue
            similarity = 1.0 if text == d.text else 0.0
            if similarity < signal.threshold and min(len(text), len(d.text)) >= signal.min_chars:
                if sketch is None:
                    sketch = signal.sketcher.sketch(text)
                if d.sketch is None:
                    d.sketch = signal.sketcher.sketch(d.text)
                similarity = float(sketch.jaccard(d.sketch))
            if similarity < signal.threshold:
                continue
            hops = [e.message.sender for e in reach.evidence] + [call.agent]
            route = chain(dict.fromkeys(hops))
            return Alarm(
                signal=self.name,
                scope=scope,
                agents=(d.agent, call.agent),
                reason=(
                    f"escalation: {call.tool!r} was denied to {d.agent}, and {call.agent} "
                    f"(reached by {d.agent}'s messages: {route}) now requests it "
                    f"{'with the same arguments' if similarity == 1.0 else f'with arguments {similarity:.0%} similar'}"
                    f"; possible confused deputy"
                ),
                evidence=reach.evidence,
                at_message=index,
                culprit=d.agent,
            )
        return None


def _canonical(call: ToolCall) -> str:
    try:
        return json.dumps(dict(call.args), sort_keys=True, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(sorted(call.args.items(), key=lambda kv: kv[0]))
