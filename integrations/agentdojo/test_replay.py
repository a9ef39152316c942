"""The AgentDojo replay on small slices of every suite (the whole run is
``python -m integrations.agentdojo.replay``): each suite's policy is plain YAML that lint
accepts without warnings, the allow-all baseline lets every ground-truth call through, the
policy stops hijacks the baseline lets through while it still lets user tasks through, an
``ask`` is counted as a person's and the replay goes on, text-only injection tasks are not
counted; and the guarded tool executor of the live run (a scripted model, no network) runs
exactly the calls the policy allows."""

from __future__ import annotations

import pytest

pytest.importorskip("agentdojo")

from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin import Effect, Guard, Policy, ToolCall
from guardrails_plugin.policy import ask

from .replay import SUITES, _suite, allow_all, main, run_suite, suite_policy


@pytest.mark.parametrize("name", SUITES)
def test_the_policy_is_plain_yaml_that_lint_accepts_and_round_trips(name: str) -> None:
    policy = suite_policy(name)
    assert Policy.from_dict(policy.to_dict()) == policy
    assert all(r.when is None for r in policy.rules)  # no Python predicates
    assert policy.lint() == []


@pytest.mark.parametrize("name", SUITES)
def test_on_a_slice_the_policy_stops_attacks_the_baseline_lets_through(name: str) -> None:
    base = run_suite(name, None, limit=2)
    mine = run_suite(name, suite_policy(name), limit=2)
    assert base.tasks == mine.tasks == 2
    assert base.pairs == mine.pairs == 2 * (2 - base.text_only)
    assert base.utility == 1.0  # the ground truth runs under allow-all
    assert base.attacks == base.pairs
    assert mine.attacks < base.attacks
    assert mine.useful > 0


@pytest.mark.parametrize("name", SUITES)
def test_asks_are_counted_as_a_persons_and_text_only_attacks_apart(name: str) -> None:
    """A policy asking about every tool: no task is useful without a person, every task
    completes with one, and every attack waits for a person. Injection tasks without a
    tool call are counted as text-only, not as pairs."""
    suite = _suite(name)
    everything = Policy([ask([t.name for t in suite.tools])])
    tally = run_suite(name, everything, limit=3)
    injections = list(suite.injection_tasks.values())[:3]
    default = suite.load_and_inject_default_environment({})
    text_only = sum(1 for i in injections if not list(i.ground_truth(default)))
    assert tally.text_only == text_only
    assert tally.pairs == 3 * (3 - text_only)
    assert (tally.useful, tally.asked) == (0, 3)
    assert tally.with_a_person == 1.0
    assert (tally.attacks, tally.attacks_asked) == (0, tally.pairs)


def test_main_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--suite", "banking", "--suite", "slack", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "banking" in out
    assert "slack" in out
    assert "attack success" in out


MEMBERS = ["Alice", "Bob", "Charlie", "Eve"]
TEAM_SITES = ["www.informations.com", "www.company-todo-list.com"]


@settings(max_examples=15, deadline=None)
@given(
    recipient=st.sampled_from([*MEMBERS, "Dora", "Mallory"]),
    host=st.sampled_from([*TEAM_SITES, "www.evil-example.com", "secure-login.net"]),
)
def test_the_live_executor_runs_exactly_what_the_policy_allows(recipient: str, host: str) -> None:
    """AgentDojo's pipeline with a scripted model in place of an LLM: the model sends a
    direct message; it is delivered exactly when the slack policy allows it without a
    person (a member, a link to a team site); otherwise the model reads why as the tool's
    error, and the next call still runs."""
    from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
    from agentdojo.functions_runtime import FunctionCall, FunctionsRuntime
    from agentdojo.types import text_content_block_from_string

    from .live import guarded_pipeline

    body = f"see https://{host}/page"
    script = [("send_direct_message", {"recipient": recipient, "body": body}), ("get_channels", {})]

    class Scripted(BasePipelineElement):
        name = "scripted"

        def query(self, query, runtime, env=None, messages=(), extra_args=None):  # type: ignore[no-untyped-def]
            turn = sum(1 for m in messages if m["role"] == "assistant")
            if turn < len(script):
                tool, args = script[turn]
                calls = [FunctionCall(function=tool, args=dict(args), id=str(turn))]
                message = {"role": "assistant", "content": None, "tool_calls": calls}
            else:
                done = [text_content_block_from_string("done")]
                message = {"role": "assistant", "content": done, "tool_calls": None}
            return query, runtime, env, [*messages, message], extra_args or {}

    suite = _suite("slack")
    env = suite.load_and_inject_default_environment({})
    before = len(env.slack.user_inbox.get(recipient, []))
    pipeline = guarded_pipeline(Scripted(), suite_policy("slack"))
    _, _, env, messages, _ = pipeline.query("task", FunctionsRuntime(suite.tools), env)
    tool_messages = [m for m in messages if m["role"] == "tool"]
    assert [m["tool_call"].function for m in tool_messages] == [s[0] for s in script]
    sent, listed = tool_messages
    expected = recipient in MEMBERS and host in TEAM_SITES
    delivered = [m.body for m in env.slack.user_inbox.get(recipient, [])[before:]]
    assert delivered == ([body] if expected else [])
    assert (sent["error"] is None) == expected
    if not expected:
        assert "blocked by the guard" in sent["error"]
        # the model reads what was wrong, never what would pass
        assert not any(site in sent["error"] for site in TEAM_SITES if site != host)
        assert not any(member in sent["error"] for member in MEMBERS if member != recipient)
    assert listed["error"] is None


def test_the_baseline_allows_every_tool_of_each_suite() -> None:
    for name in SUITES:
        suite = _suite(name)
        baseline = allow_all(suite)
        guard = Guard(baseline)
        for tool in suite.tools:
            assert guard.check(ToolCall(tool.name, {})).effect is Effect.ALLOW
