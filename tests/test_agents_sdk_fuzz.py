"""Adversarial tool-call payloads through the Agents SDK adapter, generated: whatever the model
sends as a function call's arguments (objects with extra keys, aliases, wrong types, nested
values, duplicate keys, broken JSON, non-objects, traversal paths), the SDK's own run loop and
the tool's own parameter model are the oracle:

- a tool body runs only with arguments the guard allowed, and exactly those arguments;
- what it runs with is inside the policy (an independent path check);
- every call ends in exactly one final decision or an interruption, and nothing runs twice.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from agents import Agent, RunConfig, Runner, ToolExecutionConfig, function_tool
from agents_sdk_fakes import call, say, scripted
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from guardrails_plugin import Decision, Effect, Event, Guard, Policy, ToolCall, allow
from guardrails_plugin.agents_sdk import guard_agent
from guardrails_plugin.scopes import Number, Paths

ROOT = "/data"

paths = st.one_of(
    st.sampled_from(
        [
            "/data/a",
            "/data/../etc/passwd",
            "/etc/shadow",
            "/data",
            "/datax/a",
            "data/a",
            "/data/./b",
            "//data/a",
            "/data/a\x00/../../etc",
            "",
            "/DATA/a",
            "/data/\u202e",
        ]
    ),
    st.text(alphabet="/.ad\\x\x00", max_size=12),
    st.text(alphabet="ab./", max_size=8).map(lambda tail: "/data/" + tail),
)
inside = st.text(alphabet="ab./", max_size=8).map(lambda tail: "/data/" + tail)  # fmt: skip
values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-5, 500), st.floats(allow_nan=False), paths
    ),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)  # fmt: skip
keys = st.sampled_from(["path", "limit", "Path", "path ", "extra", "__proto__", "pat\u0068"])
objects = st.dictionaries(keys, st.one_of(paths, values), max_size=3)


@st.composite
def payloads(draw: st.DrawFn) -> str:
    kinds = ["shaped"] * 5 + ["object", "object", "dup", "raw", "cut", "other"]
    kind = draw(st.sampled_from(kinds))
    if kind == "shaped":  # the tool's own keys, adversarial values, sometimes one key more
        path = draw(st.one_of(inside, paths))
        doc = {"path": path, "limit": draw(st.one_of(st.integers(0, 100), st.integers(), values))}
        if draw(st.integers(0, 3)) == 0:
            doc.update(draw(st.dictionaries(keys, values, max_size=1)))
        return json.dumps(doc)
    if kind == "object":
        return json.dumps(draw(objects))
    if kind == "dup":  # the same key twice: json.loads keeps the last, as the tool does
        a, b = draw(paths), draw(paths)
        return f'{{"path": {json.dumps(a)}, "limit": 1, "path": {json.dumps(b)}}}'
    if kind == "cut":
        text = json.dumps(draw(objects))
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if kind == "other":
        return json.dumps(draw(values))
    return draw(st.text(max_size=20))


def _inside(path: Any) -> bool:
    """The oracle: a string path whose normal form lies under /data."""
    if not isinstance(path, str) or "\x00" in path or not path.startswith("/"):
        return False
    norm = posixpath.normpath("/" + path.lstrip("/"))  # Linux reads "//x" as "/x"
    return norm == ROOT or norm.startswith(ROOT + "/")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads(), before_approval=st.booleans())
def test_generated_payloads_never_run_outside_the_policy(
    payload: str, before_approval: bool
) -> None:
    ran: list[dict[str, Any]] = []

    @function_tool
    def read_file(path: str, limit: int) -> str:
        """Read up to ``limit`` lines of a file."""
        ran.append({"path": path, "limit": limit})
        return "contents"

    decided: list[tuple[Event, Decision]] = []
    policy = Policy(
        [
            allow(
                "read_file",
                args={
                    "path": Paths([ROOT], resolve_symlinks=False),
                    "limit": Number(ge=0, le=100, integer=True),
                },
            )
        ]
    )
    guard = Guard(policy, listeners=[lambda e, d: decided.append((e, d))])
    model = scripted(call("read_file", payload, "c1"), say("done"))
    agent = guard_agent(Agent(name="worker", model=model, tools=[read_file]), guard)
    config = RunConfig(
        tool_execution=ToolExecutionConfig(pre_approval_tool_input_guardrails=before_approval)
    )

    result = Runner.run_sync(agent, "read", run_config=config)

    calls = [(e, d) for e, d in decided if isinstance(e, ToolCall)]
    assert len(ran) <= 1
    event("ran" if ran else "interrupted" if result.interruptions else "denied")
    if ran:
        [(decided_call, decision)] = calls
        assert decision.effect is Effect.ALLOW
        assert dict(decided_call.args) == ran[0]  # decided exactly on what the tool received
        assert _inside(ran[0]["path"])
        assert isinstance(ran[0]["limit"], int)
        assert 0 <= ran[0]["limit"] <= 100
    elif result.interruptions:
        # The SDK asked a person about arguments it could not parse; nothing was decided
        # allowed and nothing ran.
        assert all(not d.allowed for _, d in calls)
        assert not before_approval
    else:
        assert [d.effect for _, d in calls] == [Effect.DENY]


# -- the adapter's own type check against jsonschema, the reference ---------------------------

scalar_types = st.sampled_from(["string", "integer", "number", "boolean", "null"])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=3)
)


@st.composite
def scalar_schemas(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, max_size=4))
    props: dict[str, Any] = {}
    for name in names:
        kind = draw(st.one_of(scalar_types, st.lists(scalar_types, min_size=1, max_size=2)))
        spec: dict[str, Any] = {"type": kind, "title": name.upper()}
        if draw(st.booleans()):
            spec["default"] = draw(scalars)
        props[name] = spec
    required = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    return {"type": "object", "properties": props, "required": required,
            "additionalProperties": False}  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(schema=scalar_schemas(), value=st.dictionaries(st.sampled_from("abcde"), scalars))
def test_the_fast_type_check_agrees_with_jsonschema(schema: dict[str, Any], value: Any) -> None:
    from jsonschema import Draft202012Validator

    from guardrails_plugin.agents_sdk._args import received

    args, problem = received(schema, value)
    # The reference: defaulted keys filled in and not required (the tool's model fills them).
    props = schema["properties"]
    filled = {k: v["default"] for k, v in props.items() if "default" in v} | value
    reference = dict(schema, required=[k for k in schema["required"] if "default" not in props[k]])
    expected_ok = Draft202012Validator(reference).is_valid(filled)
    assert (problem is None) == expected_ok, problem
    if problem is None:
        assert args == filled
