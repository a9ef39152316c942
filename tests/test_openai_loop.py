"""``guardrails_plugin.openai.GuardedTools`` driven by the real ``openai`` client (sync and
async) over real HTTP, against the scripted server in tests/openai_server.py: scopes, budgets
read from the answers' usage, approvals, the kill switch, parallel calls, streams, the
Responses API, and what the client sends back (the server records it)."""

from __future__ import annotations

import asyncio
import json

import pytest
from openai_scenarios import (
    APPROVE,
    RAN,
    TOOLS,
    achat_loop,
    answers,
    aresponses_loop,
    chat_loop,
    client,
    guard_for,
    responses_loop,
)
from openai_server import Call, Turn, Usage

from guardrails_plugin import (
    Approval,
    BudgetExceeded,
    RunKilled,
    RunPaused,
    ToolCallDenied,
)
from guardrails_plugin.openai import FunctionTool, GuardedTools, function_tool
from guardrails_plugin.policy import Budget


def _decisions(outputs_list):
    return [
        (o.tool, str(o.decision.effect), o.decision.rule)
        for out in outputs_list
        for o in out.outcomes
    ]


def test_out_of_scope_argument_denied_in_scope_runs_and_outputs_go_back(openai_server, tmp_path):
    guard, log = guard_for(tmp_path)
    tools = GuardedTools(guard, TOOLS, agent="support", thread_id="t1")
    openai_server.push(
        Turn(tool_calls=[Call("read_file", {"path": "/data/a.txt"}, id="c1")]),
        Turn(tool_calls=[Call("read_file", {"path": "/data/../etc/passwd"}, id="c2")]),
        Turn(text="done"),
    )
    seen = chat_loop(tools, client(openai_server), "read")
    assert _decisions(seen) == [
        ("read_file", "allow", "allow read_file"),
        ("read_file", "deny", "default-deny"),
    ]
    assert RAN == [("read_file", {"path": "/data/a.txt"})]
    sent = [r.tool_outputs() for r in openai_server.requests]
    assert sent[1] == {"c1": "contents of /data/a.txt"}
    assert sent[2]["c2"].startswith("Tool call blocked by the guard; the tool did not run.")
    assert "default-deny" in sent[2]["c2"]
    # the tools offered to the model are the ones the agent may ever call
    offered = [t["function"]["name"] for t in openai_server.requests[0].body["tools"]]
    assert offered == ["read_file", "send_email", "count"]
    records = [(r.kind, r.outcome, r.tool, r.thread_id, r.agent) for r in log]
    assert records == [
        ("decision", "allow", "read_file", "t1", "support"),
        ("decision", "deny", "read_file", "t1", "support"),
    ]


def test_hidden_tools_are_not_offered(openai_server, tmp_path):
    guard, _ = guard_for(tmp_path)
    tools = GuardedTools(guard, TOOLS, agent="intern")
    assert [t["function"]["name"] for t in tools.tools()] == ["read_file", "send_email"]
    assert [t["name"] for t in tools.tools("responses")] == ["read_file", "send_email"]


def test_call_budget_counts_calls_across_answers(openai_server, tmp_path):
    guard, _ = guard_for(tmp_path, Budget.calls(2, tools="read_file", per="run"))
    tools = GuardedTools(guard, TOOLS, thread_id="t1")
    openai_server.push(
        Turn(
            tool_calls=[
                Call("read_file", {"path": "/data/1"}),
                Call("read_file", {"path": "/data/2"}),
            ]
        ),
        Turn(tool_calls=[Call("read_file", {"path": "/data/3"})]),
        Turn(text="ok"),
    )
    seen = chat_loop(tools, client(openai_server), "go")
    assert [d[1] for d in _decisions(seen)] == ["allow", "allow", "deny"]
    assert "exhausted: 2 of 2 calls used" in seen[1].outcomes[0].decision.reason
    # a new run (another loop) has its own per-run budget
    openai_server.push(Turn(tool_calls=[Call("read_file", {"path": "/data/4"})]), Turn(text="ok"))
    again = chat_loop(tools.bind(), client(openai_server), "go")
    assert [d[1] for d in _decisions(again)] == ["allow"]


def test_model_token_budget_reads_the_answers_usage(openai_server, tmp_path):
    guard, log = guard_for(tmp_path, Budget.tokens(100, of="model", per="thread"))
    tools = GuardedTools(guard, TOOLS, thread_id="t1")
    openai_server.push(
        Turn(tool_calls=[Call("count", {"n": 1})], usage=Usage(prompt=50, completion=10)),
        Turn(tool_calls=[Call("count", {"n": 2})], usage=Usage(prompt=35, completion=5)),
        Turn(text="never asked for"),
    )
    llm = client(openai_server)
    with pytest.raises(BudgetExceeded, match="100 of 100 model tokens used"):
        chat_loop(tools, llm, "count")
    # 60 tokens: the first answer's call ran; 100: the second answer's call was denied, and
    # the third model call never happened
    assert RAN == [("count", {"n": 1, "label": "items"})]
    assert openai_server.pending() == 1
    denied = [r for r in log if r.outcome == "deny"]
    assert [(r.tool, r.rule) for r in denied] == [
        ("count", "tokens in model per thread"),
        (None, "tokens in model per thread"),
    ]


async def test_cost_budget_with_prices_per_model_async(openai_server, tmp_path):
    prices = {"gpt-cheap*": (1.0, 2.0), "gpt-dear*": (1000.0, 4000.0)}
    guard, _ = guard_for(tmp_path, Budget.cost(0.5, prices=prices, per="thread"))
    tools = GuardedTools(guard, TOOLS, thread_id="t-cost")
    llm = client(openai_server, aio=True)
    openai_server.push(
        Turn(tool_calls=[Call("count", {"n": 1})], usage=Usage(1000, 1000), model="gpt-cheap-1"),
        Turn(tool_calls=[Call("count", {"n": 2})], usage=Usage(100, 100), model="gpt-dear-2"),
    )
    async with llm:
        first = await tools.arun(await llm.chat.completions.create(model="m", messages=[]))
        second = await tools.arun(await llm.chat.completions.create(model="m", messages=[]))
    assert first.outcomes[0].ran  # 0.003 dollars
    assert not second.outcomes[0].ran  # + 0.5 dollars: used up
    assert "0.503 of 0.5 dollars" in second.outcomes[0].decision.reason
    with pytest.raises(BudgetExceeded):
        await tools.abefore_model()


def test_unpriced_model_fails_closed(openai_server, tmp_path):
    guard, _ = guard_for(tmp_path, Budget.cost(10, prices={"gpt-4o*": (2.5, 10)}))
    tools = GuardedTools(guard, TOOLS)
    openai_server.push(Turn(tool_calls=[Call("count", {"n": 1})], model="mystery-model"))
    out = tools.run(client(openai_server).chat.completions.create(model="m", messages=[]))
    assert not out.outcomes[0].ran
    assert out.outcomes[0].decision.kind == "budget"


def test_usage_missing_is_counted_with_tiktoken(openai_server, tmp_path):
    guard, _ = guard_for(tmp_path, Budget.tokens(30, of="model"))
    tools = GuardedTools(guard, TOOLS)
    llm = client(openai_server)
    openai_server.push(Turn(tool_calls=[Call("count", {"n": 1})], usage=None))
    sent = [{"role": "user", "content": "word " * 40}]
    answer = llm.chat.completions.create(model="m", messages=sent)
    assert answer.usage is None
    out = tools.run(answer, sent=sent)
    assert not out.outcomes[0].ran  # ~40 tokens sent: over 30
    assert "model tokens used" in out.outcomes[0].decision.reason


@pytest.mark.parametrize("answer", ["approve", "edit-in", "edit-out", "reject", "respond"])
def test_approvals(openai_server, tmp_path, answer):
    replies = {
        "approve": APPROVE,
        "edit-in": Approval.edit({"path": "/data/public/x"}, approver="ana"),
        "edit-out": Approval.edit({"path": "/etc/shadow"}, approver="ana"),
        "reject": Approval.reject("not today", approver="ana"),
        "respond": Approval.respond("the file says hi", approver="ana"),
    }
    guard, log = guard_for(
        tmp_path, Budget.calls(5, tools="read_file"), approver=answers(replies[answer])
    )
    tools = GuardedTools(guard, TOOLS, thread_id="t1")
    openai_server.push(
        Turn(tool_calls=[Call("read_file", {"path": "/data/private/k"}, id="c")]), Turn(text="ok")
    )
    [out] = chat_loop(tools, client(openai_server), "read the key")
    outcome = out.outcomes[0]
    sent = openai_server.requests[1].tool_outputs()["c"]
    expected = {
        "approve": (
            "allow",
            [("read_file", {"path": "/data/private/k"})],
            "contents of /data/private/k",
        ),
        "edit-in": (
            "modify",
            [("read_file", {"path": "/data/public/x"})],
            "contents of /data/public/x",
        ),
        "edit-out": ("deny", [], None),
        "reject": ("deny", [], None),
        "respond": ("respond", [], "the file says hi"),
    }[answer]
    assert (str(outcome.decision.effect), RAN) == expected[:2]
    if expected[2] is not None:
        assert sent == expected[2]
    else:
        assert sent.startswith("Tool call blocked")
    if answer == "edit-out":
        assert "the edited call is out of policy" in outcome.decision.reason
    asked, record = list(log)
    assert (asked.kind, asked.outcome, asked.rule) == ("decision", "ask", "private files")
    # an edit out of policy is the policy's deny of the edited call; the rest a person's
    assert (record.kind, record.approver) == (
        ("decision", None) if answer == "edit-out" else ("approval", "ana")
    )
    # what did not run gave its budget back
    used = guard.store.total(f"budget/calls of read_file per run/run={tools.run_id}")
    assert used == (1 if expected[1] else 0)


def test_an_edit_the_tool_would_not_take_is_refused(openai_server, tmp_path):
    edit = Approval.edit({"to": "a@b.c", "bcc": "spy@evil.example"}, approver="ana")
    guard, log = guard_for(tmp_path, Budget.calls(5, tools="send_email"), approver=answers(edit))
    tools = GuardedTools(guard, TOOLS, thread_id="t1")
    openai_server.push(Turn(tool_calls=[Call("send_email", {"to": "a@b.c"})]))
    out = tools.run(client(openai_server).chat.completions.create(model="m", messages=[]))
    decision = out.outcomes[0].decision
    assert decision.rule == "changed-after-decision"
    assert "argument(s) 'bcc' are not in the schema" in decision.reason
    assert RAN == []
    assert [r.outcome for r in log] == ["ask", "modify", "deny"]
    # the refused edit gave its budget back
    assert guard.store.total(f"budget/calls of send_email per run/run={tools.run_id}") == 0


def test_no_approver_denies_an_ask(openai_server, tmp_path):
    guard, _ = guard_for(tmp_path)
    tools = GuardedTools(guard, TOOLS)
    openai_server.push(Turn(tool_calls=[Call("send_email", {"to": "a@b.c"})]))
    out = tools.run(client(openai_server).chat.completions.create(model="m", messages=[]))
    assert str(out.outcomes[0].decision.effect) == "deny"
    assert "no approver is configured" in out.outcomes[0].decision.reason


def test_kill_switch_before_the_model_and_between_calls(openai_server, tmp_path):
    guard, log = guard_for(tmp_path)
    tools = GuardedTools(guard, TOOLS, agent="support", thread_id="t1")
    guard.controls.kill(thread="t1", reason="incident")
    with pytest.raises(RunKilled):
        tools.before_model()
    assert openai_server.requests == []
    guard.controls.resume(thread="t1")
    tools.before_model()
    # an answer already on its way when the switch is thrown: no call of it runs
    openai_server.push(Turn(tool_calls=[Call("count", {"n": 1}), Call("count", {"n": 2})]))
    answer = client(openai_server).chat.completions.create(model="m", messages=[])
    guard.controls.pause(agent="support")
    with pytest.raises(RunPaused):
        tools.run(answer)
    assert RAN == []
    assert any(r.kind == "control" for r in log)


def test_on_deny_raise(openai_server, tmp_path):
    guard, _ = guard_for(tmp_path)
    tools = GuardedTools(guard, TOOLS, on_deny="raise")
    openai_server.push(Turn(tool_calls=[Call("read_file", {"path": "/etc/passwd"})]))
    with pytest.raises(ToolCallDenied):
        tools.run(client(openai_server).chat.completions.create(model="m", messages=[]))


def test_parallel_calls_are_decided_one_by_one_in_order(openai_server, tmp_path):
    guard, log = guard_for(tmp_path, Budget.calls(2, tools="count"))
    tools = GuardedTools(guard, TOOLS, thread_id="t1")
    calls = [Call("count", {"n": i}, id=f"c{i}") for i in range(4)]
    openai_server.push(Turn(tool_calls=calls))
    out = tools.run(client(openai_server).chat.completions.create(model="m", messages=[]))
    assert [o["tool_call_id"] for o in out] == ["c0", "c1", "c2", "c3"]
    assert [o.ran for o in out.outcomes] == [True, True, False, False]
    assert [r.detail["call_id"] for r in log] == ["c0", "c1", "c2", "c3"]


def test_a_reused_call_id_denies_every_call_using_it(openai_server, tmp_path):
    guard, _ = guard_for(tmp_path)
    tools = GuardedTools(guard, TOOLS)
    llm = client(openai_server)
    openai_server.push(
        Turn(
            tool_calls=[
                Call("count", {"n": 1}, id="same"),
                Call("read_file", {"path": "/etc/x"}, id="same"),
            ]
        ),
        Turn(tool_calls=[Call("count", {"n": 2}, id="c1")]),
        Turn(tool_calls=[Call("count", {"n": 3}, id="c1")]),
    )
    out = tools.run(llm.chat.completions.create(model="m", messages=[]))
    assert [o.decision.rule for o in out.outcomes] == ["malformed-call", "malformed-call"]
    assert RAN == []
    # across answers an id is not a replay key: each call is decided and runs on its own
    tools.run(llm.chat.completions.create(model="m", messages=[]))
    tools.run(llm.chat.completions.create(model="m", messages=[]))
    assert RAN == [("count", {"n": 2, "label": "items"}), ("count", {"n": 3, "label": "items"})]


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        ('{"path": "/data/a"', "not valid JSON"),
        ('"/data/a"', "found a string"),
        ('["/data/a"]', "found a list"),
        ('{"path": "/data/a", "path": "/etc/passwd"}', "appears twice"),
        ('{"path": "/data/a", "mode": "w"}', "argument(s) 'mode' are not in the schema"),
        ('{"path": 5}', "schema rejects"),
        ('{"path": NaN}', "NaN is not a JSON number"),
        ("", "not valid JSON"),
        ('{"PATH": "/data/a"}', "argument(s) 'PATH' are not in the schema"),
    ],
)
def test_malformed_arguments_are_denied_with_a_reason(openai_server, tmp_path, arguments, why):
    guard, log = guard_for(tmp_path)
    tools = GuardedTools(guard, TOOLS)
    openai_server.push(Turn(tool_calls=[Call("read_file", arguments)]))
    out = tools.run(client(openai_server).chat.completions.create(model="m", messages=[]))
    decision = out.outcomes[0].decision
    assert (decision.rule, RAN) == ("malformed-call", [])
    assert why in decision.reason
    [record] = list(log)
    assert record.detail["raw_args"] is not None


def test_unknown_tool_is_malformed(openai_server, tmp_path):
    guard, _ = guard_for(tmp_path)
    openai_server.push(Turn(tool_calls=[Call("rm_rf", {"path": "/"})]))
    out = GuardedTools(guard, TOOLS).run(
        client(openai_server).chat.completions.create(model="m", messages=[])
    )
    assert out.outcomes[0].decision.rule == "malformed-call"
    assert "unknown tool 'rm_rf'" in out.outcomes[0].decision.reason


def test_arguments_decided_are_the_ones_the_tool_receives(openai_server, tmp_path):
    guard, log = guard_for(tmp_path)
    openai_server.push(Turn(tool_calls=[Call("count", {"n": "12"})]))
    out = GuardedTools(guard, TOOLS).run(
        client(openai_server).chat.completions.create(model="m", messages=[])
    )
    assert out.outcomes[0].ran
    assert RAN == [("count", {"n": 12, "label": "items"})]  # coerced and defaulted, once
    assert next(iter(log)).args == {"n": 12, "label": "items"}


def test_json_schema_tools_without_langchain(openai_server, tmp_path):
    seen = []
    lookup = FunctionTool.from_schema(
        "lookup",
        {
            "type": "object",
            "properties": {"key": {"type": "string", "maxLength": 5}},
            "required": ["key"],
        },
        lambda key: seen.append(key) or {"value": key.upper()},
        description="Look a key up.",
    )
    from guardrails_plugin import Guard, Policy, allow

    guard = Guard(Policy([allow("lookup")]))
    openai_server.push(
        Turn(
            tool_calls=[
                Call("lookup", {"key": "abc"}),
                Call("lookup", {"key": "toolong"}),
                Call("lookup", {}),
            ]
        )
    )
    out = GuardedTools(guard, [lookup]).run(
        client(openai_server).chat.completions.create(model="m", messages=[])
    )
    assert [o.ran for o in out.outcomes] == [True, False, False]
    assert json.loads(out[0]["content"]) == {"value": "ABC"}
    assert "too long" in out.outcomes[1].decision.reason
    assert "'key' is a required property" in out.outcomes[2].decision.reason
    assert seen == ["abc"]
    assert GuardedTools(guard, [lookup]).tools()[0]["function"]["description"] == "Look a key up."


def test_tool_errors_come_back_as_error_outputs(openai_server, tmp_path):
    @function_tool(name="boom")
    def explode() -> str:
        raise RuntimeError("disk on fire")

    from guardrails_plugin import Guard, Policy, allow

    openai_server.push(Turn(tool_calls=[Call("boom", {})]))
    out = GuardedTools(Guard(Policy([allow("boom")])), [explode]).run(
        client(openai_server).chat.completions.create(model="m", messages=[])
    )
    assert out[0]["content"] == "Tool error: RuntimeError: disk on fire"
    assert out.outcomes[0].is_error


def test_streaming_chat_completions(openai_server, tmp_path):
    guard, _ = guard_for(tmp_path, Budget.tokens(1000, of="model"))
    tools = GuardedTools(guard, TOOLS, thread_id="t1")
    openai_server.push(
        Turn(
            tool_calls=[Call("read_file", {"path": "/data/a"}), Call("read_file", {"path": "/x"})]
        ),
        Turn(text="done"),
    )
    seen = chat_loop(tools, client(openai_server), "read", stream=True)
    assert [o.ran for o in seen[0].outcomes] == [True, False]
    # the raw chunks of a stream, as an app that iterates the stream itself keeps them
    openai_server.push(Turn(tool_calls=[Call("count", {"n": 3})], usage=Usage(900, 200)))
    chunks = list(
        client(openai_server).chat.completions.create(
            model="m", messages=[], stream=True, stream_options={"include_usage": True}
        )
    )
    out = tools.run(chunks)
    assert not out.outcomes[0].ran  # 15 + 15 + 1100 tokens of usage, read from the last chunk
    assert "model tokens used" in out.outcomes[0].decision.reason


async def test_async_chat_loop(openai_server, tmp_path):
    guard, log = guard_for(tmp_path, approver=answers(APPROVE))
    tools = GuardedTools(guard, TOOLS, thread_id="t-async")
    openai_server.push(
        Turn(tool_calls=[Call("read_file", {"path": "/data/private/a"}), Call("count", {"n": 2})]),
        Turn(text="done"),
    )
    async with client(openai_server, aio=True) as llm:
        seen = await achat_loop(tools, llm, "go")
    assert [(o.tool, o.ran) for o in seen[0].outcomes] == [("read_file", True), ("count", True)]
    assert [(r.kind, r.outcome) for r in log] == [
        ("decision", "ask"),
        ("approval", "allow"),
        ("decision", "allow"),
    ]


async def test_async_tools_are_awaited(openai_server, tmp_path):
    from guardrails_plugin import Guard, Policy, allow

    async def fetch(url: str) -> str:
        return f"page {url}"

    tools = GuardedTools(Guard(Policy([allow("fetch")])), [fetch])
    openai_server.push(Turn(tool_calls=[Call("fetch", {"url": "u"})]))
    answer = client(openai_server).chat.completions.create(model="m", messages=[])
    assert (await tools.arun(answer))[0]["content"] == "page u"
    with pytest.raises(TypeError, match="use arun"):
        tools.run(answer)


@pytest.mark.parametrize("stream", [False, True])
def test_responses_api_loop(openai_server, tmp_path, stream):
    guard, _ = guard_for(tmp_path, Budget.tokens(1000, of="model"))
    tools = GuardedTools(guard, TOOLS, thread_id="t-r")
    openai_server.push(
        Turn(
            tool_calls=[
                Call("read_file", {"path": "/data/a"}, id="r1"),
                Call("read_file", '{"path": 1}', id="r2"),
            ]
        ),
        Turn(text="done"),
    )
    seen = responses_loop(tools, client(openai_server), "read", stream=stream)
    assert [o.decision.rule for o in seen[0].outcomes] == ["allow read_file", "malformed-call"]
    sent = openai_server.requests[1].tool_outputs()
    assert sent["r1"] == "contents of /data/a"
    assert sent["r2"].startswith("Tool call blocked")
    assert seen[0][0] == {
        "type": "function_call_output",
        "call_id": "r1",
        "output": "contents of /data/a",
    }
    assert [t["name"] for t in openai_server.requests[0].body["tools"]] == [
        "read_file",
        "send_email",
        "count",
    ]


async def test_async_responses_stream_with_budget(openai_server, tmp_path):
    guard, _ = guard_for(tmp_path, Budget.tokens(50, of="model", per="thread"))
    tools = GuardedTools(guard, TOOLS, thread_id="t-ar")
    openai_server.push(
        Turn(tool_calls=[Call("count", {"n": 1})], usage=Usage(30, 10)),
        Turn(tool_calls=[Call("count", {"n": 2})], usage=Usage(30, 10)),
    )
    async with client(openai_server, aio=True) as llm:
        with pytest.raises(BudgetExceeded):
            await aresponses_loop(tools, llm, "go")
    assert [a["n"] for _, a in RAN] == [1]


def test_reprs_and_argument_errors(tmp_path):
    guard, _ = guard_for(tmp_path)
    tools = GuardedTools(guard, TOOLS, agent="a", thread_id="t")
    assert (
        repr(tools)
        == "GuardedTools(['count', 'read_file', 'send_email'], agent='a', thread_id='t')"
    )
    assert (
        repr(tools.registry["count"]) == "FunctionTool(name='count', description='Count things.')"
    )
    with pytest.raises(ValueError, match="two tools"):
        GuardedTools(guard, [read_file_again, *TOOLS])
    with pytest.raises(TypeError, match="named arguments only"):
        FunctionTool.from_function(lambda *args: None)
    with pytest.raises(TypeError, match="expected a ChatCompletion"):
        tools.run({"choices": []})


def read_file_again(path: str) -> str:
    return path


read_file_again.__name__ = "read_file"


async def test_concurrent_answers_never_overspend_a_budget(openai_server, tmp_path):
    guard, _ = guard_for(tmp_path, Budget.calls(3, tools="count", per="thread"))
    tools = GuardedTools(guard, TOOLS, thread_id="t-many")
    calls = [Call("count", {"n": i}) for i in range(8)]
    openai_server.push(*(Turn(tool_calls=calls[i : i + 2]) for i in range(0, 8, 2)))
    async with client(openai_server, aio=True) as llm:
        answers = [await llm.chat.completions.create(model="m", messages=[]) for _ in range(4)]
        results = await asyncio.gather(*(tools.bind().arun(a) for a in answers))
    ran = [o for out in results for o in out.outcomes if o.ran]
    assert len(ran) == len(RAN) == 3
    assert all(o.decision.kind == "budget" for out in results for o in out.outcomes if not o.ran)


def test_a_schema_tool_is_decided_with_the_defaults_it_would_use() -> None:
    """Leaving an argument out must not dodge a deny on its default value."""

    def run_sql(query: str, db: str = "prod") -> str:
        return f"{query} on {db}"

    schema = {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "db": {"type": "string"},
            "limit": {"type": "integer", "default": 10},
        },
        "required": ["query"],
    }
    sql = FunctionTool.from_schema("run_sql", schema, run_sql)
    assert sql.receive({"query": "drop"}) == ({"query": "drop", "db": "prod", "limit": 10}, None)
    assert sql.receive({"query": "q", "db": "dev", "limit": 3}) == (
        {"query": "q", "db": "dev", "limit": 3},
        None,
    )
