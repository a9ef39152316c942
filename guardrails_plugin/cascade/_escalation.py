"""Escalation: an action denied to one agent, requested again through another."""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._events import ToolCall
from ._facts import STRONG, facts
from ._signals import Alarm, Evidence, Observed, Tracker, chain
from ._sketch import Sketcher


class Escalation:
    """Trip when a tool call the policy denied to agent A is made again, with the same or
    nearly the same arguments, by another agent B that A's messages reached after the
    denial (directly or through other agents): the confused deputy.

    **At the request** (``requests=True``, the default), before any call: a message from B
    to C that names an action denied to B, or to an agent A whose messages reached B after
    the denial (the denied call's argument values: an address, a record id, an amount, a
    quoted value; or the tool's name), and C is not A, trips as it is sent: the request is
    held before C can act on it. (It also holds a report of the denial sent to an agent
    that could do it; a person reads it and resumes the run.)

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
        requests: bool = True,
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
        self.requests = requests
        self.sketcher = sketcher or Sketcher()

    def __repr__(self) -> str:
        return f"Escalation(threshold={self.threshold}, memory={self.memory})"

    def track(self) -> Tracker:
        """A fresh tracker of this signal's per-run state."""
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
    facts: frozenset[str] = frozenset()
    tool: str = ""


class _EscalationTracker:
    __slots__ = ("_by_agent", "_denied", "_denied_agents", "_reached", "_signal", "_tick")

    def __init__(self, signal: Escalation) -> None:
        self._signal = signal
        self._tick = 0
        self._reached: dict[str, OrderedDict[str, _Reach]] = {}
        self._denied: dict[str, deque[_Denied]] = {}
        # Agents denied a call in this scope so far. Only their reach can ever matter: a
        # reach counts when it left its origin after the origin's denial (since > tick).
        self._denied_agents: set[str] = set()
        self._by_agent: dict[str, deque[_Denied]] = {}

    @property
    def name(self) -> str:
        return self._signal.name

    @property
    def idle(self) -> bool:
        """No call denied in this scope yet: no reach can count, so the monitor feeds this
        tracker no message until a denial wakes it. (Its clock, ``_tick``, then misses the
        messages before the first denial: it only orders events, and every later event
        keeps its order.)"""
        return not self._denied_agents

    def observe(self, seen: Observed) -> Alarm | None:
        self._tick += 1
        denied = self._denied_agents
        if not denied:
            return None  # nothing denied in this scope yet: no reach can count
        m = seen.message
        alarm = self._request(seen) if self._signal.requests else None
        into = self._reached.get(m.recipient)
        if into is None:
            into = self._reached[m.recipient] = OrderedDict()
        hop = (seen.evidence,)
        # What reached the sender now reaches the recipient too, since the same time.
        for origin, reach in list(self._reached.get(m.sender, {}).items()):
            if origin != m.recipient:
                self._put(
                    into,
                    origin,
                    _Reach(reach.since, (*reach.evidence[:1], *reach.evidence[1:][-6:], *hop)),
                )
        for origin in (*m.path, m.sender):
            if origin != m.recipient and origin in denied:
                self._put(into, origin, _Reach(self._tick, hop))
        return alarm

    def _request(self, seen: Observed) -> Alarm | None:
        """The message asks its recipient for an action denied to its sender, or to an agent
        whose messages reached the sender after the denial: it names the denied call's
        values (an address, an id, an amount) or its tool."""
        m = seen.message
        reached: Mapping[str, _Reach] = self._reached.get(m.sender, {})
        origins = [(m.sender, _Reach(self._tick, ()))] if m.sender in self._by_agent else []
        origins += [(o, r) for o, r in reached.items() if o in self._by_agent]
        said: frozenset[str] | None = None
        for origin, reach in origins:
            if origin == m.recipient:
                continue
            for d in reversed(self._by_agent[origin]):
                if reach.since <= d.tick or not d.facts:
                    continue
                if said is None:
                    said = frozenset(f for f, w in seen.facts().items() if w >= STRONG)
                named = said & d.facts
                if not named:
                    continue
                links = (*reach.evidence, seen.evidence)
                hops = [e.message.sender for e in links] + [m.recipient]
                return Alarm(
                    signal=self.name,
                    scope=seen.scope,
                    agents=(origin, m.recipient),
                    reason=(
                        f"escalation: {d.tool!r} was denied to {origin}, and "
                        f"{chain(dict.fromkeys(hops))} now asks {m.recipient} for it (naming "
                        f"{', '.join(sorted(named)[:3])}); possible confused deputy, held "
                        "before it acts"
                    ),
                    evidence=links,
                    at_message=seen.index,
                    culprit=origin,
                )
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
            entry = _Denied(call.agent, _canonical(call), self._tick, None, _arg_facts(call))
            entry.tool = call.tool
            queue.append(entry)
            mine = self._by_agent.get(call.agent)
            if mine is None:
                mine = self._by_agent[call.agent] = deque(maxlen=signal.memory)
            mine.append(entry)
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


def _arg_facts(call: ToolCall) -> frozenset[str]:
    """What names a call in a message: the facts of its argument values (and each short
    value whole, as a quoted value), and the tool's name when it is an identifier."""
    found = {f for f, w in facts(call.tool).items() if w >= STRONG}
    for value in call.args.values():
        texts = value if isinstance(value, (list, tuple)) else (value,)
        for v in texts:
            if isinstance(v, bool) or v is None:
                continue
            text = str(v)
            found.update(f for f, w in facts(text).items() if w >= STRONG)
            if 2 <= len(text) <= 80:
                found.add('"' + " ".join(text.lower().split()) + '"')
    return frozenset(found)


def _canonical(call: ToolCall) -> str:
    try:
        return json.dumps(dict(call.args), sort_keys=True, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(sorted(call.args.items(), key=lambda kv: kv[0]))
