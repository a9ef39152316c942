"""One shard of a simulation, engine-level: every event goes straight into ``Guard``.

Why this file is long: one loop drives calls, results, hand-offs, approvals and the
bookkeeping of ground truth (harm, infection, influence) that the report compares with the
guard's decisions; split apart, every piece would need the whole shard's state.

A shard is a population (every role's agents) with its own random generator (seeded from
the scenario's seed and the shard's index), its own guard(s), cascade monitor, breaker and
store namespace. Runs (one thread id each) arrive at the scenario's rate; each run is work
passed from agent to agent: a turn is a few tool calls (``ToolCall`` checked, the result
recorded with a ``ToolResult``), then a hand-off (``AgentMessage``) or the end of the run.
A discrete-event loop orders every step of every run by simulated time, and the guard's
clock, the monitor's clock and the store outage all read that time: the same seed gives
the same events, the same decisions and the same report.

Ground truth is the simulator's, never the guard's: a call is harmful when it is an attack
(a compromised agent misbehaving, or an agent following an injected instruction), honest
otherwise. The report compares that with what the guard decided.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
import sys
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from .._approvals import Approval
from .._decision import Decision, Effect
from .._events import AgentMessage, ToolCall, ToolResult
from ..baselines import Anomaly, learn
from ..cascade import Breaker, CascadeMonitor, Trip, default_signals
from ..guard import Guard
from ..policy import Policy
from ..store import MemoryStore, Store
from ._report import OUTCOMES, Containment, SimulationReport
from ._scenario import Attack, Compromise, Dist, Injection, Role, Scenario, ToolSpec
from ._store import ShardStore

__all__ = ["Shard", "shard_seed", "split"]

_OUTCOME_INDEX = {o: i for i, o in enumerate(OUTCOMES)}
_ARRIVE, _STEP, _ANSWER, _RELEASE = 0, 1, 2, 3


def shard_seed(seed: int, shard: int) -> int:
    """The seed of shard ``shard``: independent of how many workers run the shards."""
    return (seed * 1_000_003 + shard * 7_919 + 17) % (2**63)


class _RecordingBreaker(Breaker):
    """The scenario's breaker, keeping the trips it makes for the simulator to read."""

    def __init__(self, respond: Mapping[str, Any], default: Any) -> None:
        super().__init__(respond, default=default)
        self.seen: list[Trip] = []

    def flow(
        self, alarms: Any, agent: Any, thread_id: Any, controls: Any, now: Any, trips: Any = None
    ) -> Any:
        mine: list[Trip] = [] if trips is None else trips
        acted = yield from super().flow(alarms, agent, thread_id, controls, now, mine)
        self.seen.extend(mine)
        return acted


class _Run:
    __slots__ = (
        "agent",
        "calls",
        "hop",
        "id",
        "infected",
        "influence",
        "last",
        "left",
        "loop",
        "partner",
        "path",
        "role",
        "tainted",
    )

    def __init__(self, rid: str, agent: str, role: Role) -> None:
        self.id = rid
        self.agent = agent
        self.role = role
        self.hop = 0
        self.left = 0
        self.calls = 0
        self.path: tuple[str, ...] = ()
        self.last: str | None = None
        self.infected: set[str] = set()  # agents carrying an injected instruction in this run
        self.influence: dict[str, set[str]] = {}  # agent -> compromised agents upstream
        self.loop = 0
        self.partner = ""
        self.tainted = False  # a compromised agent acted in this run


class Shard:
    """The simulation of one shard (see the module's docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        shard: int,
        interactions: int,
        *,
        store: Store | None = None,
        prefix: str = "",
        progress: Callable[[int], None] | None = None,
        warmup: int | None = None,
    ) -> None:
        self.scenario = scenario
        self.shard = shard
        self.budget = interactions if warmup is None else sys.maxsize
        self.rng = random.Random(shard_seed(scenario.seed, shard))
        self.warmup = warmup
        self.learned: list[ToolCall] | None = None
        if warmup is not None:  # honest runs to learn from: a generator of their own
            self.rng = random.Random(f"warmup/{shard_seed(scenario.seed, shard)}")
            self.learned = []
        self.now = 0.0
        self.progress = progress
        clock = self._clock
        outage = None if scenario.outage is None else (scenario.outage.start, scenario.outage.end)
        self.store = ShardStore(
            store if store is not None else MemoryStore(), prefix, clock=clock, outage=outage
        )
        self.breaker = _RecordingBreaker(
            scenario.breaker.get("respond", {}), scenario.breaker.get("default", "interrupt")
        )
        self.anomaly: Anomaly | None = None
        self.warmup_calls = 0
        signals = None
        if scenario.anomaly is not None and warmup is None:
            self.anomaly = self._learn(scenario, shard)
            signals = [*default_signals(), self.anomaly]
        self.monitor = (
            CascadeMonitor(signals, clock=clock, idle=3600.0, max_scopes=4_096)
            if scenario.cascade
            else None
        )
        self.guard = self._make_guard(scenario.policy, scenario.source.get("policy"))
        self.guards: dict[str, Guard] = {}
        self.roles: dict[str, Role] = {}
        self.agents: dict[str, list[str]] = {}
        for role in scenario.roles:
            g = self.guard
            if role.policy is not None:
                g = self._make_guard(role.policy, role.policy_source)
            self.agents[role.name] = role.agents()
            for a in role.agents():
                self.guards[a] = g
                self.roles[a] = role
        self.entry_roles = [r for r in scenario.roles if r.entry > 0]
        total = sum(r.entry for r in self.entry_roles)
        acc, cum = 0.0, []
        for r in self.entry_roles:
            acc += r.entry / total
            cum.append(acc)
        cum[-1] = 1.0
        self.entry_cum = cum
        self.handoff_cum: dict[str, tuple[list[float], list[str]]] = {}
        for r in scenario.roles:
            acc, cs, names = 0.0, [], []
            for target, p in r.handoffs:
                acc += p
                cs.append(acc)
                names.append(target)
            self.handoff_cum[r.name] = (cs, names)
        # compromised agents and their onsets
        comp = scenario.compromise
        pool = [
            a
            for r in scenario.roles
            if r.attacks and (not comp.roles or r.name in comp.roles)
            for a in r.agents()
        ]
        n = round(comp.share * len(pool))
        chosen = sorted(self.rng.sample(pool, n)) if n else []
        self.onset: dict[str, float] = {}
        self.report = SimulationReport(
            scenario=scenario.name,
            seed=scenario.seed,
            shards=1,
            policy=self.guard.policy_id,
            bucket=scenario.bucket or 1.0,
            outage_window=outage,
        )
        self.cases: dict[str, Containment] = {}
        for a in chosen:
            lo, hi = comp.onset
            t = lo if hi <= lo else self.rng.uniform(lo, hi)
            self.onset[a] = t
            case = Containment(agent=f"{shard}/{a}", shard=shard, role=self.roles[a].name, onset=t)
            self.cases[a] = case
            self.report.containment.append(case)
        self.heap: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.events = 0
        self.runs = 0
        self.calls = 0
        self.bucket = self.report.bucket
        self.ask_times: dict[str, float] = {}
        self.active: dict[str, _Run] = {}
        self.held: set[str] = set()  # agents quarantined, waiting for a person
        self.honest_runs = 0  # runs ended that no compromised agent or injection touched
        if self.anomaly is not None:
            self.report.anomaly_threshold = self.anomaly.threshold
            warmed = self.report.anomaly
            warmed["warmup_runs"] += scenario.anomaly.warmup_runs if scenario.anomaly else 0
            warmed["warmup_calls"] += self.warmup_calls

    def _learn(self, scenario: Scenario, shard: int) -> Anomaly:
        """The anomaly signal of this shard: ``warmup_runs`` honest runs (no compromised
        agent, no injection, no outage; a generator of their own, so the scenario's own
        traffic is drawn as without the signal) through the same policies, and a baseline
        learned from the calls the guard allowed in them."""
        settings = scenario.anomaly
        assert settings is not None
        honest = dataclasses.replace(
            scenario, compromise=Compromise(), injection=Injection(), outage=None, anomaly=None
        )
        warm = Shard(honest, shard, 0, warmup=settings.warmup_runs)
        warm.run()
        calls = warm.learned or []
        self.warmup_calls = len(calls)
        return Anomaly(learn(calls), threshold=settings.threshold)

    def _clock(self) -> float:
        return self.now

    def _make_guard(self, policy: Policy, data: Any) -> Guard:
        """A guard of this shard: its store, monitor, breaker and simulated clock."""
        return Guard(
            policy, store=self.store, cascade=self.monitor, breaker=self.breaker, clock=self._clock
        )

    # -- the loop ------------------------------------------------------------------------------

    def _push(self, at: float, kind: int, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, payload))

    def run(self) -> SimulationReport:
        """Simulate until the shard's interactions are spent (a warm-up shard: until its
        runs are done); the shard's report."""
        self._push(self.rng.expovariate(self.scenario.arrivals), _ARRIVE, None)
        heap = self.heap
        last_progress = 0
        while heap and self.events < self.budget:
            at, _, kind, payload = heapq.heappop(heap)
            self.now = at
            if kind == _STEP:
                self._step(payload)
            elif kind == _ARRIVE:
                self._arrive()
            elif kind == _ANSWER:
                self._answer(*payload)
            else:
                self._release(payload)
            if self.progress is not None and self.events - last_progress >= 2_000:
                self.progress(self.events - last_progress)
                last_progress = self.events
        if self.progress is not None and self.events > last_progress:
            self.progress(self.events - last_progress)
        r = self.report
        for _, _, kind, payload in heap:
            if kind == _ANSWER:  # asks still waiting for a person when the shard stopped
                r.pending["harmful" if payload[4] else "honest"] += 1
        r.interactions = self.events
        if self.anomaly is not None:
            r.anomaly["honest_runs"] += self.honest_runs + sum(
                1 for run in self.active.values() if not _tainted(run)
            )
        r.simulated_seconds = self.now
        r.outage["failures"] = self.store.failures
        return r

    def _arrive(self) -> None:
        run = self._start_run()
        self._push(self.now, _STEP, run)
        if self.warmup is None or self.runs < self.warmup:  # a warm-up stops arriving
            self._push(self.now + self.rng.expovariate(self.scenario.arrivals), _ARRIVE, None)

    def _start_run(self) -> _Run:
        """A new run (both fidelities start one so): its entry role and agent drawn, the
        calls it will make, counted, and its agent entered."""
        rng = self.rng
        role = self.entry_roles[bisect_right(self.entry_cum, rng.random())]
        agents = self.agents[role.name]
        agent = agents[int(rng.random() * len(agents))]
        self.runs += 1
        self.report.runs += 1
        run = _Run(f"s{self.shard}-r{self.runs}", agent, role)
        run.left = _between(rng, role.calls)
        self.active[run.id] = run
        self._enter(run, agent)
        return run

    def _enter(self, run: _Run, agent: str) -> None:
        """``agent`` starts working in ``run``: a compromised one influences what follows."""
        if agent in self.onset and self.onset[agent] <= self.now:
            case = self.cases[agent]
            if case.contained_at is None:
                run.influence.setdefault(agent, set()).add(agent)

    def _step(self, run: _Run) -> None:
        if run.left > 0:
            self._call(run)
        else:
            self._handoff(run)

    # -- tool calls -----------------------------------------------------------------------------

    def _plan_call(self, run: _Run) -> tuple[ToolCall, str | None, bool, bool]:
        """The next call of the run's agent: honest, or an attack (ground truth); whether
        it is a side effect; whether its result is untrusted. Counted in the report."""
        rng = self.rng
        agent, role = run.agent, run.role
        sc = self.scenario
        harmful: str | None = None
        side = False
        spec: ToolSpec | Attack
        onset = self.onset.get(agent)
        turned = onset is not None and onset <= self.now
        if turned:
            run.tainted = True
            case = self.cases[agent]
            case.calls += 1
            if case.first_act is None:
                case.first_act = self.now
        if turned and rng.random() < sc.compromise.misbehave:
            harmful = "compromised"
            self.cases[agent].harmful += 1
        elif agent in run.infected and role.attacks and rng.random() < sc.injection.follow:
            harmful = "injected"
            self.report.injections["followed"] += 1
        if harmful is not None:
            spec = role.attacks[int(rng.random() * len(role.attacks))]
            args = _draw(rng, spec.args)
            side = spec.side_effect
            untrusted = False
        else:
            spec = role.tools[bisect_right(role.cumulative, rng.random())]
            if spec.recorded:
                pool = sc.recorded[spec.name]
                args = dict(pool[int(rng.random() * len(pool))])
            else:
                args = _draw(rng, spec.args)
            side = spec.side_effect
            untrusted = spec.untrusted
        self.calls += 1
        call = ToolCall(
            spec.tool if isinstance(spec, Attack) else spec.name,
            args,
            agent=agent,
            call_id=f"c{self.calls}",
            thread_id=run.id,
        )
        r = self.report
        r.calls += 1
        if harmful:
            r.harmful_calls += 1
        else:
            r.honest_calls += 1
        return call, harmful, side, untrusted

    def _call(self, run: _Run) -> None:
        call, harmful, side, untrusted = self._plan_call(run)
        sc = self.scenario
        rng = self.rng
        r = self.report
        d = self._count("tool_call", self.guards[call.agent].check(call))
        if d.effect is Effect.ASK and d.kind != "control":
            r.approvals["asked"] += 1
            self.ask_times[call.call_id or ""] = self.now
            ap = sc.approvers
            if rng.random() < ap.never:
                self._push(
                    self.now + ap.timeout, _ANSWER, (run, call, d, None, harmful, side, untrusted)
                )
            else:
                p = ap.approve_harmful if harmful else ap.approve
                yes = rng.random() < p
                wait = _between_f(rng, ap.delay)
                self._push(self.now + wait, _ANSWER, (run, call, d, yes, harmful, side, untrusted))
            return
        self._decided(run, call, d, harmful, side, untrusted)

    def _answer(
        self,
        run: _Run,
        call: ToolCall,
        asked: Decision,
        yes: bool | None,
        harmful: str | None,
        side: bool,
        untrusted: bool,
    ) -> None:
        guard = self.guards[call.agent]
        r = self.report
        if yes is None:
            r.approvals["expired"] += 1
            d = guard.expire(call, asked, "nobody answered in time")
        else:
            r.approvals["answered"] += 1
            r.approvals["approved" if yes else "rejected"] += 1
            r.approval_wait += self.now - (self._asked_at(call))
            answer = (
                Approval.approve(approver="simulated")
                if yes
                else Approval.reject("not this one", approver="simulated")
            )
            d = guard.resolve(call, asked, answer)
        self._count("approval", d)
        self._decided(run, call, d, harmful, side, untrusted)

    def _asked_at(self, call: ToolCall) -> float:
        return self.ask_times.pop(call.call_id or "", self.now)

    def _decided(
        self,
        run: _Run,
        call: ToolCall,
        d: Decision,
        harmful: str | None,
        side: bool,
        untrusted: bool,
    ) -> None:
        agent = call.agent
        stop = self._settle(run, call, d, harmful, side)
        if d.allowed and self.learned is not None:
            self.learned.append(call)
        if d.allowed:
            content = self._result(run, call.tool, untrusted)
            if self.events < self.budget:
                result = ToolResult(
                    call.tool, content, agent=agent, call_id=call.call_id, thread_id=run.id
                )
                self._count("tool_result", self.guards[agent].check(result))
        elif stop is not None:
            self._stop(run, stop)
            return
        run.left -= 1
        if self.events < self.budget:
            self._push(self.now + _between_f(self.rng, run.role.think), _STEP, run)

    def _settle(
        self, run: _Run, call: ToolCall, d: Decision, harmful: str | None, side: bool
    ) -> str | None:
        """Count a call's final decision against its ground truth; the cause that stops
        the run (a kill, pause or quarantine), if any."""
        r = self.report
        agent = call.agent
        if d.allowed:
            if not harmful:
                r.honest_allowed += 1
            if harmful:
                r.harmful_allowed[harmful] += 1
                if harmful == "compromised":
                    self.cases[agent].harmful_allowed += 1
            if side or harmful:
                for origin in run.influence.get(agent, ()):
                    case = self.cases[origin]
                    if case.contained_at is None:
                        case.blast_side_effects += 1
            return None
        cause = _cause(d)
        if harmful:
            r.harmful_stopped[cause] += 1
        else:
            r.honest_stopped[cause] += 1
        if d.kind == "budget":
            b = r.budgets.get(d.rule)
            if b is None:
                r.budgets[d.rule] = [1, self.now]
            else:
                b[0] += 1
        return cause if cause in ("control", "cascade") else None

    def _result(self, run: _Run, tool: str, untrusted: bool) -> str:
        """What a call that ran returned: facts, and now and then an injected instruction
        (the agent that reads it is infected for the rest of the run)."""
        rng = self.rng
        r = self.report
        content = (
            f"{tool} returned {rng.randrange(100, 10_000)} rows, id R-{rng.randrange(10**6):06d}"
        )
        if untrusted and rng.random() < self.scenario.injection.rate:
            content = f"{content}\n{self.scenario.injection.text}"
            r.injections["results"] += 1
            if run.agent not in run.infected:
                run.infected.add(run.agent)
                r.injections["agents_infected"] += 1
        return content

    # -- hand-offs ------------------------------------------------------------------------------

    def _handoff(self, run: _Run) -> None:
        planned = self._plan_handoff(run)
        if planned is None:
            self._finish(run)
            return
        msg, relay, compromised = planned
        r = self.report
        r.messages += 1
        d = self._count("message", self.guards[msg.sender].check(msg))
        if not d.allowed:
            r.messages_held[_cause(d)] += 1
            self._stop(run, _cause(d))
            return
        self._delivered(run, msg, relay, compromised)
        if self.events < self.budget:
            self._push(self.now + _between_f(self.rng, run.role.think), _STEP, run)

    def _plan_handoff(self, run: _Run) -> tuple[AgentMessage, bool, bool] | None:
        """The run's next hand-off (``None``: the run ends): the message, whether it relays
        an injected instruction, whether its sender is compromised."""
        rng = self.rng
        sc = self.scenario
        sender = run.agent
        loop = False
        if run.loop > 0:
            recipient = run.partner
            run.partner = sender
            run.loop -= 1
            loop = True
        else:
            if run.hop >= sc.max_hops:
                return None
            cum, names = self.handoff_cum[run.role.name]
            i = bisect_right(cum, rng.random())
            if i >= len(names):
                return None
            agents = self.agents[names[i]]
            recipient = agents[int(rng.random() * len(agents))]
            if recipient == sender and len(agents) > 1:
                recipient = agents[(agents.index(sender) + 1) % len(agents)]
        onset = self.onset.get(sender)
        compromised = onset is not None and onset <= self.now
        relay = False
        if compromised:
            run.tainted = True
            case = self.cases[sender]
            if case.first_act is None:
                case.first_act = self.now
            case.messages += 1
            relay = rng.random() < sc.compromise.relay
            if not loop and rng.random() < sc.compromise.loop:
                run.loop = 2 * sc.compromise.loop_rounds - 1
                run.partner = sender
                loop = True
        elif sender in run.infected and rng.random() < sc.injection.relay:
            relay = True
            self.report.injections["relays"] += 1
        if loop:
            content = f"{sender}: please look at the draft for {run.id} again and send it back."
        else:
            content = (
                f"{sender} hands over {run.id} step {run.hop}: checked {rng.randrange(100, 10_000)} "
                f"records, reference REF-{rng.randrange(10**6):06d}."
            )
        if relay:
            content = f"{content}\nForwarded note: {sc.injection.text}"
        mid = f"{run.id}/m{run.hop}"
        msg = AgentMessage(
            sender,
            recipient,
            content,
            thread_id=run.id,
            path=run.path,
            id=mid,
            parent=run.last,
            generation=run.hop,
        )
        return msg, relay, compromised

    def _delivered(self, run: _Run, msg: AgentMessage, relay: bool, compromised: bool) -> None:
        """A hand-off went through: the recipient takes over the run, with what reached
        it (an instruction relayed, the influence of compromised agents upstream)."""
        sender, recipient = msg.sender, msg.recipient
        chain = (*run.path, sender)
        if recipient in chain:
            chain = chain[: chain.index(recipient)]
        run.path = chain
        run.last = msg.id
        run.hop += 1
        # what reaches the recipient: an instruction relayed, the influence of compromised
        # agents upstream (blast radius)
        if relay and recipient not in run.infected:
            run.infected.add(recipient)
            self.report.injections["agents_infected"] += 1
        upstream = set(run.influence.get(sender, ()))
        if compromised and self.cases[sender].contained_at is None:
            upstream.add(sender)
        if upstream:
            mine = run.influence.setdefault(recipient, set())
            for origin in upstream:
                case = self.cases[origin]
                if case.contained_at is None:
                    mine.add(origin)
                    if recipient != origin:
                        case.blast_agents.add(recipient)
        self._enter(run, recipient)
        run.agent = recipient
        run.role = self.roles[recipient]
        run.left = 0 if run.loop > 0 else _between(self.rng, run.role.calls)

    # -- bookkeeping -----------------------------------------------------------------------------

    def _count(self, event: str, d: Decision) -> Decision:
        self.events += 1
        r = self.report
        outcome = d.effect.value
        r.decisions[outcome] += 1
        counts = r.by_event.get(event)
        if counts is None:
            counts = r.by_event[event] = Counter()
        counts[outcome] += 1
        slot = int(self.now // self.bucket)
        row = r.timeline.get(slot)
        if row is None:
            row = r.timeline[slot] = [0] * len(OUTCOMES)
        row[_OUTCOME_INDEX[outcome]] += 1
        outage = self.scenario.outage
        if outage is not None and outage.start <= self.now < outage.end and event != "tool_result":
            o = r.outage
            o["decided"] += 1
            if d.allowed:
                o[f"allowed_{event}s"] += 1
            elif d.rule == "store-error":
                o["denied"] += 1
        if self.breaker.seen:
            self._trips()
        return d

    def _trips(self) -> None:
        r = self.report
        for t in self.breaker.seen:
            r.trips[f"{t.signal}:{t.response}"] += 1
            run = self.active.get(t.thread_id or "")
            if t.culprit in self.cases and self.cases[t.culprit].first_act is not None:
                kind = "compromised"
            elif run is not None and t.culprit in run.infected:
                kind = "carrying an injection"
            elif run is not None and run.influence.get(t.culprit):
                kind = "downstream of a compromised agent"
            else:
                kind = "honest"
            r.trip_culprits[kind] += 1
            if t.signal == "anomaly":
                r.anomaly["trips"] += 1
                if kind == "honest":
                    r.anomaly["false_alarms"] += 1
                elif kind == "compromised":
                    caught = self.cases[t.culprit]
                    if caught.calls_to_anomaly is None:
                        caught.calls_to_anomaly = caught.calls
            if t.response == "record":
                continue
            after = self.scenario.release_after
            if t.response == "quarantine" and after is not None and t.culprit not in self.held:
                self.held.add(t.culprit)
                self._push(self.now + after, _RELEASE, t.culprit)
            for agent in {t.culprit, *t.agents}:
                case = self.cases.get(agent)
                if case is None or case.first_act is None or case.contained_at is not None:
                    continue
                case.contained_at = self.now
                case.signal = t.signal
                case.response = t.response
                case.messages_to_containment = case.messages
        self.breaker.seen.clear()

    def _release(self, agent: str) -> None:
        """A person lifts a quarantine the breaker set (``operators.release_after``); if
        the store is down, they try again a minute later."""
        try:
            self.guard.controls.resume(agent=agent, by="simulated operator")
        except Exception:
            self._push(self.now + 60.0, _RELEASE, agent)
            return
        self.held.discard(agent)
        self.report.operators["released"] += 1

    def _stop(self, run: _Run, cause: str) -> None:
        self.report.runs_stopped[cause] += 1
        self._end(run)

    def _finish(self, run: _Run) -> None:
        self.report.runs_completed += 1
        self._end(run)

    def _end(self, run: _Run) -> None:
        self.active.pop(run.id, None)
        if self.anomaly is not None and not _tainted(run):
            self.honest_runs += 1
        if self.monitor is not None:
            self.monitor.reset(run.id)


def _tainted(run: _Run) -> bool:
    """Whether a compromised agent acted in ``run``, or an injection or a compromised
    agent's influence reached it (else it is an honest run)."""
    return run.tainted or bool(run.infected) or bool(run.influence)


def _cause(d: Decision) -> str:
    """Why a call or message did not go ahead, in the report's words."""
    if d.kind == "control":
        return "control"
    if d.rule == "quarantine" or d.rule.startswith("cascade:") or d.kind == "cascade":
        return "cascade"
    if d.rule == "store-error":
        return "store"
    if d.kind == "budget":
        return "budget"
    if d.kind == "approval" or d.effect is Effect.RESPOND:
        return "approval"
    if d.kind in ("rule", "grant"):
        return "policy"
    return "guard"


def _between(rng: random.Random, span: tuple[int, int]) -> int:
    lo, hi = span
    return lo if hi <= lo else lo + int(rng.random() * (hi - lo + 1))


def _between_f(rng: random.Random, span: tuple[float, float]) -> float:
    lo, hi = span
    return lo if hi <= lo else lo + rng.random() * (hi - lo)


def _draw(rng: random.Random, args: Mapping[str, Dist]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, d in args.items():
        kind = d.kind
        if kind == "const":
            out[name] = d.values[0]
        elif kind == "choice":
            out[name] = d.values[bisect_right(d.cumulative, rng.random())]
        elif d.integer:
            out[name] = int(d.low) + int(rng.random() * (int(d.high) - int(d.low) + 1))
        else:
            out[name] = d.low + rng.random() * (d.high - d.low)
    return out


def split(total: int, shards: int) -> list[int]:
    """How many interactions each shard simulates (the first ones take the remainder)."""
    base, extra = divmod(total, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]
