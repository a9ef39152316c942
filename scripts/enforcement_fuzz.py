"""The model controls the tool call, at volume: generated tool calls through every adapter,
checking that no tool body ever receives arguments the policy would deny.

Uses the harness of ``tests/enforcement.py`` (real tools with pydantic schemas that record
what they receive, an argument-scoped policy, the callback handler, ``GuardMiddleware`` in a
``create_agent`` agent, a ``GuardedToolNode`` graph) with a seeded random generator (the
test suite draws from the same pools with hypothesis)::

    python scripts/enforcement_fuzz.py [--calls 100000] [--seed 1]

Exit status 1 if any tool ran with arguments the policy denies (each is printed).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from enforcement import KEYS, TOOL_VALUES, TRICKY_KEYS, VALUES, Target, violations

GOOD: dict[str, Any] = {
    "path": "/srv/data/ok.txt",
    "file_path": "/srv/data/ok.txt",
    "encoding": "utf-8",
    "url": "https://docs.example.com/a",
    "timeout": "5",
    "headers": {"X": "1"},
    "to": "a@example.com",
    "recipients": ["a@example.com"],
    "subject": "hi",
    "command": "ls",
}
"""Values within the policy, per key: well-formed calls use them often."""

_UNICODE = "aé中\u200b\u0430\U0001f600 _-$\x00"


def _text(rng: random.Random, n: int = 8) -> str:
    return "".join(rng.choice(_UNICODE) for _ in range(rng.randint(0, n)))


def _value(rng: random.Random, name: str, depth: int = 0) -> Any:
    r = rng.random()
    if r < 0.5:
        return rng.choice(TOOL_VALUES[name])
    if r < 0.7:
        return rng.choice(VALUES)
    if r < 0.8:
        return _text(rng)
    if r < 0.85:
        return rng.choice([rng.randint(-3, 100), True, None, 2.5])
    if depth < 2 and r < 0.93:
        return [_value(rng, name, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 2:
        return {rng.choice(KEYS[name]): _value(rng, name, depth + 1) for _ in range(2)}
    return rng.choice(VALUES)


def _key(rng: random.Random, name: str) -> str:
    r = rng.random()
    if r < 0.65:
        return rng.choice(KEYS[name])
    if r < 0.9:
        return rng.choice(TRICKY_KEYS)
    return _text(rng, 6) or "k"


def _args(rng: random.Random, name: str) -> dict[str, Any]:
    """Half the time a well-formed call (the tool's own keys, values in or out of policy)
    with 0-2 mutations; else anything."""
    if rng.random() < 0.5:
        return {_key(rng, name): _value(rng, name) for _ in range(rng.randint(0, 4))}
    own = KEYS[name]
    args = {
        k: GOOD[k] if rng.random() < 0.7 else rng.choice(TOOL_VALUES[name])
        for k in rng.sample(own, rng.randint(1, len(own)))
    }
    for _ in range(rng.choice([0, 0, 1, 2])):
        args[_key(rng, name)] = _value(rng, name)
    return args


def _input(rng: random.Random) -> tuple[str, Any]:
    name = rng.choice(sorted(KEYS))
    r = rng.random()
    if r < 0.6:
        return name, _args(rng, name)
    if r < 0.8:
        return name, json.dumps(_args(rng, name))
    return name, rng.choice([*VALUES, *[v for v in TOOL_VALUES[name] if isinstance(v, str)]])


def _turn(rng: random.Random) -> list[dict[str, Any]]:
    calls = []
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(sorted(KEYS))
        cid = rng.choice(["call_0", "call_1", "c", f"id{rng.randint(0, 9999)}"])
        calls.append({"name": name, "args": _args(rng, name), "id": cid, "type": "tool_call"})
    return calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    opts = parser.parse_args()
    logging.disable(logging.WARNING)  # LangChain logs each denial a callback raises
    rng = random.Random(opts.seed)
    targets = [Target("callback"), Target("middleware"), Target("toolnode")]
    sent = dict.fromkeys((t.kind for t in targets), 0)
    ran = dict.fromkeys(sent, 0)
    found: list[tuple[str, Any]] = []
    started = time.perf_counter()
    total = 0
    report_at = 10_000
    while total < opts.calls:
        for target in targets:
            target.received.clear()
            if target.kind == "callback":
                target.invoke(*_input(rng))
                n = 1
            else:
                calls = _turn(rng)
                target.turn(calls)
                n = len(calls)
            sent[target.kind] += n
            ran[target.kind] += len(target.received)
            total += n
            for v in violations(target.received):
                found.append((target.kind, v))
                print(f"VIOLATION via {target.kind}: {v}", flush=True)
        if total >= report_at:
            report_at += 10_000
            print(f"  {total} calls, {time.perf_counter() - started:.0f}s", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(f"seed {opts.seed}: {total} generated tool calls in {elapsed:.0f}s")
    print(f"{'adapter':<12}{'calls':>9}{'tools ran':>11}{'errors':>8}")
    for t in targets:
        print(f"{t.kind:<12}{sent[t.kind]:>9}{ran[t.kind]:>11}{t.errors:>8}")
    print(f"tool runs with arguments the policy denies: {len(found)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
