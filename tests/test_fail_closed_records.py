"""A result the store fails to record keeps its effect: taint still reaches the sinks,
result tokens still count against their budget (held by the guard until written).

Faults are injected at every store operation of a real agent run in turn (the worst moment
is whichever one it is), and the tools themselves are the oracle: once the source's body
ran, the sink's body never runs; once the budget is spent, no further call runs.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from fakes import Ran, recording_tool, tool_messages, user
from langchain.agents import create_agent
from langchain_core.tools import BaseTool

from guardrails_plugin import (
    Budget,
    DataFlow,
    Effect,
    Guard,
    GuardrailsError,
    Policy,
    StoreError,
    ToolCall,
    ToolResult,
    allow,
)
from guardrails_plugin.langchain import (
    AsyncGuardCallbackHandler,
    GuardCallbackHandler,
    GuardMiddleware,
)
from guardrails_plugin.store import MemoryStore
from guardrails_plugin.testing import ScriptedChatModel, tool_call


class FaultyStore(MemoryStore):
    """Fails the ``fail_at``-th operation (counting from 0) of the kinds in ``ops``, or every
    one from then on with ``stay_down``."""

    OPS = ("charge", "total", "members", "add_members", "remove_members", "get", "put")

    def __init__(
        self, fail_at: int | None = None, *, ops: tuple[str, ...] = OPS, stay_down: bool = False
    ) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.fail_ops = ops
        self.stay_down = stay_down
        self.seen = 0
        self.failed: list[str] = []

    def _tick(self, op: str) -> None:
        if op not in self.fail_ops:
            return
        n = self.seen
        self.seen += 1
        if self.fail_at is not None and (
            n == self.fail_at or (self.stay_down and n > self.fail_at)
        ):
            self.failed.append(op)
            raise StoreError(f"injected fault in {op} (#{n})")

    def charge(self, *args: Any, **kwargs: Any) -> bool:
        self._tick("charge")
        return super().charge(*args, **kwargs)

    def total(self, *args: Any, **kwargs: Any) -> float:
        self._tick("total")
        return super().total(*args, **kwargs)

    def members(self, *args: Any, **kwargs: Any) -> frozenset[str]:
        self._tick("members")
        return super().members(*args, **kwargs)

    def add_members(self, *args: Any, **kwargs: Any) -> Any:
        self._tick("add_members")
        return super().add_members(*args, **kwargs)

    def remove_members(self, *args: Any, **kwargs: Any) -> Any:
        self._tick("remove_members")
        return super().remove_members(*args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self._tick("get")
        return super().get(*args, **kwargs)

    def put(self, *args: Any, **kwargs: Any) -> Any:
        self._tick("put")
        return super().put(*args, **kwargs)

    # the async twins of MemoryStore call the sync verbs: faults apply to both


def flow_policy(**kwargs: Any) -> Policy:
    return Policy(
        [allow("fetch_url"), allow("send_email")],
        flows=[DataFlow(sources="fetch_url", sinks="send_email", effect="deny", id="web-to-mail")],
        **kwargs,
    )


def token_policy(limit: int = 20) -> Policy:
    return Policy(
        [allow("read")],
        budgets=[
            Budget.tokens(limit, of="results", tools="read", per="thread", id="result-tokens")
        ],
    )


LONG = "word " * 60  # well over 20 tokens


# -- the guard itself ----------------------------------------------------------------------


def test_taint_the_store_failed_to_write_still_reaches_the_sink() -> None:
    store = FaultyStore(0, ops=("add_members",))
    guard = Guard(flow_policy(), store=store)

    recorded = guard.record(ToolResult("fetch_url", "<html>", thread_id="t1"))
    sink = guard.check(ToolCall("send_email", {"to": "a@b.c"}, thread_id="t1"))

    assert recorded.rule == "store-error"
    assert store.failed == ["add_members"]
    assert sink.effect is Effect.DENY
    assert sink.rule == "web-to-mail"
    # written by the check that needed it: the store has the label now, memory holds nothing
    assert store.members("taint/t1") == frozenset({"fetch_url"})
    assert guard.unwritten == 0
    assert guard.labels("t1") == frozenset({"fetch_url"})


def test_taint_held_while_the_store_stays_down_denies_the_sink() -> None:
    store = FaultyStore(0, ops=("add_members",), stay_down=True)
    guard = Guard(flow_policy(), store=store)

    guard.record(ToolResult("fetch_url", "<html>", thread_id="t1"))
    sink = guard.check(ToolCall("send_email", {"to": "a@b.c"}, thread_id="t1"))
    other_run = guard.check(ToolCall("send_email", {"to": "a@b.c"}, thread_id="t2"))

    assert sink.effect is Effect.DENY
    assert guard.unwritten == 1
    assert guard.labels("t1") == frozenset({"fetch_url"})
    assert other_run.effect is Effect.ALLOW  # held taint stays in its own run


async def test_taint_held_async() -> None:
    store = FaultyStore(0, ops=("add_members",))
    guard = Guard(flow_policy(), store=store)

    recorded = await guard.arecord(ToolResult("fetch_url", "<html>", thread_id="t1"))
    sink = await guard.acheck(ToolCall("send_email", {"to": "a@b.c"}, thread_id="t1"))

    assert recorded.rule == "store-error"
    assert sink.rule == "web-to-mail"
    assert await guard.alabels("t1") == frozenset({"fetch_url"})


def test_result_tokens_the_store_failed_to_charge_still_count() -> None:
    store = FaultyStore(0, ops=("charge",))
    guard = Guard(token_policy(), store=store)

    recorded = guard.record(ToolResult("read", LONG, thread_id="t1"))
    after = guard.check(ToolCall("read", {}, thread_id="t1"))

    assert recorded.rule == "store-error"
    assert after.effect is Effect.DENY
    assert after.rule == "result-tokens"
    assert guard.unwritten == 0  # written by the check that read the budget
    assert (
        store.total(
            Budget.tokens(20, of="results", tools="read", per="thread", id="result-tokens").key(
                ToolCall("read", thread_id="t1")
            )
        )
        > 20
    )


async def test_result_tokens_held_async_while_the_store_stays_down() -> None:
    store = FaultyStore(0, ops=("charge",), stay_down=True)
    guard = Guard(token_policy(), store=store)

    await guard.arecord(ToolResult("read", LONG, thread_id="t1"))
    after = await guard.acheck(ToolCall("read", {}, thread_id="t1"))

    assert after.effect is Effect.DENY
    assert guard.unwritten == 1


# -- adapters: a fault at every store operation of a real run -------------------------------


def _mail_agent(guard: Guard, ran: Ran) -> Any:
    tools = [recording_tool("fetch_url", ran, "url"), recording_tool("send_email", ran, "to")]
    model = ScriptedChatModel(
        [
            [tool_call("fetch_url", url="https://x.org")],
            [tool_call("send_email", to="a@example.com")],
            "done",
        ]
    )
    return create_agent(model, tools=tools, middleware=[GuardMiddleware(guard)])


def _ops_in_clean_run(make: Any) -> int:
    store = FaultyStore(None)
    make(store)
    return store.seen


def _source_then_sink_never(ran: Ran) -> None:
    names = [n for n, _ in ran]
    if "fetch_url" in names:
        assert "send_email" not in names[names.index("fetch_url") :], ran


def test_middleware_no_store_fault_lets_tainted_mail_out() -> None:
    def run(store: FaultyStore) -> Ran:
        ran: Ran = []
        agent = _mail_agent(Guard(flow_policy(), store=store), ran)
        with contextlib.suppress(GuardrailsError):  # a failed kill-switch check ends the run
            agent.invoke(user("go"), {"configurable": {"thread_id": "t1"}})
        return ran

    total = _ops_in_clean_run(run)
    assert total > 3
    for stay_down in (False, True):
        for k in range(total):
            store = FaultyStore(k, stay_down=stay_down)
            ran = run(store)
            assert store.failed, k
            _source_then_sink_never(ran)


async def test_middleware_no_store_fault_lets_tainted_mail_out_async() -> None:
    async def run(store: FaultyStore) -> Ran:
        ran: Ran = []
        agent = _mail_agent(Guard(flow_policy(), store=store), ran)
        with contextlib.suppress(GuardrailsError):
            await agent.ainvoke(user("go"), {"configurable": {"thread_id": "t1"}})
        return ran

    probe = FaultyStore(None)
    await run(probe)
    for k in range(probe.seen):
        store = FaultyStore(k)
        _source_then_sink_never(await run(store))


@pytest.mark.parametrize("handler_type", [GuardCallbackHandler, AsyncGuardCallbackHandler])
async def test_callbacks_no_store_fault_lets_tainted_mail_out(handler_type: type) -> None:
    async def run(store: FaultyStore) -> Ran:
        ran: Ran = []
        fetch: BaseTool = recording_tool("fetch_url", ran, "url")
        mail: BaseTool = recording_tool("send_email", ran, "to")
        handler = handler_type(Guard(flow_policy(), store=store))
        config: Any = {"callbacks": [handler], "metadata": {"thread_id": "t1"}}
        for t, args in ((fetch, {"url": "https://x.org"}), (mail, {"to": "a@example.com"})):
            try:
                if handler_type is AsyncGuardCallbackHandler:
                    await t.ainvoke(args, config=config)
                else:
                    t.invoke(args, config=config)
            except GuardrailsError:  # denied, or the store failed deciding
                pass
        return ran

    probe = FaultyStore(None)
    clean = await run(probe)
    assert [n for n, _ in clean] == ["fetch_url"]  # the policy works without faults
    for k in range(probe.seen):
        _source_then_sink_never(await run(FaultyStore(k)))


def test_middleware_no_store_fault_overspends_result_tokens() -> None:
    def run(store: FaultyStore) -> tuple[Ran, Any]:
        ran: Ran = []
        read = recording_tool("read", ran, "n", returns=LONG)
        model = ScriptedChatModel(
            [[tool_call("read", n=1)], [tool_call("read", n=2)], [tool_call("read", n=3)], "done"]
        )
        agent = create_agent(
            model, tools=[read], middleware=[GuardMiddleware(Guard(token_policy(), store=store))]
        )
        out = None
        with contextlib.suppress(GuardrailsError):
            out = agent.invoke(user("go"), {"configurable": {"thread_id": "t1"}})
        return ran, out

    probe = FaultyStore(None)
    clean, out = run(probe)
    assert len(clean) == 1  # the first result spends the budget
    assert "result-tokens" in str(tool_messages(out)[1].content)
    for stay_down in (False, True):
        for k in range(probe.seen):
            ran, _ = run(FaultyStore(k, stay_down=stay_down))
            assert len(ran) <= 1, (k, ran)
