"""What a simulation found: counters that add up across shards, containment per compromised
agent, and the timeline, in an order that does not depend on how shards were scheduled."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Containment", "SimulationReport"]

OUTCOMES = ("allow", "modify", "ask", "respond", "deny")
TIMELINE_BUCKETS = 60
"""At most this many points in the report's timeline (fine buckets merged)."""


@dataclass(slots=True)
class Containment:
    """One compromised agent: when it turned, when it first acted after that (a call or a
    hand-off), whether and when the
    breaker acted on it (``signal`` / ``response``), how long and how many of its hand-offs
    that took, its harmful calls, and its blast radius before containment: the agents its
    work reached downstream in the runs it took part in, and the side effects (allowed
    calls to side-effecting tools, harmful ones included) they made."""

    agent: str
    shard: int
    role: str
    onset: float
    first_act: float | None = None
    contained_at: float | None = None
    signal: str | None = None
    response: str | None = None
    messages: int = 0
    messages_to_containment: int | None = None
    harmful: int = 0
    harmful_allowed: int = 0
    blast_agents: set[str] = field(default_factory=set)
    blast_side_effects: int = 0
    calls: int = 0
    """Tool calls it made after turning (honest-looking ones included)."""
    calls_to_anomaly: int | None = None
    """Its calls after turning when the anomaly signal first tripped on it (``None``: it
    did not, or the signal was off)."""

    @property
    def contained(self) -> bool:
        """Whether the breaker acted on this agent."""
        return self.contained_at is not None

    @property
    def time_to_containment(self) -> float | None:
        """Simulated seconds from its first act after turning to the breaker's action."""
        if self.contained_at is None or self.first_act is None:
            return None
        return _r(self.contained_at - self.first_act)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values."""
        return {
            "agent": self.agent,
            "shard": self.shard,
            "role": self.role,
            "onset": _r(self.onset),
            "first_act": None if self.first_act is None else _r(self.first_act),
            "contained": self.contained,
            "contained_at": None if self.contained_at is None else _r(self.contained_at),
            "signal": self.signal,
            "response": self.response,
            "time_to_containment": self.time_to_containment,
            "messages": self.messages,
            "messages_to_containment": self.messages_to_containment,
            "harmful_calls": self.harmful,
            "harmful_allowed": self.harmful_allowed,
            "blast_agents": len(self.blast_agents),
            "blast_side_effects": self.blast_side_effects,
            "calls": self.calls,
            "calls_to_anomaly": self.calls_to_anomaly,
        }


def _r(x: float) -> float:
    return round(x, 6)


def _counter() -> Counter[str]:
    return Counter()


@dataclass(slots=True)
class SimulationReport:
    """The result of ``simulate``: deterministic for a scenario and a seed (whatever the
    number of workers), mergeable shard by shard (``merge``).

    ``to_dict()`` / ``to_json()`` hold only simulated quantities (byte-identical for the
    same seed); wall-clock figures (``seconds``, ``throughput``) are kept apart and added
    only with ``to_dict(timing=True)``. ``str(report)`` is a summary for people.
    """

    scenario: str = ""
    seed: int = 0
    shards: int = 0
    policy: str = ""
    interactions: int = 0
    runs: int = 0
    runs_completed: int = 0
    runs_stopped: Counter[str] = field(default_factory=_counter)
    simulated_seconds: float = 0.0
    decisions: Counter[str] = field(default_factory=_counter)
    by_event: dict[str, Counter[str]] = field(default_factory=dict)
    calls: int = 0
    honest_calls: int = 0
    harmful_calls: int = 0
    honest_allowed: int = 0
    honest_stopped: Counter[str] = field(default_factory=_counter)
    harmful_stopped: Counter[str] = field(default_factory=_counter)
    harmful_allowed: Counter[str] = field(default_factory=_counter)
    pending: Counter[str] = field(default_factory=_counter)
    """Calls still waiting for a person when the simulation stopped (honest, harmful)."""
    messages: int = 0
    messages_held: Counter[str] = field(default_factory=_counter)
    trips: Counter[str] = field(default_factory=_counter)
    trip_culprits: Counter[str] = field(default_factory=_counter)
    budgets: dict[str, list[float]] = field(default_factory=dict)
    """Budget id -> [calls denied, first time (simulated s)]."""
    approvals: Counter[str] = field(default_factory=_counter)
    approval_wait: float = 0.0
    injections: Counter[str] = field(default_factory=_counter)
    operators: Counter[str] = field(default_factory=_counter)
    outage: Counter[str] = field(default_factory=_counter)
    outage_window: tuple[float, float] | None = None
    anomaly: Counter[str] = field(default_factory=_counter)
    """The anomaly signal: warm-up runs and calls learned, its trips, its false alarms
    (trips on honest culprits) and the honest runs they are counted against."""
    anomaly_threshold: float | None = None
    """The anomaly signal's threshold (``None``: the signal was off)."""
    containment: list[Containment] = field(default_factory=list)
    timeline: dict[int, list[int]] = field(default_factory=dict)
    bucket: float = 1.0
    seconds: float = 0.0
    """Wall-clock seconds the simulation took (not part of the deterministic report)."""
    workers: str = "1"

    def __repr__(self) -> str:
        return (
            f"SimulationReport({self.scenario!r}, seed={self.seed}, "
            f"interactions={self.interactions}, harmful_allowed={sum(self.harmful_allowed.values())}, "
            f"honest_stopped={sum(self.honest_stopped.values())})"
        )

    # -- merging -----------------------------------------------------------------------------

    def merge(self, other: SimulationReport) -> None:
        """Add ``other`` (another shard of the same scenario) into this report."""
        self.shards += other.shards
        self.interactions += other.interactions
        self.runs += other.runs
        self.runs_completed += other.runs_completed
        self.simulated_seconds = max(self.simulated_seconds, other.simulated_seconds)
        self.calls += other.calls
        self.honest_calls += other.honest_calls
        self.harmful_calls += other.harmful_calls
        self.honest_allowed += other.honest_allowed
        self.messages += other.messages
        self.approval_wait += other.approval_wait
        for mine, theirs in (
            (self.runs_stopped, other.runs_stopped),
            (self.decisions, other.decisions),
            (self.honest_stopped, other.honest_stopped),
            (self.harmful_stopped, other.harmful_stopped),
            (self.harmful_allowed, other.harmful_allowed),
            (self.messages_held, other.messages_held),
            (self.trips, other.trips),
            (self.trip_culprits, other.trip_culprits),
            (self.approvals, other.approvals),
            (self.pending, other.pending),
            (self.injections, other.injections),
            (self.operators, other.operators),
            (self.outage, other.outage),
            (self.anomaly, other.anomaly),
        ):
            mine.update(theirs)
        for kind, counts in other.by_event.items():
            self.by_event.setdefault(kind, Counter()).update(counts)
        for b, (n, first) in other.budgets.items():
            if b in self.budgets:
                self.budgets[b][0] += n
                self.budgets[b][1] = min(self.budgets[b][1], first)
            else:
                self.budgets[b] = [n, first]
        self.containment.extend(other.containment)
        for i, row in other.timeline.items():
            mine_row = self.timeline.setdefault(i, [0] * len(OUTCOMES))
            for j, n in enumerate(row):
                mine_row[j] += n
        self.outage_window = self.outage_window or other.outage_window
        if self.anomaly_threshold is None:
            self.anomaly_threshold = other.anomaly_threshold
        self.seconds = max(self.seconds, other.seconds)

    # -- reading it ---------------------------------------------------------------------------

    @property
    def throughput(self) -> float:
        """Interactions per wall-clock second (0 when not measured)."""
        return self.interactions / self.seconds if self.seconds > 0 else 0.0

    @property
    def false_positives(self) -> int:
        """Honest calls stopped (denied, or asked and not approved)."""
        return sum(self.honest_stopped.values())

    @property
    def let_through(self) -> int:
        """Harmful calls that ran."""
        return sum(self.harmful_allowed.values())

    def timeline_points(self) -> tuple[float, list[dict[str, int]]]:
        """The timeline merged to at most ``TIMELINE_BUCKETS`` points: the width of a
        point in simulated seconds, and per point the decisions by outcome."""
        if not self.timeline:
            return self.bucket, []
        last = max(self.timeline)
        per = max(1, math.ceil((last + 1) / TIMELINE_BUCKETS))
        points = [[0] * len(OUTCOMES) for _ in range(last // per + 1)]
        for i, row in self.timeline.items():
            p = points[i // per]
            for j, n in enumerate(row):
                p[j] += n
        return self.bucket * per, [dict(zip(OUTCOMES, p, strict=True)) for p in points]

    def containment_summary(self) -> dict[str, Any]:
        """Compromised agents, how many acted and were contained, and the distribution of
        time and messages to containment and of blast radius."""
        acted = [c for c in self.containment if c.first_act is not None]
        done = [c for c in acted if c.contained]
        times = sorted(c.time_to_containment or 0.0 for c in done)
        msgs = sorted(c.messages_to_containment or 0 for c in done)
        blast = sorted(len(c.blast_agents) for c in acted)
        return {
            "compromised": len(self.containment),
            "acted": len(acted),
            "contained": len(done),
            "time_to_containment": _stats(times),
            "messages_to_containment": _stats([float(m) for m in msgs]),
            "blast_agents": _stats([float(b) for b in blast]),
            "blast_side_effects": sum(c.blast_side_effects for c in acted),
            "by_response": dict(sorted(Counter(c.response for c in done if c.response).items())),
        }

    def anomaly_summary(self) -> dict[str, Any] | None:
        """What the anomaly signal did (``None``: it was off): its warm-up, its trips, the
        compromised agents that acted and that it tripped on (``caught``; ``caught_first``:
        it was the signal that contained them) with the distribution of their calls after
        turning until it did, and its false alarms (trips whose culprit was honest) per
        1,000 honest runs (runs no compromised agent or injection touched)."""
        if self.anomaly_threshold is None:
            return None
        a = self.anomaly
        acted = [c for c in self.containment if c.first_act is not None]
        caught = [c for c in acted if c.calls_to_anomaly is not None]
        return {
            "threshold": self.anomaly_threshold,
            "warmup_runs": a["warmup_runs"],
            "warmup_calls": a["warmup_calls"],
            "trips": a["trips"],
            "compromised_acted": len(acted),
            "caught": len(caught),
            "caught_first": sum(1 for c in acted if c.signal == "anomaly"),
            "calls_to_trip": _stats(sorted(float(c.calls_to_anomaly or 0) for c in caught)),
            "false_alarms": a["false_alarms"],
            "honest_runs": a["honest_runs"],
            "false_alarms_per_1000_honest_runs": round(
                1000 * a["false_alarms"] / a["honest_runs"], 3
            )
            if a["honest_runs"]
            else 0.0,
        }

    def to_dict(self, *, timing: bool = False) -> dict[str, Any]:
        """The report as plain JSON values; ``timing`` adds the wall-clock figures (which
        differ from run to run)."""
        width, points = self.timeline_points()
        contained = sorted(self.containment, key=lambda c: (c.shard, c.agent))
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "seed": self.seed,
            "shards": self.shards,
            "policy": self.policy,
            "interactions": self.interactions,
            "simulated_seconds": _r(self.simulated_seconds),
            "runs": {
                "started": self.runs,
                "completed": self.runs_completed,
                "stopped": dict(sorted(self.runs_stopped.items())),
            },
            "decisions": {o: self.decisions[o] for o in OUTCOMES},
            "decisions_by_event": {
                k: {o: v[o] for o in OUTCOMES} for k, v in sorted(self.by_event.items())
            },
            "calls": {
                "total": self.calls,
                "honest": self.honest_calls,
                "harmful": self.harmful_calls,
                "honest_allowed": self.honest_allowed,
                "honest_stopped": self.false_positives,
                "honest_stopped_by": dict(sorted(self.honest_stopped.items())),
                "harmful_allowed": self.let_through,
                "harmful_allowed_by": dict(sorted(self.harmful_allowed.items())),
                "harmful_stopped_by": dict(sorted(self.harmful_stopped.items())),
                "waiting_for_approval": {k: self.pending[k] for k in ("honest", "harmful")},
                "false_positive_rate": _rate(self.false_positives, self.honest_calls),
                "harmful_allowed_rate": _rate(self.let_through, self.harmful_calls),
            },
            "messages": {
                "sent": self.messages,
                "held": sum(self.messages_held.values()),
                "held_by": dict(sorted(self.messages_held.items())),
            },
            "trips": dict(sorted(self.trips.items())),
            "trip_culprits": dict(sorted(self.trip_culprits.items())),
            "containment": self.containment_summary(),
            "anomaly": self.anomaly_summary(),
            "compromised_agents": [c.to_dict() for c in contained],
            "budgets": {
                b: {"denied": int(n), "first_at": _r(first)}
                for b, (n, first) in sorted(self.budgets.items())
            },
            "approvals": {
                **{k: self.approvals[k] for k in ("asked", "approved", "rejected", "expired")},
                "mean_wait": _r(self.approval_wait / self.approvals["answered"])
                if self.approvals["answered"]
                else 0.0,
            },
            "injections": dict(sorted(self.injections.items())),
            "quarantines_released": self.operators["released"],
            "store_outage": None
            if self.outage_window is None
            else {
                "start": self.outage_window[0],
                "end": self.outage_window[1],
                **{
                    k: self.outage[k]
                    for k in (
                        "decided",
                        "denied",
                        "allowed_tool_calls",
                        "allowed_messages",
                        "allowed_approvals",
                        "failures",
                    )
                },
            },
            "timeline": {"bucket_seconds": _r(width), "points": points},
        }
        if timing:
            out["timing"] = {
                "seconds": round(self.seconds, 3),
                "interactions_per_second": round(self.throughput, 1),
                "workers": self.workers,
            }
        return out

    def to_json(self, *, timing: bool = False, **kwargs: Any) -> str:
        """``to_dict()`` as JSON text (``kwargs`` go to ``json.dumps``, e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(timing=timing), ensure_ascii=False, **kwargs)

    def __str__(self) -> str:
        c = self.containment_summary()
        t = c["time_to_containment"]
        out = [
            f"simulated {self.interactions:,} interactions ({self.runs:,} runs, "
            f"{self.shards} shards, seed {self.seed}) of {self.scenario!r} with policy "
            f"{self.policy}",
            "decisions: " + ", ".join(f"{self.decisions[o]:,} {o}" for o in OUTCOMES),
            f"tool calls: {self.calls:,} ({self.honest_calls:,} honest, "
            f"{self.harmful_calls:,} harmful)",
            f"honest calls stopped: {self.false_positives:,} "
            f"({_pct(self.false_positives, self.honest_calls)})" + _by(self.honest_stopped),
            f"harmful calls let through: {self.let_through:,} "
            f"({_pct(self.let_through, self.harmful_calls)})" + _by(self.harmful_allowed),
            f"messages: {self.messages:,} sent, {sum(self.messages_held.values()):,} held",
            f"compromised agents: {c['compromised']} ({c['acted']} acted), "
            f"{c['contained']} contained"
            + (
                f"; time to containment median {t['median']:g}s, p90 {t['p90']:g}s; "
                f"messages median {c['messages_to_containment']['median']:g}"
                if c["contained"]
                else ""
            ),
            f"blast radius: median {c['blast_agents']['median']:g} agents, max "
            f"{c['blast_agents']['max']:g}; {c['blast_side_effects']:,} side effects before "
            "containment",
        ]
        if self.trips:
            out.append(
                "breaker trips: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.trips.items()))
            )
        an = self.anomaly_summary()
        if an is not None:
            out.append(
                f"anomaly signal (learned from {an['warmup_runs']:,} honest warm-up runs): "
                f"caught {an['caught']} of {an['compromised_acted']} compromised agents that "
                f"acted ({an['caught_first']} first), median "
                f"{an['calls_to_trip']['median']:g} calls to trip; "
                f"{an['false_alarms']:,} false alarms in {an['honest_runs']:,} honest runs "
                f"({an['false_alarms_per_1000_honest_runs']:g} per 1,000)"
            )
        if self.operators["released"]:
            out.append(f"quarantines lifted by a person: {self.operators['released']:,}")
        if self.budgets:
            out.append(
                "budgets exhausted: "
                + ", ".join(
                    f"{b} ({int(n):,} denied, first at {first:g}s)"
                    for b, (n, first) in sorted(self.budgets.items())
                )
            )
        if self.approvals["asked"]:
            out.append(
                "approvals: "
                + ", ".join(
                    f"{self.approvals[k]:,} {k}"
                    for k in ("asked", "approved", "rejected", "expired")
                )
            )
        if self.outage_window is not None:
            o = self.outage
            out.append(
                f"store outage {self.outage_window[0]:g}-{self.outage_window[1]:g}s: "
                f"{o['decided']:,} decisions, {o['denied']:,} denied (fail closed), "
                f"{o['allowed_tool_calls']:,} calls and {o['allowed_messages']:,} messages "
                f"allowed, {o['allowed_approvals']:,} approvals given (asked before it)"
            )
        if self.injections:
            out.append(
                "injections: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.injections.items()))
            )
        if self.seconds > 0:
            out.append(
                f"wall clock: {self.seconds:.1f} s, {self.throughput:,.0f} interactions/s "
                f"(workers: {self.workers})"
            )
        return "\n".join(out)


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "min": 0.0, "median": 0.0, "p90": 0.0, "max": 0.0, "mean": 0.0}
    n = len(values)
    return {
        "n": n,
        "min": _r(values[0]),
        "median": _r(values[(n - 1) // 2]),
        "p90": _r(values[min(n - 1, math.ceil(0.9 * n) - 1)]),
        "max": _r(values[-1]),
        "mean": _r(math.fsum(values) / n),
    }


def _rate(a: int, b: int) -> float:
    return round(a / b, 6) if b else 0.0


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.2f}%" if b else "-"


def _by(counts: Counter[str]) -> str:
    if not counts:
        return ""
    return ": " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
