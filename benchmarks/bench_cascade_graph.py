"""Overhead of cascade detection on a multi-agent LangGraph graph, per hand-off step.

Run:  python benchmarks/bench_cascade_graph.py [--quick] [--rounds 40] [--runs 15]
      [--dispatches 6] [--texts fresh|pool]          (~60 s; --quick ~5 s)

The graph: ``StateGraph(MessagesState)`` with ``InMemorySaver``; a supervisor and three
workers (researcher, analyst, writer), plain node functions handing off with
``Command(goto=...)``: the supervisor dispatches to each worker in turn, each worker hands
back to the supervisor, ``--dispatches`` times per run (12 hand-offs by default), then the
supervisor ends the run. Every node writes one AI message of English prose, log-uniform
200-4,000 characters (``bench_cascade.prose``), so the state and its checkpoints grow as
they would with real agents; the nodes do no other work (no model call), so the step is
LangGraph's own cost and the shares below are against the cheapest possible step.

Texts (``--texts``): ``fresh`` (default) gives every run of every variant texts nobody has
seen (the same lengths for all variants of a run, each variant its own window of the
corpus), so the monitor's process-wide text cache never hits: the cost of a real team whose
agents write new prose. ``pool`` draws them from a shared pool of 512, the same texts for
every variant of a run (the figures before this option: variant E then always found the
facts of C's run of the same texts in the cache).

Variants, interleaved run by run within each round (A B C D E A B C D E ...), each run on a
new thread:

- **A** the bare graph;
- **B** every node in ``guard_node(node, guard)``, a guard *without* cascade monitor (the
  kill switch, the hand-off policy check — ``allow("handoff", ...)`` rules — and the
  identity stamping): the baseline that makes the cascade's own increment visible;
- **C** the same with ``Guard(policy, cascade=CascadeMonitor())``: each hand-off is also a
  message to the monitor (the default signals) and the breaker;
- **D** the bare graph with a no-op callback handler in the run's config: the framework's
  floor for any callback (LangChain then builds run managers for every runnable);
- **E** the bare graph with ``CascadeWatcher(guard)`` in the run's config (a guard with a
  ``CascadeMonitor()``): the watcher reports each node-to-node hand-off.

Reported: ms per hand-off step (min / median / max over rounds), per-round ratios, and the
guard's own share measured in-process with thread CPU time (every timed function runs on
the thread that called it):

- for B and C the time inside ``GuardedNode._call`` minus the time inside the node function
  it wraps; of that, **the monitor's own cost**: every call into the ``CascadeMonitor``
  (``observe``, ``observe_call`` for the hand-off's tool call, ``provenance``), and **the
  causal bookkeeping** of the adapter: registering the activation and finding its senders
  (``ACTIVATIONS.start``), reporting arrivals (``_arrivals_flow``), building each hand-off's
  message (``handoff_message``). B does the bookkeeping too (it keeps the causal tree whether
  or not a monitor reads it), so C - B is the monitor plus what only a monitor triggers;
- for E the time inside the watcher's ``on_chain_start`` / ``on_chain_end``; of that the
  monitor's own cost as above, ``Guard.check`` apart from the monitor (kill switch,
  quarantine, breaker) and the watcher's bookkeeping (the rest: its tasks, senders,
  messages).

Each figure per hand-off in µs and as a share of the bare step A and of the step of B
(guard_node without the cascade), from the same run. Each timed call adds ~1.5 µs of
timer on the machines these figures come from (``thread_time`` is a system call there).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from bench_cascade import corpus, prose
from bench_langgraph import fmt, versions
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command

from guardrails_plugin import AgentMessage, Guard, Policy, ToolCall, allow
from guardrails_plugin.cascade import Alarm, CascadeMonitor
from guardrails_plugin.langgraph import CascadeWatcher, GuardedNode, _causal, _nodes
from guardrails_plugin.scopes import OneOf

WORKERS = ("researcher", "analyst", "writer")
AGENTS = ("supervisor", *WORKERS)
POOL_SIZE = 512


@dataclass
class Clocks:
    """Thread CPU and wall seconds added up (several timed functions may add at once)."""

    cpu: float = 0.0
    wall: float = 0.0
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, cpu: float, wall: float) -> None:
        with self.lock:
            self.cpu += cpu
            self.wall += wall
            self.calls += 1

    def zero(self) -> None:
        self.cpu = self.wall = 0.0
        self.calls = 0


def timed(fn: Callable[..., Any], clocks: Clocks) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        w, c = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            clocks.add(time.thread_time() - c, time.perf_counter() - w)

    return run


class TimedMonitor(CascadeMonitor):
    """The default monitor, timing every call into it: ``observe`` (``clocks``; with
    ``observe_handoff``, a hand-off's call and message in one call, where the tree has it),
    and all of them with ``observe_call`` and ``provenance`` together (``every``)."""

    def __init__(self) -> None:
        super().__init__()
        self.clocks = Clocks()
        self.every = Clocks()
        self.prov = Clocks()  # provenance alone (guard_node asks for it in its bookkeeping)

    def observe(self, message: AgentMessage) -> list[Alarm]:
        w, c = time.perf_counter(), time.thread_time()
        try:
            return super().observe(message)
        finally:
            cpu, wall = time.thread_time() - c, time.perf_counter() - w
            self.clocks.add(cpu, wall)
            self.every.add(cpu, wall)

    def observe_call(self, call: ToolCall, *, denied: bool) -> list[Alarm]:
        w, c = time.perf_counter(), time.thread_time()
        try:
            return super().observe_call(call, denied=denied)
        finally:
            self.every.add(time.thread_time() - c, time.perf_counter() - w)

    def observe_handoff(self, call: ToolCall) -> tuple[list[Alarm], list[Alarm] | None]:
        # a hand-off's call and message in one call (trees that have it): counted as
        # ``observe`` too, since it does observe's work
        w, c = time.perf_counter(), time.thread_time()
        try:
            return super().observe_handoff(call)
        finally:
            cpu, wall = time.thread_time() - c, time.perf_counter() - w
            self.clocks.add(cpu, wall)
            self.every.add(cpu, wall)

    def provenance(self, scope: str, agent: str) -> tuple[str, ...]:
        w, c = time.perf_counter(), time.thread_time()
        try:
            return super().provenance(scope, agent)
        finally:
            cpu, wall = time.thread_time() - c, time.perf_counter() - w
            self.every.add(cpu, wall)
            self.prov.add(cpu, wall)


BOOKKEEPING = Clocks()
"""Time inside guard_node's causal bookkeeping (process-wide: B and C alike; zeroed and read
around each variant's runs, which never overlap)."""


def _timed_bookkeeping() -> None:
    """Time the adapter's causal bookkeeping where it lives: ``ACTIVATIONS.start`` (the
    activation and its senders), ``handoff_message`` as ``guard_node`` calls it (each
    hand-off's message; in trees before it ``handoff_call``, which also built the hand-off's
    call a second time to carry the message), ``GuardedNode._arrivals_flow`` (arrivals,
    timed as the driver runs the flow, minus the guard's checks it asks for)."""
    acts = _causal.ACTIVATIONS
    start = acts.start
    acts.start = timed(start, BOOKKEEPING)  # type: ignore[method-assign]
    # the message of a hand-off: ``handoff_message`` (the call then built once, with it) in
    # this tree; ``handoff_call`` (the call built, then copied with its message) before it
    name = "handoff_message" if hasattr(_nodes, "handoff_message") else "handoff_call"
    setattr(_nodes, name, timed(getattr(_nodes, name), BOOKKEEPING))


def _arrivals_timed(flow: Generator[Any, Any, None]) -> Generator[Any, Any, None]:
    """``flow`` run with its own steps timed into ``BOOKKEEPING`` (not what its ops ask the
    guard: that is the guard's check)."""
    sent: Any = None
    while True:
        w, c = time.perf_counter(), time.thread_time()
        try:
            op = flow.send(sent)
        except StopIteration:
            BOOKKEEPING.add(time.thread_time() - c, time.perf_counter() - w)
            return
        BOOKKEEPING.add(time.thread_time() - c, time.perf_counter() - w)
        sent = yield op


class TimedGuardedNode(GuardedNode):
    """``guard_node``'s wrapper, timing ``_call`` (the guard's work plus the node's)."""

    def __init__(self, node: Callable[..., Any], guard: Guard, clocks: Clocks) -> None:
        super().__init__(node, guard)
        self.clocks = clocks

    def _call(self, state: Any, config: RunnableConfig, runtime: Any = None) -> Any:
        w, c = time.perf_counter(), time.thread_time()
        try:
            return super()._call(state, config, runtime)
        finally:
            self.clocks.add(time.thread_time() - c, time.perf_counter() - w)

    def _arrivals_flow(self, *args: Any) -> Generator[Any, Any, None]:
        return _arrivals_timed(super()._arrivals_flow(*args))


class NoopHandler(BaseCallbackHandler):
    """A callback handler that does nothing, inline like the watcher."""

    run_inline = True


class TimedWatcher(CascadeWatcher):
    """``CascadeWatcher``, timing its callbacks."""

    def __init__(self, guard: Guard) -> None:
        super().__init__(guard)
        self.clocks = Clocks()
        self.checks = Clocks()  # inside Guard.check, called from the watcher's hooks
        check = guard.check
        guard.check = timed(check, self.checks)  # type: ignore[method-assign]

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
        w, c = time.perf_counter(), time.thread_time()
        try:
            super().on_chain_start(*args, **kwargs)
        finally:
            self.clocks.add(time.thread_time() - c, time.perf_counter() - w)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        w, c = time.perf_counter(), time.thread_time()
        try:
            super().on_chain_end(outputs, run_id=run_id, **kwargs)
        finally:
            self.clocks.add(time.thread_time() - c, time.perf_counter() - w)


def handoff_policy() -> Policy:
    return Policy(
        [
            allow("handoff", agents="supervisor", args={"to": OneOf(list(WORKERS))}),
            allow("handoff", agents=list(WORKERS), args={"to": OneOf(["supervisor"])}),
        ]
    )


def window(rng: random.Random, size: int) -> str:
    """A window of ``bench_cascade``'s corpus of about ``size`` characters, cut at word
    boundaries (``prose`` with a given length)."""
    text = corpus()
    start = rng.randrange(len(text) - size - 200)
    start = text.find(" ", start) + 1
    end = text.rfind(" ", start, start + size)
    return text[start : end if end > start else start + size]


class Team:
    """The node functions of one variant (their own clocks). Their texts: from a shared pool
    by (run key, step), or, once ``fresh`` is set for a run, that list by step."""

    def __init__(self, pool: list[str], dispatches: int) -> None:
        self.pool = pool
        self.dispatches = dispatches
        self.fresh: list[str] | None = None
        self.clocks = Clocks()  # time inside the node functions themselves

    def _text(self, state: MessagesState) -> tuple[int, str]:
        messages = state["messages"]
        step = len(messages) - 1
        if self.fresh is not None:
            return step, self.fresh[step]
        key = int(str(messages[0].content).rsplit("#", 1)[1])
        return step, self.pool[(key * 31 + step) % len(self.pool)]

    def supervisor(self, state: MessagesState) -> Command[Any]:
        step, text = self._text(state)
        if step >= 2 * self.dispatches:
            return Command(goto=END, update={"messages": [AIMessage(text, name="supervisor")]})
        worker = WORKERS[(step // 2) % len(WORKERS)]
        return Command(goto=worker, update={"messages": [AIMessage(text, name="supervisor")]})

    def worker(self, name: str) -> Callable[[MessagesState], Command[Any]]:
        def body(state: MessagesState) -> Command[Any]:
            _, text = self._text(state)
            return Command(goto="supervisor", update={"messages": [AIMessage(text, name=name)]})

        body.__name__ = name
        return body

    def nodes(self) -> dict[str, Callable[..., Any]]:
        found: dict[str, Callable[..., Any]] = {"supervisor": self.supervisor}
        found.update((w, self.worker(w)) for w in WORKERS)
        return {n: timed(f, self.clocks) for n, f in found.items()}


def graph(nodes: dict[str, Any], checkpointer: InMemorySaver) -> Any:
    builder = StateGraph(MessagesState)
    for name, node in nodes.items():
        builder.add_node(name, node)
    builder.add_edge(START, "supervisor")
    return builder.compile(checkpointer=checkpointer)


class Variant:
    def __init__(
        self,
        name: str,
        team: Team,
        *,
        guard: Guard | None = None,
        callbacks: list[Any] | None = None,
    ) -> None:
        self.name = name
        self.team = team
        self.guard = guard
        self.callbacks = callbacks or []
        self.wrappers = Clocks()  # time inside GuardedNode._call (B, C)
        nodes: dict[str, Any] = team.nodes()
        if guard is not None:
            nodes = {
                n: TimedGuardedNode(f, guard, self.wrappers).as_runnable() for n, f in nodes.items()
            }
        self.checkpointer = InMemorySaver()
        self.graph = graph(nodes, self.checkpointer)
        self.per_step: list[float] = []  # ms per hand-off, one per round
        self.total = 0.0  # seconds of timed runs
        self.runs = 0
        self.bookkeeping = Clocks()  # BOOKKEEPING's time during this variant's runs

    @property
    def monitor(self) -> TimedMonitor | None:
        cascade = self.guard.cascade if self.guard is not None else None
        if cascade is None and self.callbacks and isinstance(self.callbacks[0], TimedWatcher):
            cascade = self.callbacks[0].guard.cascade
        return cascade if isinstance(cascade, TimedMonitor) else None

    @property
    def watcher(self) -> TimedWatcher | None:
        found = [c for c in self.callbacks if isinstance(c, TimedWatcher)]
        return found[0] if found else None

    def run(self, key: int, handoffs: int, texts: list[str] | None = None) -> float:
        self.team.fresh = texts
        self.runs += 1
        thread = f"{self.name[0]}-{self.runs}"
        config: dict[str, Any] = {
            "configurable": {"thread_id": thread},
            "recursion_limit": handoffs + 10,
        }
        if self.callbacks:
            config["callbacks"] = self.callbacks
        BOOKKEEPING.zero()
        t0 = time.perf_counter()
        out = self.graph.invoke({"messages": [("user", f"task #{key}")]}, config)
        elapsed = time.perf_counter() - t0
        self.bookkeeping.add(BOOKKEEPING.cpu, BOOKKEEPING.wall)
        assert len(out["messages"]) == handoffs + 2, len(out["messages"])
        # Keep memory flat over the run (untimed): the thread's checkpoints, and its scope
        # in the cascade monitor (which nothing else forgets before 10,000 newer scopes).
        self.checkpointer.delete_thread(thread)
        if self.monitor is not None:
            self.monitor.reset(thread)
        return elapsed

    def zero(self) -> None:
        self.team.clocks.zero()
        self.wrappers.zero()
        for clocks in (self.monitor, self.watcher):
            if clocks is not None:
                clocks.clocks.zero()
        if self.monitor is not None:
            self.monitor.every.zero()
            self.monitor.prov.zero()
        if self.watcher is not None:
            self.watcher.checks.zero()
        self.bookkeeping = Clocks()
        self.total = 0.0


def fresh_texts(rng: random.Random, count: int, variants: int) -> list[list[str]]:
    """``count`` texts for each of ``variants`` variants: the same log-uniform lengths
    (200-4,000 characters), each variant its own windows of the corpus."""
    sizes = [int(math.exp(rng.uniform(math.log(200), math.log(4000)))) for _ in range(count)]
    return [[window(rng, n) for n in sizes] for _ in range(variants)]


def us(seconds: float, steps: int) -> float:
    return seconds / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 rounds x 3 runs")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--runs", type=int, default=15, help="graph runs per variant and round")
    parser.add_argument("--dispatches", type=int, default=6, help="supervisor dispatches per run")
    parser.add_argument(
        "--texts",
        choices=("fresh", "pool"),
        default="fresh",
        help="texts nobody has seen for every run of every variant, or a shared pool of 512",
    )
    opts = parser.parse_args()
    rounds, runs = (3, 3) if opts.quick else (opts.rounds, opts.runs)
    handoffs = 2 * opts.dispatches

    _timed_bookkeeping()
    rng = random.Random(42)
    pool = [prose(rng) for _ in range(POOL_SIZE)]
    variants = [
        Variant("A bare graph", Team(pool, opts.dispatches)),
        Variant(
            "B guard_node, no cascade",
            Team(pool, opts.dispatches),
            guard=Guard(handoff_policy()),
        ),
        Variant(
            "C guard_node + cascade",
            Team(pool, opts.dispatches),
            guard=Guard(handoff_policy(), cascade=TimedMonitor()),
        ),
        Variant("D no-op callback", Team(pool, opts.dispatches), callbacks=[NoopHandler()]),
        Variant(
            "E CascadeWatcher",
            Team(pool, opts.dispatches),
            callbacks=[TimedWatcher(Guard(Policy([]), cascade=TimedMonitor()))],
        ),
    ]
    fresh = opts.texts == "fresh"
    key = 0
    for v in variants:  # warm up
        for _ in range(2):
            v.run(key, handoffs, fresh_texts(rng, handoffs + 1, 1)[0] if fresh else None)
            key += 1
        v.zero()
    chars: list[int] = []
    started = time.perf_counter()
    for _ in range(rounds):
        elapsed = {v.name: 0.0 for v in variants}
        for _ in range(runs):
            key += 1
            # the same task (text lengths; with --texts pool the same texts) for every variant
            batch = fresh_texts(rng, handoffs + 1, len(variants)) if fresh else None
            if batch is not None:
                chars += [len(t) for t in batch[0]]
            for i, v in enumerate(variants):
                elapsed[v.name] += v.run(key, handoffs, batch[i] if batch is not None else None)
        for v in variants:
            v.total += elapsed[v.name]
            v.per_step.append(elapsed[v.name] / (runs * handoffs) * 1000)
    wall = time.perf_counter() - started

    mean_chars = statistics.fmean(chars) if chars else statistics.fmean(len(t) for t in pool)
    source = "fresh texts every run" if fresh else f"texts from a shared pool of {POOL_SIZE}"
    print(
        f"{versions('langchain')}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n"
        f"supervisor + 3 workers, {handoffs} hand-offs per run (Command(goto)), InMemorySaver, "
        f"{source}, {mean_chars:.0f} characters on average; {rounds} rounds x {runs} runs "
        f"per variant, interleaved run by run; {wall:.0f} s"
    )
    bare = variants[0]
    a = statistics.median(bare.per_step)
    print(f"\n{'variant':<28}{'ms per hand-off: min / median / max':>38}{'median vs A':>13}")
    for v in variants:
        print(f"{v.name:<28}{fmt(v.per_step):>38}{statistics.median(v.per_step) / a:>12.3f}x")
    print("per-round ratios, min / median / max:")
    by = {v.name[0]: v for v in variants}
    for x, y in (("B", "A"), ("C", "A"), ("C", "B"), ("D", "A"), ("E", "A"), ("E", "D")):
        ratios = [p / q for p, q in zip(by[x].per_step, by[y].per_step, strict=True)]
        print(f"  {x}/{y}: {fmt(ratios)}")

    steps = rounds * runs * handoffs
    b_step = statistics.median(by["B"].per_step)

    def share(seconds: float) -> str:
        per = seconds / steps * 1e3  # ms per hand-off
        return f"{per / a * 100:5.1f}% of A, {per / b_step * 100:5.1f}% of B"

    print(
        "\nthe guard's own time, in-process (thread CPU), per hand-off, and as a share of the "
        "median step of A (bare) and of B (guard_node without the cascade):"
    )
    own: dict[str, float] = {}
    for v in variants[1:3]:
        own[v.name[0]] = v.wrappers.cpu - v.team.clocks.cpu
        print(f"  {v.name}: {us(own[v.name[0]], steps):6.1f} us    ({share(own[v.name[0]])})")
        monitor = v.monitor
        prov = monitor.prov.cpu if monitor is not None else 0.0
        kept = v.bookkeeping.cpu - prov
        print(
            f"    causal bookkeeping (activations, arrivals, messages): {us(kept, steps):6.1f} us"
            f"    ({share(kept)})"
        )
        if monitor is not None:
            m = monitor.every
            print(
                f"    the monitor's own cost (observe, observe_call, observe_handoff, "
                f"provenance): {us(m.cpu, steps):6.1f} us    ({share(m.cpu)})\n"
                f"      of which observe (and observe_handoff) "
                f"{us(monitor.clocks.cpu, steps):.1f} us "
                f"({monitor.clocks.calls / (rounds * runs):.0f} messages per run), "
                f"{m.calls / (rounds * runs):.0f} monitor calls per run"
            )
    inc = own["C"] - own["B"]
    print(f"  the cascade's increment, C - B: {us(inc, steps):6.1f} us    ({share(inc)})")
    e = by["E"]
    watcher = e.watcher
    assert watcher is not None
    monitor = e.monitor
    assert monitor is not None
    w = watcher.clocks
    m = monitor.every
    checks = watcher.checks.cpu - monitor.clocks.cpu  # observe runs inside Guard.check
    rest = w.cpu - watcher.checks.cpu - monitor.prov.cpu
    print(
        f"  {e.name}: {us(w.cpu, steps):6.1f} us    ({share(w.cpu)}) in on_chain_start/end "
        f"({w.calls / (rounds * runs):.0f} calls per run)\n"
        f"    the monitor's own cost (observe, provenance): {us(m.cpu, steps):6.1f} us    "
        f"({share(m.cpu)})\n"
        f"      of which observe {us(monitor.clocks.cpu, steps):.1f} us "
        f"({monitor.clocks.calls / (rounds * runs):.0f} messages per run)\n"
        f"    Guard.check apart from the monitor (kill switch, quarantine, breaker): "
        f"{us(checks, steps):6.1f} us\n"
        f"    the watcher's bookkeeping (tasks, senders, messages): {us(rest, steps):6.1f} us"
        f"    ({share(rest)})"
    )
    trips = [len(v.guard.trips()) for v in variants if v.guard is not None]
    trips.append(len(watcher.guard.trips()))
    print(f"trips recorded (B, C, E; a benign team: expected none): {trips}")


if __name__ == "__main__":
    main()
