"""Cascade detector cost: µs per message and messages per second, 10 / 100 / 1000 agents.

    /work/venv/bin/python benchmarks/bench_cascade.py

Traffic is random but shaped like a team's: each message goes from an agent to one of its
few usual peers, in one of 50 threads, with 80-1,500 characters of text drawn from a
vocabulary (a quarter of the messages quote the previous message they answer, lightly
edited), 20 messages per simulated second. Reported per message: the monitor with the
default signals, each signal alone, and the MinHash sketch (its largest share).
"""

from __future__ import annotations

import random
import time

from guardrails_plugin import AgentMessage
from guardrails_plugin.cascade import CascadeMonitor, Cycles, Depth, Replication, Sketcher, Storms

WORDS = [
    "the",
    "report",
    "shows",
    "revenue",
    "costs",
    "growth",
    "risk",
    "supplier",
    "contract",
    "invoice",
    "customer",
    "order",
    "please",
    "review",
    "summarise",
    "check",
    "confirm",
    "send",
    "update",
    "draft",
    "plan",
    "search",
    "result",
    "data",
    "table",
    "analysis",
    "figure",
    "meeting",
    "deadline",
    "budget",
    "approve",
    "reject",
    "because",
    "however",
    "therefore",
    "next",
    "step",
    "agent",
    "tool",
    "query",
    "answer",
    "question",
    "context",
    "source",
    "quote",
    "section",
    "chapter",
]


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def traffic(agents: int, count: int, seed: int = 7) -> list[AgentMessage]:
    rng = random.Random(seed)
    names = [f"agent-{i}" for i in range(agents)]
    peers = {n: rng.sample(names, min(4, agents)) for n in names}
    last: dict[str, str] = {}
    out = []
    for _ in range(count):
        sender = rng.choice(names)
        recipient = rng.choice([p for p in peers[sender] if p != sender] or names)
        if sender in last and rng.random() < 0.25:
            words = last[sender].split()
            words[rng.randrange(len(words))] = rng.choice(WORDS)
            text = " ".join(words)
        else:
            size = rng.randint(80, 1500)
            text = " ".join(rng.choice(WORDS) for _ in range(size // 6))
        last[recipient] = text
        depth = rng.randint(1, 6)
        path = tuple(rng.sample(names, min(depth, agents)))
        out.append(
            AgentMessage(sender, recipient, text, thread_id=f"t{rng.randrange(50)}", path=path)
        )
    return out


def run(
    monitor: CascadeMonitor, messages: list[AgentMessage], clock: SimClock
) -> tuple[float, int]:
    alarms = 0
    started = time.perf_counter()
    for m in messages:
        clock.now += 0.05
        alarms += len(monitor.observe(m))
    return time.perf_counter() - started, alarms


def main() -> None:
    count = 5_000
    print(f"{count} messages per row, 50 threads, 20 messages per simulated second\n")
    print(f"{'agents':>6}  {'monitor':<22} {'µs/msg':>8} {'msgs/s':>10} {'alarms':>7}")
    for agents in (10, 100, 1000):
        messages = traffic(agents, count)
        configs = {
            "default signals": lambda c: None,
            "Cycles only": lambda c: [Cycles()],
            "Storms only": lambda c: [Storms(clock=c)],
            "Replication only": lambda c: [Replication()],
            "Depth only": lambda c: [Depth()],
        }
        for label, make in configs.items():
            clock = SimClock()
            signals = make(clock)
            if signals is None:
                signals = [Cycles(), Storms(clock=clock), Replication(), Depth()]
            monitor = CascadeMonitor(signals)
            run(monitor, messages[:200], clock)  # warm up
            monitor = CascadeMonitor(
                [type(s)() if not isinstance(s, Storms) else Storms(clock=clock) for s in signals]
            )
            elapsed, alarms = run(monitor, messages, clock)
            print(
                f"{agents:>6}  {label:<22} {elapsed / count * 1e6:>8.1f} "
                f"{count / elapsed:>10,.0f} {alarms:>7}"
            )
        print()
    sketcher = Sketcher()
    texts = [m.content for m in traffic(10, 2000)]
    started = time.perf_counter()
    for t in texts:
        sketcher.sketch(t)
    per = (time.perf_counter() - started) / len(texts) * 1e6
    mean = sum(map(len, texts)) / len(texts)
    print(
        f"MinHash sketch alone (num_perm=64, 5-byte shingles, mean {mean:.0f} chars): {per:.1f} µs"
    )


if __name__ == "__main__":
    main()
