"""AgentDojo with a real model: AgentDojo's own pipeline and attack, with ``Guard`` in the
tool loop (``python -m integrations.agentdojo.replay --model gpt-4o-2024-05-13``).

AgentDojo builds its pipeline (system message, the user's query, the model, and a loop of
tool execution and model turns) from a model name; :func:`guarded_pipeline` swaps the
loop's tool executor for :class:`GuardedToolsExecutor`, which checks every tool call the
model makes with ``Guard`` before it runs and records each result (so data flows and
provenance see them). A call the policy denies does not run: the model reads the
model-facing reason as the tool's error. Nobody is there to answer an ``ask`` in a
benchmark run, so a call that needs a person does not run either (the model reads that it
needs a person's approval). Each task's run is its own thread.

Utility and attack success are AgentDojo's own checks on the environment after the run,
with its "important_instructions" attack; the allow-all baseline is the same pipeline
with a policy that allows every tool. This needs the model provider's API key in the
environment (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ...) and network access; it is not
run by the tests.
"""

from __future__ import annotations

import uuid
from ast import literal_eval
from collections.abc import Sequence
from typing import Any

from agentdojo.agent_pipeline.tool_execution import ToolsExecutor

from guardrails_plugin import Guard, Policy, ToolCall, ToolResult

THREAD_KEY = "guardrails_thread"
"""The ``extra_args`` key holding the run's thread id (one per task run)."""


class GuardedToolsExecutor(ToolsExecutor):  # type: ignore[misc]
    """AgentDojo's ``ToolsExecutor``, every call checked by ``guard`` first and every
    result recorded (see the module's docstring)."""

    def __init__(self, guard: Guard) -> None:
        super().__init__()
        self.guard = guard

    def query(
        self,
        query: str,
        runtime: Any,
        env: Any = None,
        messages: Sequence[Any] = (),
        extra_args: dict[str, Any] | None = None,
    ) -> tuple[str, Any, Any, Sequence[Any], dict[str, Any]]:
        """Run the tool calls of the model's last message that the guard allows."""
        from agentdojo.agent_pipeline.tool_execution import is_string_list
        from agentdojo.types import ChatToolResultMessage, text_content_block_from_string

        extra = dict(extra_args or {})
        thread = extra.setdefault(THREAD_KEY, uuid.uuid4().hex)
        if not messages or messages[-1]["role"] != "assistant":
            return query, runtime, env, messages, extra
        calls = messages[-1]["tool_calls"] or []
        known = {f.name for f in runtime.functions.values()}
        results = []
        for tool_call in calls:
            for name, value in tool_call.args.items():
                if isinstance(value, str) and is_string_list(value):
                    tool_call.args[name] = literal_eval(value)
            error: str | None
            if tool_call.function not in known:
                text, error = "", f"Invalid tool {tool_call.function} provided."
            else:
                call = ToolCall(tool_call.function, dict(tool_call.args), thread_id=thread)
                decision = self.guard.check(call)
                if decision.allowed:
                    value, error = runtime.run_function(env, tool_call.function, tool_call.args)
                    text = self.output_formatter(value)
                    self.guard.record(
                        ToolResult(
                            tool_call.function,
                            error if error is not None else text,
                            thread_id=thread,
                            is_error=error is not None,
                        )
                    )
                else:
                    text = ""
                    error = (
                        "Tool call blocked by the guard; the tool did not run. "
                        + decision.for_model()
                    )
            results.append(
                ChatToolResultMessage(
                    role="tool",
                    content=[text_content_block_from_string(text)],
                    tool_call_id=tool_call.id,
                    tool_call=tool_call,
                    error=error,
                )
            )
        return query, runtime, env, [*messages, *results], extra


def guarded_pipeline(model: Any, policy: Policy) -> Any:
    """AgentDojo's pipeline for ``model`` (a model name AgentDojo knows, or a pipeline
    element standing for the model) with :class:`GuardedToolsExecutor` in its tool loop."""
    from agentdojo.agent_pipeline.agent_pipeline import AgentPipeline, PipelineConfig
    from agentdojo.agent_pipeline.tool_execution import ToolsExecutionLoop

    pipeline = AgentPipeline.from_config(
        PipelineConfig(
            llm=model, model_id=None, defense=None, system_message_name=None, system_message=None
        )
    )
    loops = [e for e in pipeline.elements if isinstance(e, ToolsExecutionLoop)]
    if len(loops) != 1:
        raise RuntimeError(f"expected one tool loop in AgentDojo's pipeline, found {len(loops)}")
    loop = loops[0]
    loop.elements = [
        GuardedToolsExecutor(Guard(policy)) if isinstance(e, ToolsExecutor) else e
        for e in loop.elements
    ]
    return pipeline


def run_live(name: str, model: str, policy: Policy) -> tuple[float, float]:
    """Utility (no injection) and attack success ("important_instructions") of ``model`` on
    suite ``name`` under ``policy``, by AgentDojo's own benchmark functions."""
    from agentdojo.attacks.attack_registry import load_attack
    from agentdojo.benchmark import (
        benchmark_suite_with_injections,
        benchmark_suite_without_injections,
    )
    from agentdojo.task_suite.load_suites import get_suite

    from .replay import BENCHMARK_VERSION

    suite = get_suite(BENCHMARK_VERSION, name)
    pipeline = guarded_pipeline(model, policy)
    plain = benchmark_suite_without_injections(
        pipeline, suite, logdir=None, force_rerun=True, benchmark_version=BENCHMARK_VERSION
    )
    attack = load_attack("important_instructions", suite, pipeline)
    attacked = benchmark_suite_with_injections(
        pipeline,
        suite,
        attack,
        logdir=None,
        force_rerun=True,
        verbose=False,
        benchmark_version=BENCHMARK_VERSION,
    )
    useful = list(plain["utility_results"].values())
    hijacked = list(attacked["security_results"].values())
    return (
        sum(useful) / len(useful) if useful else 0.0,
        sum(hijacked) / len(hijacked) if hijacked else 0.0,
    )
