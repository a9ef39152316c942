"""A person's edit is checked as the tool will receive it, and merged by default.

The attacker here controls what reaches the approval screen (the model's call) and, in the
generated tests, the edit itself: aliases of a scoped field, extra keys, strings where the
schema wants numbers or objects, paths that climb out of the scope. The oracle is the tool:
an edited call the guard lets run is run for real, and what the tool body receives must lie
inside the policy's scopes. An edit the tool's schema would reject is denied, never run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes import ScriptedChatModel, tool_call, tool_messages, user
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_apps import MODES, run, tool_graph
from pydantic import BaseModel, ConfigDict, Field

from guardrails_plugin import Approval, Effect, Guard, Policy, ToolCall, ask
from guardrails_plugin.langgraph import answer
from guardrails_plugin.langgraph._hitl import ToolEdits
from guardrails_plugin.langgraph._toolargs import received
from guardrails_plugin.scopes import Number, Paths

ROOT = "/srv/data"
CONFIG = {"configurable": {"thread_id": "t-edit"}}


class Options(BaseModel):
    recursive: bool = False


class ReadArgs(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    path: str = Field(alias="file_path")
    limit: int = 10
    options: Options = Field(default_factory=Options)


def read_tool(got: list[dict[str, Any]]) -> BaseTool:
    def body(path: str, limit: int = 10, options: Options | None = None) -> str:
        got.append({"path": path, "limit": limit, "options": options})
        return "read"

    return StructuredTool.from_function(
        func=body, name="read_file", description="Read a file.", args_schema=ReadArgs
    )


def policy() -> Policy:
    return Policy(
        [ask("read_file", args={"path": Paths([ROOT]), "limit": Number(ge=0, le=100)}, id="r")]
    )


def inside(got: dict[str, Any]) -> bool:
    resolved = Path(got["path"]).resolve()
    return resolved.is_relative_to(ROOT) and 0 <= got["limit"] <= 100


def decide_edit(sent: dict[str, Any], edit: Approval) -> tuple[Any, BaseTool, list[Any]]:
    got: list[dict[str, Any]] = []
    tool = read_tool(got)
    args, problem = received(tool, sent)
    assert problem is None
    call = ToolCall("read_file", args, call_id="c-1")
    guard = Guard(policy())
    asked = guard.check(call)
    assert asked.effect is Effect.ASK
    return guard.resolve(call, asked, edit, edits=ToolEdits(tool, sent)), tool, got


# -- hand-picked attacks (regressions) ---------------------------------------------------------

SENT = {"file_path": f"{ROOT}/a.txt", "limit": 5}


@pytest.mark.parametrize(
    ("edit", "allowed", "expected"),
    [
        # merge by field: the alias in the edit replaces the field the model set by alias
        ({"path": f"{ROOT}/b.txt"}, True, {"path": f"{ROOT}/b.txt", "limit": 5}),
        ({"file_path": "/etc/passwd"}, False, None),
        ({"path": "/etc/passwd"}, False, None),
        ({"path": f"{ROOT}/../../etc/passwd"}, False, None),  # widens the scope
        ({"limit": "50"}, True, {"path": f"{ROOT}/a.txt", "limit": 50}),  # coerced, checked as 50
        ({"limit": "500"}, False, None),  # a string that the tool reads as 500
        ({"limit": 10**6}, False, None),
        ({"mode": "w"}, False, None),  # an extra key the tool's schema does not know
        ({"PATH": "/etc/passwd"}, False, None),
        ({"options": '{"recursive": true}'}, False, None),  # a string for an object
        ({"options": {"recursive": True}}, True, None),
    ],
)
def test_edit_attacks(edit: dict[str, Any], allowed: bool, expected: dict[str, Any] | None) -> None:
    decision, tool, got = decide_edit(SENT, Approval.edit(edit))
    assert (decision.effect is Effect.MODIFY) is allowed, decision.reason
    if not allowed:
        assert decision.effect is Effect.DENY
        return
    tool.invoke(dict(decision.args or {}))
    (received_by_tool,) = got
    assert inside(received_by_tool)
    if expected is not None:
        assert {k: received_by_tool[k] for k in expected} == expected


def test_replace_drops_the_other_arguments() -> None:
    decision, tool, got = decide_edit(
        {"file_path": f"{ROOT}/a.txt", "limit": 50},
        Approval.edit({"path": f"{ROOT}/b"}, replace=True),
    )
    assert decision.effect is Effect.MODIFY
    tool.invoke(dict(decision.args or {}))
    assert got[0]["limit"] == 10  # the default, not the model's 50


def test_the_core_merge_without_a_schema() -> None:
    edit = Approval.edit({"to": "b@x"})
    assert edit.edited_args({"to": "a@x", "subject": "s"}) == {"to": "b@x", "subject": "s"}
    replaced = Approval.edit({"to": "b@x"}, replace=True)
    assert replaced.edited_args({"to": "a@x", "subject": "s"}) == {"to": "b@x"}


@pytest.mark.parametrize("mode", MODES)
async def test_a_merged_edit_runs_in_a_graph_with_the_other_arguments_kept(mode: str) -> None:
    got: list[dict[str, Any]] = []
    model = ScriptedChatModel(
        [tool_call("read_file", file_path=f"{ROOT}/a.txt", limit=7, id="c-1"), "done"]
    )
    graph = tool_graph(model, [read_tool(got)], Guard(policy()), checkpointer=InMemorySaver())
    out = await run(graph, user("read"), CONFIG, mode)
    out = await run(graph, answer(out, Approval.edit({"path": f"{ROOT}/b.txt"})), CONFIG, mode)
    assert [(g["path"], g["limit"]) for g in got] == [(f"{ROOT}/b.txt", 7)]
    assert [m.status for m in tool_messages(out)] == ["success"]


@pytest.mark.parametrize("mode", MODES)
async def test_an_alias_edit_out_of_scope_is_denied_in_a_graph(mode: str) -> None:
    got: list[dict[str, Any]] = []
    model = ScriptedChatModel([tool_call("read_file", path=f"{ROOT}/a.txt", id="c-1"), "done"])
    graph = tool_graph(model, [read_tool(got)], Guard(policy()), checkpointer=InMemorySaver())
    out = await run(graph, user("read"), CONFIG, mode)
    out = await run(graph, answer(out, Approval.edit({"file_path": "/etc/shadow"})), CONFIG, mode)
    assert got == []
    (message,) = tool_messages(out)
    assert message.status == "error"
    assert "the edited call is out of policy" in message.text


# -- generated edits: the tool is the oracle ----------------------------------------------------

paths = st.one_of(
    st.sampled_from(
        [
            f"{ROOT}/a.txt",
            f"{ROOT}/sub/../b",
            f"{ROOT}/../etc/passwd",
            "/etc/passwd",
            "relative/x",
            f"{ROOT}",
            f"{ROOT}x/evil",
            "",
        ]
    ),
    st.text(alphabet="/.ab", max_size=12),
)
limits = st.one_of(
    st.integers(-5, 200), st.sampled_from(["5", "500", "-1", "1e2", "ten", " 7 "]), st.none()
)
values = {
    "path": paths,
    "file_path": paths,
    "limit": limits,
    "options": st.one_of(
        st.fixed_dictionaries({"recursive": st.booleans()}),
        st.just('{"recursive": true}'),
        st.just([True]),
        st.none(),
    ),
    "extra": st.text(max_size=3),
    "Path": paths,
}
edits = st.dictionaries(st.sampled_from(sorted(values)), st.none(), max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: values[k] for k in keys})
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sent_key=st.sampled_from(["path", "file_path"]),
    sent_path=st.sampled_from([f"{ROOT}/a.txt", f"{ROOT}/d/e"]),
    sent_limit=st.integers(0, 100),
    edit=edits,
    replace=st.booleans(),
)
def test_an_edit_the_guard_lets_run_stays_in_scope_as_the_tool_receives_it(
    sent_key: str, sent_path: str, sent_limit: int, edit: dict[str, Any], replace: bool
) -> None:
    sent = {sent_key: sent_path, "limit": sent_limit}
    decision, tool, got = decide_edit(sent, Approval.edit(edit, replace=replace))
    assert decision.effect in (Effect.MODIFY, Effect.DENY)
    event(str(decision.effect))
    handed = dict(decision.args or {}) if decision.effect is Effect.MODIFY else None
    # what the tool would do with the edit as merged (the oracle): run it for real
    merged = ToolEdits(tool, sent)(Approval.edit(edit, replace=replace), {}).sent
    try:
        tool.invoke(dict(merged))
        ran: dict[str, Any] | None = got.pop()
    except Exception:
        ran = None
    if ran is None:  # the tool would refuse this input: the guard must not let it through
        assert decision.effect is Effect.DENY
        return
    if not inside(ran):  # the tool would go out of scope: denied
        assert decision.effect is Effect.DENY, (edit, ran)
    if decision.effect is Effect.MODIFY:
        assert handed == merged
        tool.invoke(handed)
        assert inside(got.pop())
