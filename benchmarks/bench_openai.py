"""Overhead of ``GuardedTools`` per tool call of a plain ``openai`` tool loop, beside the bare
SDK loop, both with the real ``openai`` client over real HTTP to the local scripted server
(tests/openai_server.py, loopback, in this process).

Run:  python benchmarks/bench_openai.py [--rounds 15] [--runs 10] [--steps 10]

Method (see BENCHMARKING.md): interleaved rounds of whole runs — the bare loop (the SDK's own
loop: ``json.loads`` the arguments, call the function, append the tool message), the same
loop validating arguments with pydantic (``validate_call``: what a careful app does anyway,
the nearest feature), and the guarded loop (``before_model`` + ``run``) — medians with
min/max; and the guard's own share of a step, measured in-process: time inside
``before_model`` and ``run`` minus time inside the tool bodies, as wall clock and as the
calling thread's CPU time (the server answers on another thread).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import openai
from pydantic import validate_call

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from openai_server import Call, Turn, serve

from guardrails_plugin import Budget, Guard, Policy, allow, deny
from guardrails_plugin.openai import GuardedTools
from guardrails_plugin.scopes import Number, OneOf

TOOL_TIME = [0.0, 0.0]  # wall, thread CPU inside the tool body (subtracted from the guard's)


def lookup(n: int) -> str:
    """Look a number up."""
    w, c = time.perf_counter(), time.thread_time()
    out = f"value {n}"
    TOOL_TIME[0] += time.perf_counter() - w
    TOOL_TIME[1] += time.thread_time() - c
    return out


def policy() -> Policy:
    rules = [allow(f"tool_{i}", args={"n": Number(le=i)}) for i in range(60)]
    rules += [deny(f"danger_{i}_*") for i in range(20)]
    rules += [allow(f"other_{i}", args={"m": OneOf(["a", "b"])}) for i in range(19)]
    rules.append(allow("lookup", args={"n": Number(ge=0, le=10_000)}))
    budgets = [
        Budget.calls(10**9, tools="lookup", per="run"),
        Budget.tokens(10**12, of="model", per="thread"),
    ]
    return Policy(rules, budgets=budgets)


TOOLS_PARAM = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
            },
        },
    }
]


def script(steps: int) -> list[Turn]:
    return [Turn(tool_calls=[Call("lookup", {"n": i})]) for i in range(steps)] + [Turn(text="ok")]


def bare(llm: openai.OpenAI, _: Any) -> None:
    registry = {"lookup": lookup}
    messages: list[Any] = [{"role": "user", "content": "go"}]
    while True:
        answer = llm.chat.completions.create(model="m", messages=messages, tools=TOOLS_PARAM)
        message = answer.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return
        for tc in message.tool_calls:
            out = registry[tc.function.name](**json.loads(tc.function.arguments))
            messages.append({"role": "tool", "tool_call_id": tc.id, "content": out})


VALIDATED = {"lookup": validate_call(lookup)}


def validated(llm: openai.OpenAI, _: Any) -> None:
    messages: list[Any] = [{"role": "user", "content": "go"}]
    while True:
        answer = llm.chat.completions.create(model="m", messages=messages, tools=TOOLS_PARAM)
        message = answer.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return
        for tc in message.tool_calls:
            out = VALIDATED[tc.function.name](**json.loads(tc.function.arguments))
            messages.append({"role": "tool", "tool_call_id": tc.id, "content": out})


class Share:
    wall = cpu = 0.0


def guarded(llm: openai.OpenAI, tools: GuardedTools) -> None:
    tools = tools.bind()  # a fresh run
    messages: list[Any] = [{"role": "user", "content": "go"}]
    while True:
        w, c = time.perf_counter(), time.thread_time()
        before = TOOL_TIME[:]
        tools.before_model()
        params = tools.tools()
        Share.wall += time.perf_counter() - w
        Share.cpu += time.thread_time() - c
        answer = llm.chat.completions.create(model="m", messages=messages, tools=params)
        messages.append(answer.choices[0].message.model_dump(exclude_none=True))
        w, c = time.perf_counter(), time.thread_time()
        before = TOOL_TIME[:]
        outputs = tools.run(answer)
        Share.wall += time.perf_counter() - w - (TOOL_TIME[0] - before[0])
        Share.cpu += time.thread_time() - c - (TOOL_TIME[1] - before[1])
        if not outputs:
            return
        messages.extend(outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    options = parser.parse_args()
    guard = Guard(policy())
    tools = GuardedTools(guard, [lookup], thread_id="bench")
    variants = {"bare SDK loop": bare, "+ pydantic validation": validated, "guarded": guarded}
    per_step: dict[str, list[float]] = {name: [] for name in variants}
    cpu_step: dict[str, list[float]] = {name: [] for name in variants}
    with serve() as server:
        llm = openai.OpenAI(base_url=server.base_url, api_key="bench", max_retries=0)
        for loop in variants.values():  # warm-up
            server.push(*script(options.steps))
            loop(llm, tools)
        Share.wall = Share.cpu = 0.0
        guarded_wall = guarded_cpu = 0.0
        for _ in range(options.rounds):
            for name, loop in variants.items():
                server.reset()
                started, cpu = time.perf_counter(), time.thread_time()
                for _run in range(options.runs):
                    server.push(*script(options.steps))
                    loop(llm, tools)
                elapsed = time.perf_counter() - started
                spent = time.thread_time() - cpu
                steps = options.runs * options.steps
                per_step[name].append(elapsed / steps * 1e3)
                cpu_step[name].append(spent / steps * 1e3)
                if name == "guarded":
                    guarded_wall += elapsed
                    guarded_cpu += spent
    steps_total = options.rounds * options.runs * options.steps
    print(
        f"openai {version('openai')}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores; {options.rounds} rounds x {options.runs} runs x "
        f"{options.steps} tool-call steps per variant (+1 final answer per run)"
    )
    base = statistics.median(per_step["bare SDK loop"])
    base_cpu = statistics.median(cpu_step["bare SDK loop"])
    print(
        f"{'variant':<24} {'ms/step min / median / max':>30} {'ratio':>7} {'client CPU ms/step':>19}"
    )
    for name in variants:
        xs = per_step[name]
        med = statistics.median(xs)
        cpu = statistics.median(cpu_step[name])
        print(
            f"{name:<24} {min(xs):8.3f} / {med:6.3f} / {max(xs):6.3f} {med / base:7.2f}x"
            f" {cpu:8.3f} ({cpu / base_cpu:.2f}x)"
        )
    print(
        f"guard's own share of a guarded step: wall {Share.wall / guarded_wall:.2%} "
        f"({Share.wall / steps_total * 1e6:.0f} µs/step), client-thread CPU "
        f"{Share.cpu / guarded_cpu:.2%} ({Share.cpu / steps_total * 1e6:.0f} µs/step)"
    )


if __name__ == "__main__":
    main()
