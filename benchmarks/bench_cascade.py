"""Cascade detector cost per message, and messages per second, with 10 / 100 / 1000 agents.

Run:  python benchmarks/bench_cascade.py [--quick] [--messages 3000] [--history 100000]
      [--rotate N] [--part 1|2|3 ...]          (~60 s; --quick ~10 s)

Traffic (``Traffic``) is random but shaped like a team's: N agents, each writing to a few
usual peers (4), in one thread or spread over 50 threads (the monitor's scopes). The texts
are English prose of log-uniform length 200-4,000 characters (median ~900), cut from the
docstrings of the standard library: 65% new text, 25% replies quoting up to 300 characters
of the message the sender received last, 10% forwards of that message lightly edited (the
near-duplicates Replication and Cycles look for: a forward of a forward of a forward is a
payload travelling three hops, and trips Replication). Delegation paths are 0-3 agents
long. Each thread carries ~0.5 messages per simulated second (Storms reads a simulated
clock).

1. **Per message, N = 10, 100, 1000 agents, 1 and 50 threads**: ``CascadeMonitor.observe``
   alone (the default signals: Cycles, Storms, Replication, Escalation, Depth), and
   ``Guard.check(AgentMessage)`` — kill-switch read, quarantine check, monitor, breaker —
   with a ``MemoryStore`` and with a ``SQLiteStore`` file. The breaker only records trips
   (``Breaker(default="record")``) so that a trip does not pause the thread and change
   what the rest of the run measures; trips are counted. The three variants see the same
   messages, interleaved in chunks of 250 (A B C A B C ...). Each call is timed alone
   (``perf_counter_ns``): µs median and p95; messages per second = 1 / mean (one thread).
2. **History**: ``--history`` messages (N = 100, 50 threads living for the whole run, so
   each scope sees ~2,000 messages and its bounded memories fill up; ``--rotate`` ends
   threads and starts new ones instead): the per-message cost in windows of 1,000
   messages, early and late, for the monitor (each signal timed in place) and
   ``Guard.check`` on SQLite; then the memory the monitors hold.
3. **Where the time goes**: the monitor's parts in each cell of part 1 (each signal timed
   in place, the MinHash sketch apart), and the sketch alone by text size — the vectorised
   ``Sketcher.sketch`` against ``Sketcher._reference`` (datasketch's own
   ``MinHash.update_batch``, the implementation before it).

Full collections of the garbage collector land in the p95 and the mean: the corpus and
the imported modules are frozen (``gc.freeze``) first, so their pauses are the cost of
what the measured code keeps alive.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import inspect
import math
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from guardrails_plugin import AgentMessage, Guard, Policy
from guardrails_plugin.cascade import (
    Breaker,
    CascadeMonitor,
    Cycles,
    Depth,
    Escalation,
    Infection,
    Signal,
    Sketcher,
    Storms,
    default_signals,
)
from guardrails_plugin.store import MemoryStore, SQLiteStore

CORPUS_MODULES = (
    "argparse",
    "asyncio",
    "collections",
    "concurrent.futures",
    "contextlib",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "email.message",
    "enum",
    "functools",
    "http.client",
    "inspect",
    "io",
    "itertools",
    "json",
    "logging",
    "os",
    "pathlib",
    "pickle",
    "re",
    "shutil",
    "socket",
    "sqlite3",
    "ssl",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "threading",
    "unittest",
    "urllib.request",
    "uuid",
    "zipfile",
)


@functools.cache
def corpus() -> str:
    """~490 kB of English prose: the docstrings (longer than 80 characters) of some standard
    library modules and their public classes, functions and methods, each once."""
    docs: dict[str, None] = {}
    for name in CORPUS_MODULES:
        module = importlib.import_module(name)
        objects: list[Any] = [module]
        objects += [getattr(module, a) for a in sorted(dir(module)) if not a.startswith("_")]
        for obj in list(objects):
            if inspect.isclass(obj):
                objects += [getattr(obj, a, None) for a in sorted(vars(obj)) if a[:1] != "_"]
        for obj in objects:
            doc = inspect.getdoc(obj) if obj is not None else None
            if doc and len(doc) > 80:
                docs.setdefault(doc, None)
    return "\n\n".join(docs)


def prose(rng: random.Random, low: int = 200, high: int = 4000) -> str:
    """A window of the corpus, log-uniform length in [low, high], cut at word boundaries."""
    text = corpus()
    size = int(math.exp(rng.uniform(math.log(low), math.log(high))))
    start = rng.randrange(len(text) - high - 200)
    start = text.find(" ", start) + 1
    end = text.rfind(" ", start, start + size)
    return text[start : end if end > start else start + size]


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Traffic:
    """An endless, seeded stream of ``(simulated time, AgentMessage)`` (see the module doc).

    ``rotate``: a thread ends after that many of its messages and a new thread takes its
    slot (None: the ``threads`` threads live for the whole stream)."""

    def __init__(
        self, agents: int, threads: int = 50, *, seed: int = 7, rotate: int | None = None
    ) -> None:
        self.rng = random.Random(seed)
        self.names = [f"agent-{i}" for i in range(agents)]
        self.peers = {
            n: [p for p in self.rng.sample(self.names, min(5, agents)) if p != n][:4]
            for n in self.names
        }
        self.threads = threads
        self.rotate = rotate
        self.generation = [0] * threads
        self.carried = [0] * threads
        self.last: dict[tuple[int, str], str] = {}  # (slot, agent) -> last text it received
        self.cause: dict[tuple[int, str], tuple[str, int]] = {}  # -> last (id, generation)
        self.now = 0.0
        self.count = 0

    def __iter__(self) -> Iterator[tuple[float, AgentMessage]]:
        return self

    def __next__(self) -> tuple[float, AgentMessage]:
        rng = self.rng
        slot = rng.randrange(self.threads)
        if self.rotate is not None and self.carried[slot] >= self.rotate:
            self.generation[slot] += 1
            self.carried[slot] = 0
            self.last = {k: v for k, v in self.last.items() if k[0] != slot}
            self.cause = {k: v for k, v in self.cause.items() if k[0] != slot}
        self.carried[slot] += 1
        sender = rng.choice(self.names)
        recipient = rng.choice(self.peers[sender] or self.names)
        received = self.last.get((slot, sender))
        kind = rng.random()
        if received is not None and kind < 0.10:  # forward, lightly edited
            cut = rng.randrange(len(received))
            edit = prose(rng, 20, 60)
            text = f"FYI, see below.\n\n{received[:cut]}{edit}{received[cut + len(edit) :]}"
        elif received is not None and kind < 0.35:  # reply quoting the message received
            quote = received[: rng.randint(40, 300)]
            text = f"{prose(rng, 200, 2000)}\n\n> {quote}"
        else:
            text = prose(rng)
        self.last[(slot, recipient)] = text
        path = tuple(rng.sample(self.names, rng.randint(0, min(3, len(self.names)))))
        path = tuple(p for p in path if p not in (sender, recipient))
        self.now += 2.0 / self.threads  # ~0.5 messages per simulated second and thread
        self.count += 1
        thread = f"t{slot}" if self.rotate is None else f"t{slot}.{self.generation[slot]}"
        # causal reports, as the graph adapters make them: the parent is the last message
        # the sender received in its thread
        parent = self.cause.get((slot, sender))
        mid = f"m{self.count}"
        depth = 0 if parent is None else parent[1] + 1
        self.cause[(slot, recipient)] = (mid, depth)
        message = AgentMessage(
            sender,
            recipient,
            text,
            thread_id=thread,
            path=path,
            id=mid,
            parent=None if parent is None else parent[0],
            generation=depth,
            step=depth,
        )
        return self.now, message

    def take(self, n: int) -> list[tuple[float, AgentMessage]]:
        return [next(self) for _ in range(n)]


def signals(clock: SimClock) -> list[Signal]:
    """The default signals (``default_signals()``; none reads the clock since Storms counts
    generations, not seconds)."""
    return default_signals()


RECORD_ONLY = Breaker({"replication": "record", "infection": "record"}, default="record")


class Variant:
    """One way to feed messages: ``feed(message) -> alarms`` (or the decision), timed per
    call; its own simulated clock, set to each message's time before the call."""

    def __init__(self, name: str, make: Callable[[SimClock], Callable[[AgentMessage], Any]]):
        self.name = name
        self.clock = SimClock()
        self.feed = make(self.clock)
        self.ns: list[int] = []
        self.alarms = 0
        self.guard: Guard | None = None  # the guard variants': trips are counted in its store

    def run(self, chunk: Sequence[tuple[float, AgentMessage]]) -> None:
        clock, feed, ns = self.clock, self.feed, self.ns
        perf = time.perf_counter_ns
        for now, message in chunk:
            clock.now = now
            t0 = perf()
            out = feed(message)
            ns.append(perf() - t0)
            if isinstance(out, list):
                self.alarms += len(out)

    def trips(self) -> int:
        return self.alarms if self.guard is None else len(self.guard.trips())

    def close(self) -> None:
        if self.guard is not None:
            self.guard.store.close()


def monitor_variant() -> Variant:
    def make(clock: SimClock) -> Callable[[AgentMessage], Any]:
        return CascadeMonitor(signals(clock)).observe

    return Variant("monitor.observe", make)


def guard_variant(store: str, tmp: Path) -> Variant:
    guards: list[Guard] = []

    def make(clock: SimClock) -> Callable[[AgentMessage], Any]:
        backing: Any = MemoryStore() if store == "memory" else SQLiteStore(tmp / "guard.db")
        guard = Guard(
            Policy([]), store=backing, cascade=CascadeMonitor(signals(clock)), breaker=RECORD_ONLY
        )
        guards.append(guard)
        return guard.check

    label = "MemoryStore" if store == "memory" else "SQLiteStore"
    variant = Variant(f"Guard.check, {label}", make)
    variant.guard = guards[0]
    return variant


def stats(ns: Sequence[int]) -> tuple[float, float, float]:
    """µs median, p95, mean."""
    us = sorted(n / 1000 for n in ns)
    p95 = us[min(len(us) - 1, int(0.95 * len(us)))]
    return statistics.median(us), p95, statistics.fmean(us)


def three_variants(tmp: Path) -> list[Variant]:
    return [monitor_variant(), guard_variant("memory", tmp), guard_variant("sqlite", tmp)]


def interleaved(variants: Sequence[Variant], stream: Iterator[Any], total: int) -> None:
    done = 0
    while done < total:
        chunk = [next(stream) for _ in range(min(250, total - done))]
        for v in variants:
            v.run(chunk)
        done += len(chunk)


def per_message(count: int) -> None:
    print(
        f"\n## 1. Per message: {count} messages per cell after 200 of warm-up, variants "
        "interleaved in chunks of 250"
    )
    print(
        f"{'agents':>6} {'threads':>7}  {'variant':<24}{'µs median':>10}{'p95':>9}"
        f"{'mean':>9}{'msgs/s':>9}{'alarms':>8}"
    )
    for agents in (10, 100, 1000):
        for threads in (1, 50):
            with tempfile.TemporaryDirectory() as tmp:
                variants = three_variants(Path(tmp))
                stream = Traffic(agents, threads, seed=agents * 100 + threads)
                warm = stream.take(200)
                for v in variants:
                    v.run(warm)
                    v.ns.clear()
                before = [v.trips() for v in variants]
                interleaved(variants, stream, count)
                for v, b in zip(variants, before, strict=True):
                    med, p95, mean = stats(v.ns)
                    print(
                        f"{agents:>6} {threads:>7}  {v.name:<24}{med:>10.1f}{p95:>9.1f}"
                        f"{mean:>9.1f}{1e6 / mean:>9,.0f}{v.trips() - b:>8}"
                    )
                    v.close()


class TimedSketcher(Sketcher):
    """A ``Sketcher`` adding up the time spent in ``sketch``."""

    __slots__ = ("spent",)

    def __init__(self) -> None:
        super().__init__()
        self.spent = 0

    def sketch(self, text: str) -> Any:
        t0 = time.perf_counter_ns()
        try:
            return super().sketch(text)
        finally:
            self.spent += time.perf_counter_ns() - t0


class TimedSignal:
    """A signal whose trackers note, per message, the time spent in their ``observe``
    minus the time spent sketching there (the sketch is counted apart). Public protocol
    only (``Signal``: ``name`` and ``track()``; ``Tracker``: ``observe``)."""

    def __init__(self, inner: Any, sketcher: TimedSketcher) -> None:
        self.inner = inner
        self.sketcher = sketcher
        self.ns: list[int] = []

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def track(self) -> Any:
        tracker = self.inner.track()
        if hasattr(tracker, "observe_call"):
            return _TimedCallTracker(tracker, self)
        return _TimedTracker(tracker, self)


class _TimedTracker:
    def __init__(self, inner: Any, signal: TimedSignal) -> None:
        self.inner = inner
        self.signal = signal

    def observe(self, seen: Any) -> Any:
        sketcher = self.signal.sketcher
        s0, t0 = sketcher.spent, time.perf_counter_ns()
        try:
            return self.inner.observe(seen)
        finally:
            self.signal.ns.append(time.perf_counter_ns() - t0 - (sketcher.spent - s0))


class _TimedCallTracker(_TimedTracker):
    def observe_call(self, *args: Any) -> Any:
        return self.inner.observe_call(*args)


def timed_monitor(clock: SimClock) -> tuple[CascadeMonitor, dict[str, list[int]], TimedSketcher]:
    """A monitor with the default signals, each timed in place (``TimedSignal``; the
    wrappers add ~2 µs per message), sharing one ``TimedSketcher``. ``parts`` maps each
    signal's name to its per-message ns (sketching excluded); the caller notes the
    sketch's per-message ns under ``"sketch"``."""
    sketcher = TimedSketcher()
    inner: list[Signal] = [
        Cycles(),
        Storms(),
        Infection(),
        Escalation(sketcher=sketcher),
        Depth(),
    ]
    timed = [TimedSignal(x, sketcher) for x in inner]
    parts: dict[str, list[int]] = {"sketch": []}
    parts.update((t.name, t.ns) for t in timed)
    return CascadeMonitor(timed), parts, sketcher


def timed_variant(
    name: str, parts: dict[str, list[int]], wrap: Callable[[CascadeMonitor], Any]
) -> Variant:
    """``wrap(monitor)`` (the monitor itself, or a guard around it) fed message by
    message, its monitor's parts noted in ``parts``."""

    def make(clock: SimClock) -> Callable[[AgentMessage], Any]:
        monitor, timed, sketcher = timed_monitor(clock)
        parts.update(timed)
        target = wrap(monitor)
        call = target.observe if isinstance(target, CascadeMonitor) else target.check
        sketches = parts["sketch"]

        def feed(message: AgentMessage) -> Any:
            s0 = sketcher.spent
            out = call(message)
            sketches.append(sketcher.spent - s0)
            return out

        return feed

    variant = Variant(name, make)
    return variant


def timed_monitor_variant() -> tuple[Variant, dict[str, list[int]]]:
    """``monitor.observe`` with each signal timed, and the sketch apart."""
    parts: dict[str, list[int]] = {}
    return timed_variant("monitor.observe (timed)", parts, lambda m: m), parts


def history(total: int, rotate: int | None) -> None:
    life = (
        f"50 threads at a time, a thread ending after {rotate} of its messages"
        if rotate
        else "50 threads for the whole run"
    )
    print(
        f"\n## 2. History: {total:,} messages to Guard.check (SQLiteStore file; each signal "
        f"of its monitor timed in place, the sketch apart), 100 agents, {life}"
    )
    marks = [m for m in (1000, 5000, 10_000, 25_000, 50_000, 75_000, 100_000) if m < total]
    marks.append(total)
    with tempfile.TemporaryDirectory() as tmp:
        parts: dict[str, list[int]] = {}
        guards: list[Guard] = []

        def guarded(monitor: CascadeMonitor) -> Guard:
            store = SQLiteStore(Path(tmp) / "guard.db")
            guards.append(Guard(Policy([]), store=store, cascade=monitor, breaker=RECORD_ONLY))
            return guards[-1]

        variant = timed_variant("Guard.check, SQLiteStore", parts, guarded)
        stream = Traffic(100, 50, seed=11, rotate=rotate)
        rss = _rss()
        started = time.perf_counter()
        interleaved([variant], stream, total)
        elapsed = time.perf_counter() - started
        (guard,) = guards
        rest = [t - sum(p[i] for p in parts.values()) for i, t in enumerate(variant.ns)]
        print("µs per message of the 1,000 messages ending at (the parts: medians)")
        print(f"{'':<36}" + "".join(f"{f'{m:,}':>14}" for m in marks))
        print(
            f"{'Guard.check, median / p95':<36}"
            + "".join(f"{_med_p95(variant.ns[m - 1000 : m]):>14}" for m in marks)
        )
        rows = {**parts, "rest (guard, store, monitor)": rest}
        for name, ns in rows.items():
            cells = "".join(f"{statistics.median(ns[m - 1000 : m]) / 1000:>14.1f}" for m in marks)
            print(f"{'  ' + name:<36}{cells}")
        assert guard.cascade is not None
        scopes = len(guard.cascade.scopes())
        print(
            f"scopes tracked at the end: {scopes}; trips recorded: {len(guard.trips())}; "
            f"{elapsed:.0f} s"
        )
        t0 = time.perf_counter()
        gc.collect()
        full = time.perf_counter() - t0
        grown = (_rss() - rss) / 1e6
        print(
            f"memory held: RSS +{grown:.0f} MB, {len(gc.get_objects()):,} objects tracked by "
            f"the collector, a full collection {full * 1000:.0f} ms; ~{grown / scopes:.2f} MB "
            "per scope (thread) kept"
        )
        guard.store.close()


def _rss() -> int:
    """Resident set size in bytes (Linux), else 0."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _med_p95(ns: Sequence[int]) -> str:
    med, p95, _ = stats(ns)
    return f"{med:.0f} / {p95:.0f}"


def breakdown(count: int) -> None:
    print(
        f"\n## 3. Where the time goes: the monitor's parts, µs per message, median of {count} "
        "messages after 200 of warm-up (each signal timed in place, the sketch apart; the "
        "timers add ~2 µs)"
    )
    names = ("sketch", "cycles", "storms", "infection", "escalation", "depth")
    print(f"{'agents':>6} {'threads':>7}{'monitor':>9}" + "".join(f"{n:>12}" for n in names))
    for agents in (10, 100, 1000):
        for threads in (1, 50):
            variant, parts = timed_monitor_variant()
            stream = Traffic(agents, threads, seed=agents * 100 + threads)
            for i in range(0, count + 200, 250):
                variant.run(stream.take(min(250, count + 200 - i)))
            cells = "".join(f"{statistics.median(parts[n][200:]) / 1000:>12.1f}" for n in names)
            med = statistics.median(variant.ns[200:]) / 1000
            print(f"{agents:>6} {threads:>7}{med:>9.1f}{cells}")

    sketcher = Sketcher()
    rng = random.Random(3)
    print(
        "\nMinHash sketch alone (num_perm=64, 5-byte shingles; µs per text, median of 7 "
        "repeats over 200 texts)"
    )
    print(f"{'text':<34}{'Sketcher.sketch':>16}{'_reference':>12}{'speed-up':>10}")
    sizes: list[tuple[str, list[str]]] = [
        (f"prose, {n:,} chars", [prose(rng, n, n + 1) for _ in range(200)])
        for n in (200, 1000, 4000)
    ]
    traffic = [m.content for _, m in Traffic(100, 50, seed=5).take(200)]
    sizes.append(("this traffic (200-4,000 chars)", traffic))
    for label, texts in sizes:
        new = _per_text(sketcher.sketch, texts)
        old = _per_text(sketcher._reference, texts)
        print(f"{label:<34}{new:>16.1f}{old:>12.1f}{old / new:>9.1f}x")


def _per_text(fn: Callable[[str], Any], texts: Sequence[str]) -> float:
    best = []
    for _ in range(7):
        t0 = time.perf_counter_ns()
        for t in texts:
            fn(t)
        best.append((time.perf_counter_ns() - t0) / len(texts) / 1000)
    return statistics.median(best)


def versions() -> str:
    names = ("datasketch", "numpy")
    found = ", ".join(f"{n} {version(n)}" for n in names)
    return f"{found}; python {platform.python_version()}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (~10 s)")
    parser.add_argument("--messages", type=int, help="per cell of parts 1 and 3 (default 3000)")
    parser.add_argument("--history", type=int, help="messages of part 2 (default 100,000)")
    parser.add_argument(
        "--part", choices=["1", "2", "3"], action="append", help="run only these parts"
    )
    parser.add_argument(
        "--rotate",
        type=int,
        metavar="N",
        help="part 2: end each thread after N of its messages and start a new one (scopes "
        "accumulate as in a long-running service; default: 50 threads for the whole run)",
    )
    opts = parser.parse_args()
    count = opts.messages or (1000 if opts.quick else 3000)
    total = opts.history or (10_000 if opts.quick else 100_000)
    parts = opts.part or ["1", "2", "3"]
    corpus()
    # The corpus and the imported modules are long-lived: keep the collector from scanning
    # them at every full collection, so that its pauses are the cost of what the measured
    # code keeps alive (they still land in the p95 and the mean).
    gc.collect()
    gc.freeze()
    print(f"{versions()}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    started = time.perf_counter()
    if "1" in parts:
        per_message(count)
    if "2" in parts:
        history(total, opts.rotate)
    if "3" in parts:
        breakdown(count)
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
