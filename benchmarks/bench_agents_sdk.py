"""Overhead of the OpenAI Agents SDK adapter per tool-call step of a real ``Runner`` run.

Run:  python benchmarks/bench_agents_sdk.py [--rounds 15] [--runs 10] [--steps 10]

Method (see BENCHMARKING.md): interleaved rounds of whole runs in one process and one event
loop — the bare agent; the agent with the SDK's own extension points the guard uses, doing
nothing (a tool input guardrail, a ``needs_approval`` callable, a wrapped invoker, agent hooks
on model turns: the framework's floor); the agent from ``guard_agent`` — medians with min/max;
and the guard's own share of the guarded step, measured in-process: time inside the
adapter's callbacks (minus the tool body) divided by step time, CPU time of the event loop's
thread and wall clock. The model is the SDK's ``ScriptedModel`` (no HTTP), the tool an async
function, so the step is the SDK's own work plus the guard's.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from agents import (
    Agent,
    AgentHooks,
    FunctionTool,
    Runner,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    function_tool,
    set_tracing_disabled,
)
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

from guardrails_plugin import Budget, Guard, Policy, allow, deny
from guardrails_plugin.agents_sdk import AgentsGuard
from guardrails_plugin.scopes import Number, OneOf


@function_tool
async def lookup(n: int) -> str:
    """Look a number up."""
    return f"value {n}"


def policy() -> Policy:
    rules = [allow(f"tool_{i}", args={"n": Number(le=i)}) for i in range(60)]
    rules += [deny(f"danger_{i}_*") for i in range(20)]
    rules += [allow(f"other_{i}", args={"m": OneOf(["a", "b"])}) for i in range(19)]
    rules.append(allow("lookup", args={"n": Number(ge=0, le=10_000)}))
    return Policy(rules, budgets=[Budget.calls(10**9, tools="lookup", per="run")])


class NoopHooks(AgentHooks[Any]):
    async def on_llm_start(self, *args: Any) -> None:
        return None

    async def on_llm_end(self, *args: Any) -> None:
        return None


def noop_agent(model: ScriptedModel) -> Agent[Any]:
    """The same extension points as the guard's, doing nothing: the framework's floor."""
    tool = copy.copy(lookup)
    inner = lookup.on_invoke_tool

    async def needs_approval(ctx: Any, params: Any, call_id: str) -> bool:
        return False

    async def guardrail(data: Any) -> ToolGuardrailFunctionOutput:
        return ToolGuardrailFunctionOutput.allow()

    async def invoke(ctx: Any, raw: str) -> Any:
        return await inner(ctx, raw)

    tool.needs_approval = needs_approval
    tool.on_invoke_tool = invoke
    tool.tool_input_guardrails = [ToolInputGuardrail(guardrail_function=guardrail, name="noop")]
    return Agent(name="worker", model=model, tools=[tool], hooks=NoopHooks())


class Timed(AgentsGuard):
    """The adapter, timing its own work: wall clock and the loop thread's CPU time inside its
    callbacks, the tool body excluded."""

    own_wall = 0.0
    own_cpu = 0.0

    async def _timed(self, fn: Callable[..., Any], *args: Any) -> Any:
        w, c = time.perf_counter(), time.thread_time()
        try:
            return await fn(*args)
        finally:
            self.own_wall += time.perf_counter() - w
            self.own_cpu += time.thread_time() - c

    async def _needs_approval(self, *args: Any) -> bool:
        return bool(await self._timed(super()._needs_approval, *args))

    async def _guardrail(self, data: Any) -> ToolGuardrailFunctionOutput:
        out: ToolGuardrailFunctionOutput = await self._timed(super()._guardrail, data)
        return out

    async def _model_turn(self, *args: Any) -> None:
        await self._timed(super()._model_turn, *args)

    async def _seen_response(self, *args: Any) -> None:
        await self._timed(super()._seen_response, *args)

    async def _invoke(
        self, tool: FunctionTool, agent: str, inner: Callable[..., Any], ctx: Any, raw: str
    ) -> Any:
        spent = [0.0, 0.0]

        async def timed_inner(c: Any, r: str) -> Any:
            w, t = time.perf_counter(), time.thread_time()
            try:
                return await inner(c, r)
            finally:
                spent[0] += time.perf_counter() - w
                spent[1] += time.thread_time() - t

        out = await self._timed(super()._invoke, tool, agent, timed_inner, ctx, raw)
        self.own_wall -= spent[0]
        self.own_cpu -= spent[1]
        return out


async def amain(opts: argparse.Namespace) -> None:
    def script() -> list[Any]:
        steps = [
            ModelStep(output=[function_call("lookup", {"n": i}, call_id=f"c{i}")])
            for i in range(opts.steps)
        ]
        return [*steps, ModelStep(output=[assistant_message("done")])]

    guard = Guard(policy())
    timed = Timed(guard, thread=None)
    variants: dict[str, Callable[[ScriptedModel], Agent[Any]]] = {
        "bare": lambda m: Agent(name="worker", model=m, tools=[lookup]),
        "no-op extension points": noop_agent,
        "guard_agent": lambda m: timed.wrap(Agent(name="worker", model=m, tools=[lookup])),
    }
    per_step: dict[str, list[float]] = {name: [] for name in variants}
    cpu_step: dict[str, list[float]] = {name: [] for name in variants}
    totals = dict.fromkeys(variants, 0.0)
    cpu_totals = dict.fromkeys(variants, 0.0)

    async def run(make: Callable[[ScriptedModel], Agent[Any]]) -> tuple[float, float]:
        agent = make(ScriptedModel(script()))
        t0, c0 = time.perf_counter(), time.thread_time()
        result = await Runner.run(agent, "go", max_turns=opts.steps + 2)
        elapsed, cpu = time.perf_counter() - t0, time.thread_time() - c0
        assert result.final_output == "done", result.final_output
        return elapsed, cpu

    for make in variants.values():  # warm up
        await run(make)
    timed.own_wall = timed.own_cpu = 0.0
    for _ in range(opts.rounds):
        for name, make in variants.items():
            elapsed = cpu = 0.0
            for _ in range(opts.runs):
                wall, used = await run(make)
                elapsed, cpu = elapsed + wall, cpu + used
            totals[name] += elapsed
            cpu_totals[name] += cpu
            per_step[name].append(elapsed / (opts.runs * opts.steps) * 1000)
            cpu_step[name].append(cpu / (opts.runs * opts.steps) * 1000)

    print(
        f"openai-agents {version('openai-agents')}, python {platform.python_version()}, "
        f"{os.cpu_count()} cores; {opts.rounds} rounds x {opts.runs} runs x {opts.steps} "
        "tool-call steps per variant\n"
    )
    for title, table in (("wall clock", per_step), ("CPU time of the loop's thread", cpu_step)):
        bare = statistics.median(table["bare"])
        print(f"{title}: {'ms/step min':>12}{'median':>9}{'max':>9}{'vs bare':>9}")
        for name, samples in table.items():
            med = statistics.median(samples)
            print(
                f"  {name:<24}{min(samples):>10.3f}{med:>9.3f}{max(samples):>9.3f}"
                f"{med / bare:>8.3f}x"
            )
        noop = statistics.median(table["no-op extension points"])
        guarded = statistics.median(table["guard_agent"])
        print(f"  guard_agent vs no-op extension points (median): {guarded / noop:.3f}x\n")
    steps = opts.rounds * opts.runs * opts.steps
    total = totals["guard_agent"]
    print(
        "guard's own share of the guarded step, in-process (adapter callbacks, tool body "
        "excluded):\n"
        f"  CPU time: {timed.own_cpu / cpu_totals['guard_agent'] * 100:.2f}% of the step's CPU "
        f"({timed.own_cpu / steps * 1e6:.1f} us per tool-call step)\n"
        f"  wall clock: {timed.own_wall / total * 100:.2f}% of the step's wall clock "
        f"({timed.own_wall / steps * 1e6:.1f} us per tool-call step)\n"
        "  (per step: a model turn held and its usage noted, the call decided, applied,\n"
        "   checked at the invoker and its result recorded)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=10, help="agent runs per variant per round")
    parser.add_argument("--steps", type=int, default=10, help="tool-call steps per run")
    opts = parser.parse_args()
    set_tracing_disabled(True)
    asyncio.run(amain(opts))


if __name__ == "__main__":
    main()
