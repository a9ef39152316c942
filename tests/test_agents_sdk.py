"""The OpenAI Agents SDK adapter, driven by the SDK's own run loop (``Runner``) with its
scripted model (``agents.testing.ScriptedModel``): decisions applied with the SDK's own
guardrail behaviours, approvals as run-state interruptions (saved, serialized, restored,
resumed), hand-offs checked and reported, the kill switch at model turns and tool calls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agents import (
    Agent,
    RunConfig,
    Runner,
    ToolExecutionConfig,
    ToolInputGuardrailTripwireTriggered,
    function_tool,
    handoff,
)
from agents.exceptions import ModelBehaviorError
from agents.run_state import RunState
from agents_sdk_fakes import Ran, agent, call, say, scripted, tools, turn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails_plugin import (
    AgentMessage,
    Approval,
    Budget,
    BudgetExceeded,
    Decision,
    Effect,
    Event,
    Guard,
    Policy,
    RunKilled,
    ToolCall,
    ToolCallDenied,
    allow,
    ask,
    deny,
)
from guardrails_plugin.agents_sdk import AgentsGuard, answer, guard_agent, guard_of
from guardrails_plugin.cascade import CascadeMonitor
from guardrails_plugin.scopes import Emails, OneOf, Paths, Urls

THREAD = "t-1"


class Seen:
    """A listener: every event the guard decided, with its decision."""

    def __init__(self) -> None:
        self.events: list[tuple[Event, Decision]] = []

    def __call__(self, event: Event, decision: Decision) -> None:
        self.events.append((event, decision))

    def calls(self, tool: str | None = None) -> list[tuple[ToolCall, Decision]]:
        return [
            (e, d)
            for e, d in self.events
            if isinstance(e, ToolCall) and (tool is None or e.tool == tool)
        ]

    def effects(self, tool: str) -> list[Effect]:
        return [d.effect for _, d in self.calls(tool)]


def policy(**kwargs: Any) -> Policy:
    return Policy(
        [
            allow("search", id="search"),
            allow("read_file", args={"path": Paths(["/data"])}, id="read-data"),
            ask("send_email", args={"to": Emails(domains=["example.com"])}, id="mail-needs-ok"),
            deny("delete_file", id="never-delete"),
        ],
        **kwargs,
    )


@pytest.fixture
def ran() -> Ran:
    return []


@pytest.fixture
def seen() -> Seen:
    return Seen()


def outputs(result: Any) -> dict[str, str]:
    """Tool outputs the model read, by call id."""
    out: dict[str, str] = {}
    for item in result.new_items:
        raw = item.raw_item
        if isinstance(raw, dict) and raw.get("type") == "function_call_output":
            out[raw["call_id"]] = str(raw["output"])
    return out


def run(agent: Agent[Any], input: Any, mode: str) -> Any:
    if mode == "sync":
        return Runner.run_sync(agent, input)
    return asyncio.run(Runner.run(agent, input))


MODES = ["sync", "async"]


# -- allow, deny, malformed ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_out_of_scope_argument_is_denied_and_the_model_reads_why(
    ran: Ran, seen: Seen, mode: str
) -> None:
    model = scripted(
        turn(call("read_file", {"path": "/etc/passwd"}, "c1"), call("read_file", {"path": "/data/a"}, "c2")),
        say("done"),
    )  # fmt: skip
    guard = Guard(policy(), listeners=[seen])
    agent = guard_agent(
        Agent(name="worker", model=model, tools=list(tools(ran).values())), guard, thread=THREAD
    )

    result = run(agent, "read", mode)

    assert ran == [("read_file", {"path": "/data/a"})]
    out = outputs(result)
    assert "outside the allowed roots" in out["c1"]
    assert "read-data" not in out["c2"]
    assert out["c2"] == "Q3 revenue: 1.2M"
    assert seen.effects("read_file") == [Effect.DENY, Effect.ALLOW]
    [(denied, _), _] = seen.calls("read_file")
    assert (denied.agent, denied.thread_id, denied.call_id) == ("worker", THREAD, "c1")
    assert result.final_output == "done"


def test_on_deny_raise_uses_the_sdks_tripwire_with_the_decision(ran: Ran) -> None:
    model = scripted(call("delete_file", {"path": "/data/a"}, "c1"), say("done"))
    agent = guard_agent(
        Agent(name="worker", model=model, tools=list(tools(ran).values())),
        Guard(policy()),
        on_deny="raise",
    )

    with pytest.raises(ToolInputGuardrailTripwireTriggered) as info:
        Runner.run_sync(agent, "delete")

    decision = info.value.output.output_info
    assert isinstance(decision, Decision)
    assert decision.rule == "never-delete"
    assert ran == []


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"path": "/data/a", "mode": "w"}', "argument(s) 'mode' are not in the schema"),
        ('{"Path": "/data/a"}', "argument(s) 'Path' are not in the schema"),
        ('{"path": ["/data/a"]}', "schema rejects these arguments: path: ['/data/a'] is not"),
        ('{"path": 7}', "schema rejects these arguments: path: 7 is not of type 'string'"),
        ("{}", "schema rejects these arguments: 'path' is a required property"),
    ],
)
def test_calls_the_tool_would_not_read_as_decided_are_malformed(
    ran: Ran, seen: Seen, raw: str, problem: str
) -> None:
    model = scripted(call("read_file", raw, "c1"), say("done"))
    agent = guard_agent(
        Agent(name="worker", model=model, tools=list(tools(ran).values())),
        Guard(policy(), listeners=[seen]),
    )

    result = Runner.run_sync(agent, "read")

    assert ran == []
    [(_, decision)] = seen.calls("read_file")
    assert decision.rule == "malformed-call"
    assert problem in decision.reason
    assert "malformed-call" in outputs(result)["c1"]


UNPARSEABLE = [
    ('"/data/a"', "expected an object of named arguments, found string"),
    ('["/data/a"]', "expected an object of named arguments, found array"),
    ('{"path": "/data/a"', "not valid JSON"),
    ('{"path": NaN}', "schema rejects these arguments: path: nan is not of type 'string'"),
]


@pytest.mark.parametrize(("raw", "problem"), UNPARSEABLE)
def test_arguments_the_sdk_cannot_parse_are_denied_before_a_person_sees_them(
    ran: Ran, seen: Seen, raw: str, problem: str
) -> None:
    """The SDK asks a person about arguments it cannot parse without consulting the guard;
    with the guardrails run before approvals, the guard denies them first."""
    model = scripted(call("read_file", raw, "c1"), say("done"))
    agent = guard_agent(
        Agent(name="worker", model=model, tools=list(tools(ran).values())),
        Guard(policy(), listeners=[seen]),
    )
    config = RunConfig(tool_execution=ToolExecutionConfig(pre_approval_tool_input_guardrails=True))

    result = Runner.run_sync(agent, "read", run_config=config)

    assert ran == []
    assert result.interruptions == []
    [(_, decision)] = seen.calls("read_file")
    assert decision.rule == "malformed-call"
    assert problem in decision.reason


@pytest.mark.parametrize(("raw", "problem"), UNPARSEABLE)
def test_arguments_the_sdk_cannot_parse_are_denied_once_approved(
    ran: Ran, seen: Seen, raw: str, problem: str
) -> None:
    model = scripted(call("read_file", raw, "c1"), say("done"))
    agent = guard_agent(
        Agent(name="worker", model=model, tools=list(tools(ran).values())),
        Guard(policy(), listeners=[seen]),
    )
    first = Runner.run_sync(agent, "read")
    assert [i.tool_name for i in first.interruptions] == ["read_file"]
    state = first.to_state()
    state.approve(first.interruptions[0])

    Runner.run_sync(agent, state)

    assert ran == []
    [(_, decision)] = seen.calls("read_file")
    assert decision.rule == "malformed-call"
    assert problem in decision.reason


def test_a_call_id_shared_by_two_calls_of_one_turn_runs_neither(ran: Ran, seen: Seen) -> None:
    model = scripted(
        turn(call("search", {"query": "a"}, "dup"), call("search", {"query": "b"}, "dup")),
        say("done"),
    )
    guard = Guard(policy(budgets=[Budget.calls(5, tools="search", per="thread")]), listeners=[seen])
    agent = guard_agent(
        Agent(name="worker", model=model, tools=list(tools(ran).values())), guard, thread=THREAD
    )

    with pytest.raises(ModelBehaviorError, match="reused a tool call ID"):
        Runner.run_sync(agent, "go")

    assert ran == []
    assert guard.store.total("budget/calls of search per thread/thread=" + THREAD) == 0


# -- budgets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_budget_exhausted_denies_the_next_call(ran: Ran, seen: Seen, mode: str) -> None:
    model = scripted(
        call("search", {"query": "a"}, "c1"),
        call("search", {"query": "b"}, "c2"),
        call("search", {"query": "c"}, "c3"),
        say("done"),
    )
    guard = Guard(policy(budgets=[Budget.calls(2, tools="search", per="thread")]), listeners=[seen])
    agent = guard_agent(
        Agent(name="worker", model=model, tools=list(tools(ran).values())), guard, thread=THREAD
    )

    result = run(agent, "search", mode)

    assert [a["query"] for _, a in ran] == ["a", "b"]
    assert seen.effects("search") == [Effect.ALLOW, Effect.ALLOW, Effect.DENY]
    assert seen.calls("search")[-1][1].kind == "budget"
    assert "2 of 2 calls used" in outputs(result)["c3"]


# -- approvals -------------------------------------------------------------------------------


def _mail_agent(ran: Ran, guard: Guard, *after: Any, **kw: Any) -> Agent[Any]:
    model = scripted(
        call("send_email", {"to": "boss@example.com", "body": "Q3"}, "m1"),
        *(after or (say("done"),)),
    )
    return guard_agent(
        Agent(name="worker", model=model, tools=list(tools(ran).values())),
        guard,
        thread=THREAD,
        **kw,
    )


@pytest.mark.parametrize("mode", MODES)
def test_ask_interrupts_the_run_and_an_approval_runs_the_call_once(
    ran: Ran, seen: Seen, mode: str
) -> None:
    guard = Guard(policy(budgets=[Budget.calls(3, tools="send_email")]), listeners=[seen])
    agent = _mail_agent(ran, guard)

    first = run(agent, "mail the boss", mode)

    assert ran == []
    assert [i.tool_name for i in first.interruptions] == ["send_email"]
    state = first.to_state()
    state.approve(first.interruptions[0])
    second = run(agent, state, mode)

    assert ran == [("send_email", {"to": "boss@example.com", "body": "Q3"})]
    assert second.final_output == "done"
    assert seen.effects("send_email") == [Effect.ASK, Effect.ALLOW]
    assert seen.calls("send_email")[-1][1].kind == "approval"


def test_a_saved_state_resumed_twice_runs_the_approved_call_once(ran: Ran, seen: Seen) -> None:
    guard = Guard(policy(), listeners=[seen])
    agent = _mail_agent(ran, guard, say("done"), say("done again"))
    first = Runner.run_sync(agent, "mail the boss")
    state = first.to_state()
    state.approve(first.interruptions[0])
    saved = state.to_string()

    restored = [asyncio.run(RunState.from_string(agent, saved)) for _ in range(2)]
    results = [Runner.run_sync(agent, s) for s in restored]

    assert ran == [("send_email", {"to": "boss@example.com", "body": "Q3"})]
    assert seen.effects("send_email") == [Effect.ASK, Effect.ALLOW, Effect.DENY]
    assert seen.calls("send_email")[-1][1].rule == "exactly-once"
    assert "exactly-once" in outputs(results[1])["m1"]


def test_resume_in_a_new_guard_from_a_serialized_state(ran: Ran) -> None:
    """Another process: a new Guard and AgentsGuard on the same store, the state restored
    from its string, the approval given after the restore."""
    store_guard = Guard(policy())
    first = Runner.run_sync(_mail_agent(ran, store_guard), "mail the boss")
    saved = first.to_state().to_string()

    later = Guard(policy(), store=store_guard.store)
    agent = _mail_agent(ran, later, say("sent it"))
    state = asyncio.run(RunState.from_string(agent, saved))
    [item] = state.get_interruptions()
    state.approve(item)
    result = Runner.run_sync(agent, state)

    assert ran == [("send_email", {"to": "boss@example.com", "body": "Q3"})]
    assert result.final_output == "sent it"


def test_rejected_through_the_sdk_never_runs_and_gives_the_budget_back(
    ran: Ran, seen: Seen
) -> None:
    budget = Budget.calls(1, tools="send_email", per="thread")
    guard = Guard(policy(budgets=[budget]), listeners=[seen])
    agent = _mail_agent(ran, guard)
    first = Runner.run_sync(agent, "mail the boss")
    assert guard.store.total(budget.key(ToolCall("send_email", thread_id=THREAD))) == 1
    state = first.to_state()
    state.reject(first.interruptions[0], rejection_message="not today")

    result = Runner.run_sync(agent, state)

    assert ran == []
    assert "not today" in outputs(result)["m1"]
    assert seen.effects("send_email") == [Effect.ASK, Effect.DENY]
    assert seen.calls("send_email")[-1][1].kind == "approval"
    assert guard.store.total(budget.key(ToolCall("send_email", thread_id=THREAD))) == 0


@pytest.mark.parametrize("mode", MODES)
def test_an_edit_is_rechecked_and_runs_with_the_edited_arguments(
    ran: Ran, seen: Seen, mode: str
) -> None:
    guard = Guard(policy(), listeners=[seen])
    agent = _mail_agent(ran, guard)
    first = run(agent, "mail the boss", mode)
    state = first.to_state()

    answer(state, first.interruptions[0], Approval.edit({"to": "team@example.com", "body": "Q3"}))
    run(agent, state, mode)

    assert ran == [("send_email", {"to": "team@example.com", "body": "Q3"})]
    assert seen.effects("send_email") == [Effect.ASK, Effect.MODIFY]
    assert seen.calls("send_email")[-1][1].reason.startswith("edited and re-checked")


def test_an_edit_out_of_policy_is_denied(ran: Ran, seen: Seen) -> None:
    guard = Guard(policy(), listeners=[seen])
    agent = _mail_agent(ran, guard)
    first = Runner.run_sync(agent, "mail the boss")
    state = first.to_state()

    answer(
        state, first.interruptions[0], {"type": "edit", "args": {"to": "m@evil.com", "body": "x"}}
    )
    result = Runner.run_sync(agent, state)

    assert ran == []
    assert "edited call is out of policy" in outputs(result)["m1"]
    assert seen.effects("send_email") == [Effect.ASK, Effect.DENY]


def test_an_edit_the_tool_could_not_read_is_malformed(ran: Ran, seen: Seen) -> None:
    guard = Guard(policy(), listeners=[seen])
    agent = _mail_agent(ran, guard)
    first = Runner.run_sync(agent, "mail the boss")
    state = first.to_state()

    answer(state, first.interruptions[0], Approval.edit({"to": "a@example.com", "bcc": "x"}))
    Runner.run_sync(agent, state)

    assert ran == []
    assert seen.calls("send_email")[-1][1].rule == "malformed-call"


def test_a_response_goes_to_the_model_in_the_tools_place(ran: Ran, seen: Seen) -> None:
    guard = Guard(policy(), listeners=[seen])
    agent = _mail_agent(ran, guard)
    first = Runner.run_sync(agent, "mail the boss")
    state = first.to_state()

    answer(state, first.interruptions[0], Approval.respond("the boss is on leave"))
    result = Runner.run_sync(agent, state)

    assert ran == []
    assert outputs(result)["m1"] == "the boss is on leave"
    assert seen.effects("send_email") == [Effect.ASK, Effect.RESPOND]


def test_a_rejection_through_answer_is_recorded_once(ran: Ran, seen: Seen) -> None:
    guard = Guard(policy(), listeners=[seen])
    agent = _mail_agent(ran, guard)
    first = Runner.run_sync(agent, "mail the boss")
    state = first.to_state()

    answer(state, first.interruptions[0], Approval.reject("no", approver="ops"))
    result = Runner.run_sync(agent, state)

    assert ran == []
    assert outputs(result)["m1"] == "no"
    assert seen.effects("send_email") == [Effect.ASK, Effect.DENY]
    assert seen.calls("send_email")[-1][1].approver == "ops"
    with pytest.raises(ValueError, match="not waiting"):
        answer(state, first.interruptions[0], True)


def test_the_guards_own_approver_answers_without_interrupting(ran: Ran, seen: Seen) -> None:
    guard = Guard(policy(), listeners=[seen], approver=lambda r: Approval.approve(approver="bot"))
    result = Runner.run_sync(_mail_agent(ran, guard), "mail the boss")

    assert result.interruptions == []
    assert ran == [("send_email", {"to": "boss@example.com", "body": "Q3"})]
    assert seen.effects("send_email") == [Effect.ASK, Effect.ALLOW]


def test_the_tools_own_needs_approval_still_asks_and_the_guard_decides_after(
    ran: Ran, seen: Seen
) -> None:
    @function_tool(needs_approval=True)
    def search(query: str) -> str:
        """Search."""
        ran.append(("search", {"query": query}))
        return "found"

    model = scripted(call("search", {"query": "x"}, "s1"), say("done"))
    guard = Guard(policy(budgets=[Budget.calls(1, tools="search", per="thread")]), listeners=[seen])
    agent = guard_agent(Agent(name="worker", model=model, tools=[search]), guard, thread=THREAD)
    first = Runner.run_sync(agent, "go")
    assert [i.tool_name for i in first.interruptions] == ["search"]
    key = "budget/calls of search per thread/thread=" + THREAD
    assert guard.store.total(key) == 0  # the charge of the first decision was given back
    state = first.to_state()
    state.approve(first.interruptions[0])

    Runner.run_sync(agent, state)

    assert ran == [("search", {"query": "x"})]
    assert guard.store.total(key) == 1


_DOMAINS = {
    "example.com": "ask-colleagues",
    "partner.org": "ask-partners",
    "evil.org": "no-evil",
    "other.net": None,  # allowed
}


def _regions_policy() -> Policy:
    return Policy(
        [
            deny("send_email", args={"to": Emails(domains=["evil.org"])}, id="no-evil"),
            ask("send_email", args={"to": Emails(domains=["example.com"])}, id="ask-colleagues"),
            ask("send_email", args={"to": Emails(domains=["partner.org"])}, id="ask-partners"),
            allow("send_email", id="mail-others"),
        ]
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.sampled_from(["example.com", "partner.org"]),
    later=st.lists(st.sampled_from(sorted(_DOMAINS)), min_size=1, max_size=5),
    restore=st.booleans(),
)
def test_always_approve_answers_later_asks_of_the_same_rule_only(
    first: str, later: list[str], restore: bool
) -> None:
    # The SDK asks no one about a tool approved "always" (it reads the standing approval
    # before needs_approval): the guard still decides every later call's arguments; the
    # standing approval answers the ask rule the person saw, any other ask is refused
    # (never run without a person), and a deny still denies.
    ran: Ran = []
    sends = [(first, "m0"), *((d, f"m{i + 1}") for i, d in enumerate(later))]
    model = scripted(
        *(call("send_email", {"to": f"x@{d}", "body": "hi"}, i) for d, i in sends), say("done")
    )
    guard = Guard(_regions_policy())
    worker = Agent(name="worker", model=model, tools=list(tools(ran).values()))
    agent = guard_agent(worker, guard, thread=THREAD)
    asked = Runner.run_sync(agent, "mail everyone")
    [item] = asked.interruptions
    state = asked.to_state()
    state.approve(item, always_approve=True)
    if restore:  # another process: the standing approval travels in the saved state
        later_guard = Guard(_regions_policy(), store=guard.store)
        agent = guard_agent(worker, later_guard, thread=THREAD)
        state = asyncio.run(RunState.from_string(agent, state.to_string()))
    done = Runner.run_sync(agent, state)

    assert done.interruptions == []
    sent = [d for d, _ in sends if _DOMAINS[d] in (None, _DOMAINS[first])]
    assert [args["to"] for _, args in ran] == [f"x@{d}" for d in sent]
    said = outputs(done)
    for d, call_id in sends[1:]:
        rule = _DOMAINS[d]
        if rule is None or rule == _DOMAINS[first]:
            assert said[call_id] == "sent"
        else:
            assert f"rule {rule!r}" in said[call_id]


# -- the kill switch -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_kill_switch_mid_run_stops_the_next_model_turn(ran: Ran, seen: Seen, mode: str) -> None:
    guard = Guard(policy(), listeners=[seen])

    @function_tool
    def search(query: str) -> str:
        """Search."""
        ran.append(("search", {"query": query}))
        guard.controls.kill(thread=THREAD, reason="runaway", by="ops")
        return "found"

    model = scripted(call("search", {"query": "x"}, "s1"), say("never"))
    agent = guard_agent(Agent(name="worker", model=model, tools=[search]), guard, thread=THREAD)

    with pytest.raises(RunKilled):
        run(agent, "go", mode)

    assert ran == [("search", {"query": "x"})]
    assert model.remaining_steps == 1  # the second turn never reached the model


def test_kill_switch_denies_a_call_of_the_same_turn(ran: Ran, seen: Seen) -> None:
    guard = Guard(policy(), listeners=[seen])
    guard.controls.kill(agent="worker")
    model = scripted(call("search", {"query": "x"}, "s1"), say("never"))
    agent = guard_agent(Agent(name="worker", model=model, tools=list(tools(ran).values())), guard)

    with pytest.raises(RunKilled):
        Runner.run_sync(agent, "go")
    assert model.remaining_steps == 2
    assert ran == []


def test_a_kill_while_a_person_approves_denies_the_approved_call(ran: Ran, seen: Seen) -> None:
    budget = Budget.calls(3, tools="send_email", per="thread")
    guard = Guard(policy(budgets=[budget]), listeners=[seen])
    agent = _mail_agent(ran, guard)
    first = Runner.run_sync(agent, "mail the boss")
    state = first.to_state()
    state.approve(first.interruptions[0])
    guard.controls.kill(thread=THREAD, reason="incident")

    with pytest.raises(RunKilled):
        Runner.run_sync(agent, state)

    assert ran == []
    assert seen.effects("send_email") == [Effect.ASK, Effect.ALLOW, Effect.DENY]
    assert seen.calls("send_email")[-1][1].kind == "control"
    assert guard.store.total(budget.key(ToolCall("send_email", thread_id=THREAD))) == 0


# -- hand-offs -------------------------------------------------------------------------------


class Recording(CascadeMonitor):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[AgentMessage] = []

    def observe(self, msg: AgentMessage) -> Any:
        self.messages.append(msg)
        return super().observe(msg)


def _team(
    ran: Ran, *triage_turns: Any, billing_turns: Any = (), tech_turns: Any = ()
) -> Agent[Any]:
    t = tools(ran)
    tech = Agent(name="tech", model=scripted(*tech_turns), tools=[t["read_file"]])
    billing = Agent(
        name="billing", model=scripted(*billing_turns), tools=[t["search"]], handoffs=[tech]
    )
    return Agent(name="triage", model=scripted(*triage_turns), handoffs=[billing, handoff(tech)])


def test_hand_offs_are_checked_and_reported_with_their_causal_chain(ran: Ran, seen: Seen) -> None:
    monitor = Recording()
    guard = Guard(
        Policy(
            [allow("handoff"), allow("search"), allow("read_file", args={"path": Paths(["/data"])})]
        ),
        cascade=monitor,
        listeners=[seen],
    )
    triage = _team(
        ran,
        turn(say("billing can help with ORD-7781"), call("transfer_to_billing", {}, "h1")),
        billing_turns=(call("search", {"query": "ORD-7781"}, "s1"), call("transfer_to_tech", {}, "h2")),
        tech_turns=(call("read_file", {"path": "/data/ORD-7781"}, "r1"), say("fixed")),
    )  # fmt: skip

    result = Runner.run_sync(guard_agent(triage, guard, thread=THREAD), "my order is broken")

    assert result.final_output == "fixed"
    assert result.last_agent.name == "tech"
    assert [a for a, _ in ran] == ["search", "read_file"]
    hops = [(c.agent, dict(c.args), c.call_id) for c, _ in seen.calls("handoff")]
    assert hops == [("triage", {"to": "billing"}, "h1"), ("billing", {"to": "tech"}, "h2")]
    first, second = monitor.messages
    assert (first.sender, first.recipient, first.parent, first.generation) == (
        "triage", "billing", None, 0,
    )  # fmt: skip
    assert (second.sender, second.recipient, second.parent, second.generation) == (
        "billing", "tech", "h1", 1,
    )  # fmt: skip
    assert "ORD-7781" in first.content
    assert second.path == ("triage",)


def test_a_denied_hand_off_stops_the_run(ran: Ran, seen: Seen) -> None:
    guard = Guard(
        Policy([allow("handoff", args={"to": values_one_of("billing")}), allow("search")]),
        listeners=[seen],
    )
    triage = _team(ran, call("transfer_to_tech", {}, "h1"), tech_turns=(say("hi"),))

    with pytest.raises(ToolCallDenied) as info:
        Runner.run_sync(guard_agent(triage, guard), "help")

    assert info.value.decision.tool == "handoff"
    assert [d.effect for _, d in seen.calls("handoff")] == [Effect.DENY]


def values_one_of(*names: str) -> Any:
    from guardrails_plugin.scopes import OneOf

    return OneOf(names)


def test_wrap_copies_the_team_and_refuses_what_it_cannot_guard(ran: Ran) -> None:
    from agents import WebSearchTool

    triage = _team(ran)
    guarded = guard_agent(triage, Guard(policy()))
    assert guarded is not triage
    assert triage.hooks is None
    billing = guarded.handoffs[0]
    assert billing._agent_ref is not None
    assert billing._agent_ref() is not None
    assert guard_of(guarded).wrap(guarded) is guarded
    with pytest.raises(TypeError, match="WebSearchTool"):
        guard_agent(Agent(name="w", tools=[WebSearchTool()]), Guard(policy()))
    assert guard_agent(
        Agent(name="w", tools=[WebSearchTool()]), Guard(policy()), unguarded=("web_search",)
    )
    with pytest.raises(ValueError, match="on_deny"):
        AgentsGuard(Guard(policy()), on_deny="drop")  # type: ignore[arg-type]


# -- model budgets from the SDK's usage ------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_model_tokens_from_the_sdks_usage_stop_the_run(ran: Ran, seen: Seen, mode: str) -> None:
    budget = Budget.tokens(100, of="model", per="thread")
    guard = Guard(policy(budgets=[budget]), listeners=[seen])
    model = scripted(
        turn(call("search", {"query": "a"}, "c1"), tokens=60),
        turn(call("search", {"query": "b"}, "c2"), tokens=60),
        turn(say("never"), tokens=1),
    )
    agent = guard_agent(
        Agent(name="worker", model=model, tools=list(tools(ran).values())), guard, thread=THREAD
    )

    with pytest.raises(BudgetExceeded) as info:
        run(agent, "search", mode)

    assert ran == [("search", {"query": "a"})]  # the second call came with 120 tokens used
    assert seen.effects("search") == [Effect.ALLOW, Effect.DENY]
    assert "120 of 100 model tokens used" in info.value.decision.reason
    assert model.remaining_steps == 1
    assert guard.store.total(budget.key(ToolCall("x", thread_id=THREAD))) == 120


def test_one_agents_guard_wraps_agent_after_agent_each_with_its_own_model(ran: Ran) -> None:
    """A long-lived AgentsGuard wrapping a fresh agent per request: a new agent may take the
    memory (and id) of a collected one; its copy must still be its own."""
    sdk = AgentsGuard(Guard(policy()))
    models = [scripted(say(f"done {i}")) for i in range(300)]
    for model in models:  # each original is collected as soon as it is wrapped
        assert sdk.wrap(Agent(name="worker", model=model, tools=[])).model is model
    agent = sdk.wrap(Agent(name="worker", model=models[7], tools=list(tools(ran).values())))
    assert Runner.run_sync(agent, "go").final_output == "done 7"


async def test_concurrent_resumes_of_one_saved_state_run_the_call_once(ran: Ran) -> None:
    guard = Guard(policy())
    agent = _mail_agent(ran, guard, say("done"), say("done"), say("done"))
    first = await Runner.run(agent, "mail the boss")
    state = first.to_state()
    state.approve(first.interruptions[0])
    saved = state.to_string()
    restored = [await RunState.from_string(agent, saved) for _ in range(3)]

    results = await asyncio.gather(*(Runner.run(agent, s) for s in restored))

    assert ran == [("send_email", {"to": "boss@example.com", "body": "Q3"})]
    refused = [r for r in results if "exactly-once" in outputs(r)["m1"]]
    assert len(refused) == 2


class _FailingStore:
    """A store whose ``put_if`` fails from a given call on (the claim of an approval)."""

    def __init__(self, inner: Any, fail_from: int) -> None:
        self._inner, self._n, self._fail_from = inner, 0, fail_from

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def aput_if(self, *args: Any, **kwargs: Any) -> bool:
        self._n += 1
        if self._n >= self._fail_from:
            raise OSError("disk gone")
        return bool(await self._inner.aput_if(*args, **kwargs))


def test_a_store_failing_while_an_approval_is_claimed_runs_nothing(ran: Ran) -> None:
    guard = Guard(policy())
    agent = _mail_agent(ran, guard)
    first = Runner.run_sync(agent, "mail the boss")  # the ask is written (put_if #1)
    state = first.to_state()
    state.approve(first.interruptions[0])
    guard.store = _FailingStore(guard.store, fail_from=1)  # type: ignore[assignment]

    with pytest.raises(Exception, match="disk gone"):
        Runner.run_sync(agent, state)
    assert ran == []


@pytest.mark.parametrize(
    ("scope", "sent", "secret"),
    [
        (OneOf(["id-77-allowed"]), "nope", "id-77-allowed"),
        (Urls(["intranet.corp.example"]), "https://evil.example/x", "intranet.corp.example"),
        (Paths(["/srv/payroll-root"]), "/etc/passwd", "/srv/payroll-root"),
        (Emails(domains=["partner.example"]), "a@evil.example", "partner.example"),
    ],
)
def test_the_model_reads_what_was_wrong_never_what_would_pass(
    scope: Any, sent: str, secret: str
) -> None:
    @function_tool
    def lookup(x: str) -> str:
        """Look something up."""
        return "ran"

    guard = Guard(Policy([allow("lookup", args={"x": scope})]))
    wrapped = guard_agent(
        agent("a", scripted(call("lookup", {"x": sent}, "c1"), say("done")), [lookup]), guard
    )
    result = Runner.run_sync(wrapped, "go")
    outputs = [str(i.output) for i in result.new_items if i.type == "tool_call_output_item"]
    assert len(outputs) == 1
    assert "denied" in outputs[0]
    assert sent in outputs[0]  # what the model sent, so it can correct itself
    assert secret not in outputs[0]  # never the values the policy allows
