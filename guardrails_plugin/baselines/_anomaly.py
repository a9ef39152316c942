"""The anomaly signal: each tool call scored against its agent's baseline, as a cascade signal.

``Anomaly(baseline)`` is a ``cascade.Signal`` whose per-scope tracker watches every tool
call of the scope (``every_call``), so that ``CascadeMonitor([..., Anomaly(baseline)])``
feeds it and the guard's ``Breaker`` acts on its alarms like on any cascade signal: the
same trip documents and ``trip`` audit records, the same containment (by default the run is
paused for a person; ``Breaker({"anomaly": "quarantine"})`` isolates the agent), the same
decision the listeners hear (rule ``cascade:anomaly``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._events import AgentMessage, ToolCall
from ..cascade import Alarm, Evidence, Observed, Tracker
from ._baseline import AgentProfile, Baseline
from ._values import keys

__all__ = ["Anomaly", "Novelty"]

_MAX_AGENTS = 256  # agents tracked per scope
_MAX_SEEN = 256  # novelties remembered per agent and scope
_EVIDENCE = 8


@dataclass(frozen=True, slots=True)
class Novelty:
    """One thing a call did that its agent's baseline never saw: ``kind`` is ``"tool"``,
    ``"value"`` (an argument's destination or value), ``"transition"`` or ``"volume"``;
    ``what`` names it; ``weight`` is what it adds to the run's score."""

    kind: str
    what: str
    weight: float


@dataclass(frozen=True, slots=True)
class _Habits:
    """One agent's baseline, compiled for dictionary reads: ``None`` where the baseline
    has too little evidence, or too open a habit, to call anything unseen."""

    tools: frozenset[str] | None
    args: Mapping[str, Mapping[str, frozenset[str]]]
    params: Mapping[str, frozenset[str]]
    transitions: Mapping[str, frozenset[str]] | None
    volume: int | None


class Anomaly:
    """Score each tool call against its agent's ``baseline`` and trip when a run departs
    from the agent's habits in several ways.

    What counts as a novelty, once per run and agent (the same novelty again adds nothing):

    - a tool the agent never called (weight ``weights["tool"]``, default 1);
    - an argument name never seen for that tool (a ``cc`` on a ``send_email`` that never
      had one; weight ``weights["argument"]``, default 1);
    - an argument key never seen for that tool and argument (``keys``: a host, an e-mail
      domain, a path root, a short value; weight ``weights["value"]``, default 1);
    - a transition from the previous tool of the run to this one never seen (default 0.5);
    - the run's calls passing the ``quantile`` (default 0.99) of the agent's calls per run
      (default 1; counted once, when passed).

    A habit is scored only when the baseline holds enough evidence for "unseen" to mean
    something: at least ``min_support`` observations, and a Good-Turing chance that the
    next observation is new (``Counts.novelty``) of at most ``max_novelty``. An argument
    that took a new value every few calls (a query, an id) is open, and never scored;
    volume needs ``min_support`` runs.

    A weight of 0 turns its kind of novelty off. The run's score is the sum of its
    novelties' weights. It trips when the score reaches
    ``threshold`` (default 3) with at least ``min_events`` (default 2) distinct novelties:
    one new destination does not trip, a pattern does. Calls the policy denied count too
    (an agent probing tools it never used: their tools and values; not in the run's order
    or length, as ``learn`` skips them), but only a permitted call reports the alarm (the
    guard acts on alarms of permitted calls). After an alarm the run's score starts
    again from zero; the novelties it saw stay known (a person who resumed the run has
    seen them). Agents the baseline does not know are not scored.

    Memory per scope: at most 256 agents, and per agent at most 256 novelties remembered;
    a call costs a few dictionary reads (argument keys are cached per string).
    """

    name = "anomaly"
    every_call = True
    """The monitor feeds this signal every tool call, permitted or denied."""

    WEIGHTS: Mapping[str, float] = {
        "tool": 1.0,
        "argument": 1.0,
        "value": 1.0,
        "transition": 0.5,
        "volume": 1.0,
    }

    def __init__(
        self,
        baseline: Baseline,
        *,
        threshold: float = 3.0,
        min_events: int = 2,
        quantile: float = 0.99,
        min_support: int = 20,
        max_novelty: float = 0.05,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        if not isinstance(baseline, Baseline):
            raise TypeError(f"Anomaly needs a Baseline, found {type(baseline).__name__}")
        merged = {**self.WEIGHTS, **(weights or {})}
        if set(merged) != set(self.WEIGHTS) or not all(
            math.isfinite(w) and w >= 0 for w in merged.values()
        ):
            raise ValueError(
                f"Anomaly: weights must be numbers >= 0 for {sorted(self.WEIGHTS)}, got {weights}"
            )
        if not (threshold > 0 and math.isfinite(threshold)) or min_events < 1:
            raise ValueError(
                "Anomaly: expected threshold > 0 and min_events >= 1, got "
                f"threshold={threshold}, min_events={min_events}"
            )
        if not 0 < quantile <= 1 or min_support < 1 or not 0 <= max_novelty <= 1:
            raise ValueError(
                "Anomaly: expected 0 < quantile <= 1, min_support >= 1, 0 <= max_novelty <= 1"
            )
        self.baseline = baseline
        self.threshold = float(threshold)
        self.min_events = min_events
        self.quantile = quantile
        self.min_support = min_support
        self.max_novelty = max_novelty
        self.weights: dict[str, float] = merged
        self._all_weighed = all(w > 0 for w in merged.values())
        self._habits = {a: self._compile(p) for a, p in baseline.agents.items()}

    def __repr__(self) -> str:
        return (
            f"Anomaly({self.baseline!r}, threshold={self.threshold:g}, "
            f"min_events={self.min_events})"
        )

    def _closed(self, total: int, novelty: float) -> bool:
        return total >= self.min_support and novelty <= self.max_novelty

    def _compile(self, p: AgentProfile) -> _Habits:
        tools = frozenset(p.tools.values) if self._closed(p.calls, p.tools.novelty) else None
        args = {
            tool: {
                name: frozenset(c.values)
                for name, c in per.items()
                if c.values and self._closed(c.total, c.novelty)  # (none kept: open)
            }
            for tool, per in p.args.items()
        }
        params = {
            tool: frozenset(c.values)
            for tool, c in p.params.items()
            if c.values and self._closed(p.tools.values.get(tool, 0), c.novelty)
        }
        total = sum(c.total for c in p.transitions.values())
        once = sum(
            sum(1 for n in c.values.values() if n == 1) + c.others for c in p.transitions.values()
        )
        transitions = None
        if self._closed(total, once / total if total else 1.0):
            transitions = {prev: frozenset(c.values) for prev, c in p.transitions.items()}
        volume = p.quantile(self.quantile) if p.runs >= self.min_support else None
        return _Habits(tools, {t: a for t, a in args.items() if a}, params, transitions, volume)

    def scored(self, agent: str) -> dict[str, Any]:
        """What the signal scores for ``agent``: whether its tools and transitions are
        scored, the arguments whose values are scored per tool, the tools whose argument
        names are scored, and the volume limit (``None``: not scored; the agent unknown: an
        empty dict)."""
        h = self._habits.get(agent)
        if h is None:
            return {}
        return {
            "tools": h.tools is not None,
            "args": {t: sorted(a) for t, a in sorted(h.args.items())},
            "params": sorted(h.params),
            "transitions": h.transitions is not None,
            "volume": h.volume,
        }

    def novelties(self, call: ToolCall, previous: str | None, calls: int) -> list[Novelty]:
        """The novelties of ``call`` for its agent, ``previous`` being the run's previous
        tool of that agent (``""`` at the start; ``None``: no transition to score) and
        ``calls`` the agent's calls in the run including this one (0: no volume to score).
        Pure: the tracker remembers what it has counted."""
        h = self._habits.get(call.agent)
        return [] if h is None else self._novelties(h, call, previous, calls)

    def _novelties(
        self, h: _Habits, call: ToolCall, previous: str | None, calls: int
    ) -> list[Novelty]:
        w = self.weights
        found: list[Novelty] = []
        tool = call.tool
        if h.tools is not None and tool not in h.tools:
            found.append(Novelty("tool", f"tool {tool!r}", w["tool"]))
        else:
            names = h.params.get(tool)
            if names is not None:
                for name in call.args:
                    if name not in names:
                        found.append(Novelty("argument", f"{tool}.{name}", w["argument"]))
            scored = h.args.get(tool)
            if scored:
                args = call.args
                for name, known in scored.items():
                    value = args.get(name)
                    if value is None:
                        continue
                    for k in keys(value):
                        if k not in known:
                            found.append(Novelty("value", f"{tool}.{name} {k}", w["value"]))
            if h.transitions is not None and previous is not None:
                nexts = h.transitions.get(previous)
                if nexts is not None and tool not in nexts:
                    found.append(
                        Novelty("transition", f"{previous or 'start'} -> {tool}", w["transition"])
                    )
        if h.volume is not None and calls and calls == h.volume + 1:
            found.append(Novelty("volume", f"more than {h.volume} calls in a run", w["volume"]))
        if found and not self._all_weighed:
            return [n for n in found if n.weight > 0]  # a weight of 0 turns its kind off
        return found

    def track(self) -> Tracker:
        """A fresh tracker of this signal's per-scope state."""
        return _AnomalyTracker(self)


class _Run:
    __slots__ = ("calls", "events", "evidence", "previous", "score", "seen")

    def __init__(self) -> None:
        self.calls = 0
        self.previous = ""
        self.score = 0.0
        self.events = 0
        self.seen: set[tuple[str, str]] = set()
        self.evidence: list[tuple[int, ToolCall, Novelty]] = []


class _AnomalyTracker:
    __slots__ = ("_runs", "_signal")

    def __init__(self, signal: Anomaly) -> None:
        self._signal = signal
        self._runs: dict[str, _Run] = {}

    @property
    def name(self) -> str:
        return self._signal.name

    def observe(self, seen: Observed) -> Alarm | None:
        return None  # messages between agents are the other signals' business

    def observe_call(self, call: ToolCall, denied: bool, scope: str, index: int) -> Alarm | None:
        signal = self._signal
        h = signal._habits.get(call.agent)
        if h is None:
            return None
        run = self._runs.get(call.agent)
        if run is None:
            if len(self._runs) >= _MAX_AGENTS:
                return None
            run = self._runs[call.agent] = _Run()
        if denied or scope == "-":
            # it did not run, or it names no run (no thread, no run id: learn does not count
            # those in runs either): its tool and values count, not a run's order or length
            found = signal._novelties(h, call, None, 0)
        else:
            run.calls += 1
            found = signal._novelties(h, call, run.previous, run.calls)
            run.previous = call.tool
        if not found and run.score < signal.threshold:
            return None  # (a score a denied call raised trips on the next permitted call)
        for n in found:
            key = (n.kind, n.what)
            if key in run.seen:
                continue
            if len(run.seen) < _MAX_SEEN:
                run.seen.add(key)
            run.score += n.weight
            run.events += 1
            run.evidence.append((run.calls, call, n))
            del run.evidence[:-_EVIDENCE]
        if denied or run.score < signal.threshold or run.events < signal.min_events:
            return None
        evidence = tuple(
            Evidence(i, AgentMessage(c.agent, c.agent, f"{n.kind}: {n.what}", thread_id=scope))
            for i, c, n in run.evidence
        )
        listed = "; ".join(f"{n.kind} {n.what}" for _, _, n in run.evidence)
        alarm = Alarm(
            signal=signal.name,
            scope=scope,
            agents=(call.agent,),
            reason=(
                f"anomaly: {call.agent} left its baseline in this run (score "
                f"{run.score:g} >= {signal.threshold:g} from {run.events} novelties: {listed})"
            ),
            evidence=evidence,
            at_message=index,
            culprit=call.agent,
        )
        run.score = 0.0
        run.events = 0
        run.evidence = []
        return alarm
