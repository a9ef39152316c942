"""``guard_node`` names the AI messages a node writes: generated outputs against a reference
that always rebuilds (the stamping as first written), and no rebuild when nothing needs it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.types import Command

from guardrails_plugin.langgraph._nodes import _stamp


def reference(output: Any, agent: str) -> Any:
    """The stamping that rebuilds the ``Command`` / update whatever it holds."""

    def named(messages: Any) -> Any:
        if isinstance(messages, AIMessage) and not messages.name:
            return messages.model_copy(update={"name": agent})
        if isinstance(messages, list):
            return [named(m) for m in messages]
        return messages

    def in_update(update: Any) -> Any:
        if isinstance(update, Mapping) and "messages" in update:
            return {**update, "messages": named(update["messages"])}
        return update

    if isinstance(output, Command):
        return Command(
            graph=output.graph, update=in_update(output.update), resume=output.resume,
            goto=output.goto,
        )  # fmt: skip
    if isinstance(output, Mapping):
        return in_update(output)
    return output


names = st.sampled_from(["", "writer", "researcher"])
message = st.one_of(
    st.builds(lambda t, n: AIMessage(t, name=n or None), st.text(max_size=8), names),
    st.builds(lambda t: HumanMessage(t), st.text(max_size=8)),
    st.builds(lambda t: ToolMessage(t, tool_call_id="c1"), st.text(max_size=8)),
)
messages = st.recursive(
    st.one_of(message, st.lists(message, max_size=4)),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=8,
)
update = st.one_of(
    st.fixed_dictionaries({"messages": messages}),
    st.fixed_dictionaries({"messages": messages, "other": st.integers()}),
    st.fixed_dictionaries({"other": st.integers()}),
    st.none(),
)
output = st.one_of(
    update,
    st.builds(lambda u, g: Command(update=u, goto=g), update, st.sampled_from(["supervisor", ()])),
    st.lists(st.builds(lambda u: Command(update=u, goto="x"), update), max_size=2),
    st.text(max_size=4),
)


def flat(value: Any) -> Any:
    """A comparable picture of an output: messages as (type, content, name)."""
    if isinstance(value, Command):
        return ("Command", flat(value.update), value.goto, value.graph, value.resume)
    if isinstance(value, Mapping):
        return {k: flat(v) for k, v in value.items()}
    if isinstance(value, list):
        return [flat(v) for v in value]
    if isinstance(value, AIMessage | HumanMessage | ToolMessage):
        return (type(value).__name__, value.content, value.name)
    return value


def needs_name(value: Any) -> bool:
    if isinstance(value, AIMessage):
        return not value.name
    return isinstance(value, list) and any(needs_name(v) for v in value)


@settings(max_examples=300, deadline=None)
@given(output, st.sampled_from(["supervisor", "analyst"]))
def test_stamp_matches_the_rebuilding_reference(out: Any, agent: str) -> None:
    got = _stamp(out, agent)
    assert flat(got) == flat(reference(out, agent))
    upd = out.update if isinstance(out, Command) else out
    if not (isinstance(upd, Mapping) and needs_name(upd.get("messages"))):
        assert got is out  # nothing to name: not rebuilt
    else:
        assert got is not out
        again = got.update if isinstance(got, Command) else got
        assert not needs_name(again["messages"])  # every AI message named now
