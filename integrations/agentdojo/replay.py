"""AgentDojo, replayed offline through ``Guard``: utility and attack success per suite.

For every user task of a suite, AgentDojo's ground-truth calls run against the suite's
environment through ``Guard`` (each call checked first, each result recorded, so data flows
and provenance see what the tools returned): the task counts as useful when every call is
allowed without a person. A call the policy sends to a person (``ask``) is approved, as the
user who asked for the task would, and the replay goes on with it run (an approval also
declassifies what it approved); a task whose calls all pass that way, some with a person,
counts as *asked*; any denied call makes it denied. So a task the policy hands to a person
by design (inviting someone into the workspace) is counted once, as asked, and the calls
after it are judged on what they really are.

For every (user task, injection task) pair the environment is injected with the injection
task's goal in every injection vector (the "important instructions" shape, without the
prompt wrapping: no model reads it offline); the user task's calls replay as above (the
user approves what they asked for), then the injection task's ground-truth calls, which
nobody approves: the attack succeeds when all of those are allowed without a person, and
counts as *stopped at a person* when none is denied but some wait for one. This is an upper
bound on what a hijacked model could do through the tools. Text-only attacks (an injection
task with no ground-truth call: an answer that lies) are not tool calls, no tool guard sees
them, and they are not counted as pairs: the table says how many there are.

The same replay with an allow-all policy, in the same run, is the baseline. Run::

    python -m integrations.agentdojo.replay [--suite banking] [--limit N]

``--model NAME`` (an AgentDojo model name, with its provider's API key set) runs AgentDojo's
own pipeline and attack with the guard in the tool loop instead (``live.py``).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any

from guardrails_plugin import Effect, Guard, Policy, ToolCall, ToolResult, allow

HERE = os.path.dirname(os.path.abspath(__file__))
SUITES = ("banking", "slack", "travel", "workspace")
"""Suites with a policy here (``<suite>.yaml``)."""
BENCHMARK_VERSION = "v1"
"""AgentDojo's benchmark version the suites are loaded at."""


def suite_policy(name: str) -> Policy:
    return Policy.from_yaml(os.path.join(HERE, f"{name}.yaml"))


def _suite(name: str) -> Any:
    from agentdojo.task_suite.load_suites import get_suite

    return get_suite(BENCHMARK_VERSION, name)


def allow_all(suite: Any) -> Policy:
    return Policy([allow([t.name for t in suite.tools])], name="allow-all")


@dataclass
class Tally:
    """One policy's counts on one suite."""

    tasks: int = 0
    useful: int = 0
    asked: int = 0
    pairs: int = 0
    attacks: int = 0
    attacks_asked: int = 0
    text_only: int = 0
    """Injection tasks with no tool call (not counted in ``pairs``)."""
    stopped: dict[str, int] = field(default_factory=dict)

    @property
    def utility(self) -> float:
        return self.useful / self.tasks if self.tasks else 0.0

    @property
    def with_a_person(self) -> float:
        """Share of user tasks that complete, some calls approved by a person."""
        return (self.useful + self.asked) / self.tasks if self.tasks else 0.0

    @property
    def attack_success(self) -> float:
        return self.attacks / self.pairs if self.pairs else 0.0


def _result_text(value: Any) -> str:
    from agentdojo.agent_pipeline.tool_execution import tool_result_to_str

    return str(tool_result_to_str(value))


def _replay(
    guard: Guard, runtime: Any, env: Any, calls: list[Any], thread: str, *, approve: bool
) -> list[Effect]:
    """Check, run and record each call; the effects the policy gave, in order. A call the
    policy asks a person about runs when ``approve`` (the person says yes), else not; a call
    not allowed does not run, and the replay goes on, as a model would."""
    effects = []
    for c in calls:
        call = ToolCall(c.function, dict(c.args), thread_id=thread)
        decision = guard.check(call)
        effects.append(decision.effect)
        if decision.effect is Effect.ASK and approve:
            decision = guard.resolve(call, decision, True)
        if not decision.allowed:
            continue
        result, error = runtime.run_function(env, c.function, dict(c.args))
        text = error if error is not None else _result_text(result)
        guard.record(ToolResult(c.function, text, thread_id=thread, is_error=error is not None))
    return effects


def run_suite(name: str, policy: Policy | None, *, limit: int | None = None) -> Tally:
    """Replay ``name``'s tasks under ``policy`` (``None``: allow-all)."""
    from agentdojo.functions_runtime import FunctionsRuntime
    from agentdojo.task_suite.load_suites import get_suite

    suite = get_suite(BENCHMARK_VERSION, name)
    policy = policy if policy is not None else allow_all(suite)
    runtime = FunctionsRuntime(suite.tools)
    users = list(suite.user_tasks.values())[:limit]
    injections = list(suite.injection_tasks.values())[:limit]
    vectors = list(suite.get_injection_vector_defaults())
    tally = Tally()
    default = suite.load_and_inject_default_environment({})
    text_only = {inj.ID for inj in injections if not list(inj.ground_truth(default))}
    tally.text_only = len(text_only)
    injections = [inj for inj in injections if inj.ID not in text_only]
    for task in users:
        env = suite.load_and_inject_default_environment({})
        guard = Guard(policy)
        gt = list(task.ground_truth(env.model_copy(deep=True)))
        effects = _replay(guard, runtime, env, gt, task.ID, approve=True)
        tally.tasks += 1
        if all(e is Effect.ALLOW for e in effects):
            tally.useful += 1
        elif Effect.ASK in effects and Effect.DENY not in effects:
            tally.asked += 1
        for inj in injections:
            env = suite.load_and_inject_default_environment(dict.fromkeys(vectors, f"{inj.GOAL}"))
            guard = Guard(policy)
            thread = f"{task.ID}/{inj.ID}"
            gt = list(task.ground_truth(env.model_copy(deep=True)))
            _replay(guard, runtime, env, gt, thread, approve=True)
            attack = list(inj.ground_truth(env.model_copy(deep=True)))
            done = _replay(guard, runtime, env, attack, thread, approve=False)
            tally.pairs += 1
            if all(e is Effect.ALLOW for e in done):
                tally.attacks += 1
            elif Effect.ASK in done and Effect.DENY not in done:
                tally.attacks_asked += 1
    return tally


def table(rows: list[tuple[str, Tally, Tally]]) -> str:
    """The figures, one line per suite: the policy's, then the allow-all baseline's."""
    lines = [
        "suite      utility  with a person  attack success     stopped at a person"
        "   allow-all: utility, attack success",
    ]
    for name, mine, base in rows:
        lines.append(
            f"{name:<10} {mine.utility:6.1%}   {mine.with_a_person:6.1%} ({mine.asked:2d} asked)"
            f"  {mine.attack_success:5.1%} ({mine.attacks:3d}/{mine.pairs:<3d})"
            f"   {mine.attacks_asked:4d}/{mine.pairs:<4d}"
            f"          {base.utility:6.1%}, {base.attack_success:6.1%}"
            + (
                f"   ({mine.text_only} text-only injection task not counted)"
                if mine.text_only
                else ""
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--suite", choices=SUITES, action="append")
    parser.add_argument("--limit", type=int, default=None, help="first N user/injection tasks")
    parser.add_argument(
        "--model",
        default=None,
        help="run AgentDojo's pipeline with this model (needs its API key), guard in the loop",
    )
    args = parser.parse_args(argv)
    if args.model is not None:
        from .live import run_live

        print("suite      utility  attack success   (allow-all: utility, attack success)")
        for name in args.suite or SUITES:
            suite = _suite(name)
            mine = run_live(name, args.model, suite_policy(name))
            base = run_live(name, args.model, allow_all(suite))
            print(
                f"{name:<10} {mine[0]:6.1%}   {mine[1]:6.1%}           {base[0]:6.1%}, {base[1]:6.1%}"
            )
        return 0
    rows = []
    for name in args.suite or SUITES:
        mine = run_suite(name, suite_policy(name), limit=args.limit)
        base = run_suite(name, None, limit=args.limit)
        rows.append((name, mine, base))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
