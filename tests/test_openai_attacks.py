"""An attacker controls the model's output: generated answers, full of malformed and adversarial
tool calls (any JSON, raw text, duplicate keys, extra and look-alike keys, strings instead of
objects, unknown and look-alike tool names, reused call ids, paths that climb out), served by
the local server and read by the real ``openai`` client (Chat Completions and Responses,
plain and streamed). The oracle is independent of the adapter: Python's own JSON parser, the
tools' signatures, and ``os.path`` for the scope."""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from openai_scenarios import RAN, TOOLS, client, policy
from openai_server import Call, Turn

from guardrails_plugin import Guard
from guardrails_plugin.openai import GuardedTools
from guardrails_plugin.scopes import Paths

PATHS = st.sampled_from(
    [
        "/data/a.txt",
        "/data/../etc/passwd",
        "/data//reports/./q1",
        "/data/private/key",
        "/data/private/../private/key",
        "/datastore/x",
        "data/a",
        "~/data",
        "/etc/passwd",
        "/data",
        "/data/a\x00b",
    ]
)
PATHS_SCOPE = Paths(["/data"], resolve_symlinks=False)
KEYS = st.sampled_from(["path", "PATH", "path ", "n", "label", "to", "body", "mode", "Path"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def arguments(draw: Any) -> dict[str, Any] | str:
    kind = draw(st.sampled_from(["path", "count", "extra", "json", "text", "dupe", "nan"]))
    if kind == "path":
        return {"path": draw(PATHS)}
    if kind == "count":
        return {"n": draw(st.integers() | st.text(max_size=3) | st.booleans())}
    if kind == "extra":
        return {"path": draw(PATHS), draw(KEYS): draw(JSON)}
    if kind == "json":
        return json.dumps(draw(JSON))
    if kind == "text":
        return draw(st.text(max_size=20))
    if kind == "dupe":
        first, second = draw(PATHS), draw(PATHS)
        return f'{{"path": {json.dumps(first)}, "path": {json.dumps(second)}}}'
    return '{"n": ' + draw(st.sampled_from(["NaN", "Infinity", "-Infinity"])) + "}"


NAMES = st.sampled_from(["send_email", "rm", "", "READ_FILE", "read_file ", "count\u200b"])


@st.composite
def calls(draw: Any) -> Call:
    """Half the time a well-formed call of a real tool (so that the allow side is tested as
    hard as the deny side), else anything."""
    call_id = draw(st.sampled_from(["c1", "c2", None, None, None, None]))
    if draw(st.booleans()):
        if draw(st.booleans()):
            return Call("read_file", {"path": draw(PATHS)}, id=call_id)
        label = draw(st.sampled_from([{}, {"label": "xs"}]))
        return Call("count", {"n": draw(st.integers() | st.booleans()), **label}, id=call_id)
    name = draw(NAMES | st.sampled_from(["read_file", "count"]))
    return Call(name, draw(arguments()), id=call_id)


def _decoded(text: str) -> Any:
    """The oracle's reading: strict JSON (no NaN), no duplicate keys; ``None`` otherwise."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            raise ValueError("duplicate")
        return dict(items)

    def constant(name: str) -> Any:
        raise ValueError(name)

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except ValueError:
        return None


def _inside(path: str, root: str) -> bool:
    if not path.startswith("/") or "\x00" in path:
        return False
    normal = os.path.normpath(path)
    return normal == root or normal.startswith(root + "/")


_CLIENTS: dict[str, Any] = {}


@functools.cache
def _tools() -> GuardedTools:
    return GuardedTools(Guard(policy()), TOOLS)  # no budgets: nothing carries over


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    calls=st.lists(calls(), min_size=1, max_size=4),
    api=st.sampled_from(["chat", "chat-stream", "responses", "responses-stream"]),
)
def test_generated_answers_never_run_what_the_tool_would_not_take(
    openai_server: Any, calls: list[Call], api: str
) -> None:
    RAN.clear()
    openai_server.reset()
    openai_server.push(Turn(tool_calls=calls))
    llm = _CLIENTS.get(openai_server.base_url) or _CLIENTS.setdefault(
        openai_server.base_url, client(openai_server)
    )
    ids = [c.id for c in calls if c.id is not None]
    if api == "responses-stream" and len(set(ids)) < len(ids):
        # the SDK's own stream helper refuses an answer whose calls share an id
        with pytest.raises(RuntimeError, match="conflicting output identities"):  # noqa: SIM117
            with llm.responses.stream(model="m", input="x") as stream:
                stream.get_final_response()
        return
    if api == "chat":
        answer: Any = llm.chat.completions.create(model="m", messages=[])
    elif api == "chat-stream":
        with llm.chat.completions.stream(model="m", messages=[]) as stream:
            answer = stream.get_final_completion()
    elif api == "responses":
        answer = llm.responses.create(model="m", input="x")
    else:
        with llm.responses.stream(model="m", input="x") as stream:
            answer = stream.get_final_response()
    out = _tools().run(answer)

    # one output per call, in order, under the call's own id
    assert len(out) == len(out.outcomes) == len(calls)
    served_ids = [o.call_id for o in out.outcomes]
    for call, served in zip(calls, served_ids, strict=True):
        if call.id is not None:
            assert served == call.id
    shared = {i for i, n in Counter(served_ids).items() if n > 1}
    ran = iter(RAN)
    for call, outcome, item in zip(calls, out.outcomes, out, strict=True):
        decoded = _decoded(call.raw_arguments())
        event("ran" if outcome.ran else f"denied: {outcome.decision.rule}")
        if not outcome.ran:
            assert not outcome.decision.allowed
            body = item.get("content", item.get("output"))
            assert body.startswith("Tool call blocked by the guard")
            if not isinstance(decoded, dict) or call.name not in (
                "read_file",
                "count",
                "send_email",
            ):
                assert outcome.decision.rule == "malformed-call", (call, outcome.decision)
            continue
        # it ran: what the oracle says the tool would take, and inside the policy
        assert outcome.call_id not in shared
        assert isinstance(decoded, dict)
        tool, received = next(ran)
        assert tool == call.name
        if tool == "read_file":
            assert set(decoded) == {"path"}
            assert received == decoded
            assert _inside(decoded["path"], "/data")
            assert not _inside(decoded["path"], "/data/private")  # an ask, and no approver
        else:
            assert tool == "count"
            assert set(decoded) <= {"n", "label"}
            assert "n" in decoded
            assert isinstance(received["n"], int)
            if type(decoded["n"]) is int:
                assert received["n"] == decoded["n"]
    assert next(ran, None) is None


NUMBERS = st.sampled_from(
    ["1e400", "-1e400", "1" * 5000, "1e-400", "123456789012345678901234567890", "-0", "5.0", "1E2"]
)
ESCAPED = st.lists(
    st.sampled_from(
        ["\\ud800", "\\udfff", "\\u0000", "\\u202e", "a", "/", "..", "\\\\", "\\u00e9"]
    ),
    max_size=6,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(
    number=NUMBERS,
    text=ESCAPED,
    which=st.sampled_from(["count", "pay", "read_file"]),
    driver=st.sampled_from(["run", "arun"]),
)
def test_numbers_past_float_and_lone_surrogates_run_only_as_decided(
    number: str, text: str, which: str, driver: str
) -> None:
    """Text that is JSON but reads as something else (``1e400`` as ``inf``, a 5,000-digit
    integer, a lone surrogate, an escaped NUL): the tool runs only with what the guard
    allowed, and never with a number that is not finite."""
    import asyncio
    import math

    from openai.types.chat import ChatCompletion

    from guardrails_plugin import Decision, Event, Policy, ToolCall, allow
    from guardrails_plugin.scopes import Number

    got: list[dict[str, Any]] = []

    def pay(amount: float) -> str:
        got.append({"amount": amount})
        return "paid"

    def count(n: int) -> str:
        got.append({"n": n})
        return "counted"

    def read_file(path: str) -> str:
        got.append({"path": path})
        return "read"

    seen: list[tuple[Event, Decision]] = []
    guard = Guard(
        Policy(
            [
                allow("pay", args={"amount": Number(ge=0)}),
                allow("count"),
                allow("read_file", args={"path": PATHS_SCOPE}),
            ]
        ),
        listeners=[lambda e, d: seen.append((e, d))],
    )
    arguments = {
        "count": f'{{"n": {number}}}',
        "pay": f'{{"amount": {number}}}',
        "read_file": f'{{"path": "/data/{text}"}}',
    }[which]
    answer = ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": which, "arguments": arguments},
                            }
                        ],
                    },
                }
            ],
        }
    )
    tools = GuardedTools(guard, [pay, count, read_file])
    out = tools.run(answer) if driver == "run" else asyncio.run(tools.arun(answer))
    [outcome] = out.outcomes
    event("ran" if outcome.ran else f"denied: {outcome.decision.rule}")
    if not outcome.ran:
        assert got == []
        return
    [received] = got
    [(decided, decision)] = [(e, d) for e, d in seen if isinstance(e, ToolCall)]
    assert decision.allowed
    assert dict(decided.args) == received
    for value in received.values():
        if isinstance(value, float):
            assert math.isfinite(value)
    if which == "read_file":
        assert _inside(received["path"], "/data")
