"""Graph-level fidelity: the scenario's runs through real LangGraph graphs and adapters.

Each shard builds one ``StateGraph``: per agent, a node under ``guard_node`` (the kill
switch, its hand-offs checked and reported to the cascade monitor) that plays a scripted
model — it writes an AI message with the next tool call the simulator draws, or hands the
run to the next agent with ``Command(goto=...)`` — and a ``GuardedToolNode`` running the
simulated tools (decided, run, their results recorded). Calls, results and hand-offs
therefore reach the guard through the adapters, as in production; the simulator plans
the same behaviour as at engine level (``Shard``) and reads the guard's decisions through
a listener, so the report has the same shape.

Differences from engine level: runs go one after another (the next arrives after the last
ended), asks are answered by the guard's approver (``Guard.decide``; the simulated clock
advances by the person's delay), every node step is also a kill-switch check the
adapter makes (``model_call`` events), hand-offs are checked as calls of the ``handoff``
tool (a policy without a rule about it gets ``allow: handoff``, since engine-level
hand-offs are messages the policy does not decide), and a shard may run a step past its
interactions (the step in flight finishes). Much slower: for thousands of interactions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command
from pydantic import create_model

from .._approvals import Approval, ApprovalRequest
from .._decision import Decision, Effect
from .._events import AgentMessage, Event, ToolCall, ToolResult
from ..guard import Guard
from ..langgraph import GuardedToolNode, guard_node
from ..policy import Policy, PolicyToolWarning
from ..store import Store
from ._engine import Shard, _between_f, _cause, _Run
from ._report import SimulationReport
from ._scenario import Scenario

__all__ = ["GraphShard"]

HANDOFF_RULE = {"id": "simulated-handoffs", "allow": "handoff"}


def _with_handoffs(policy: Policy, data: Any) -> Policy:
    """``policy`` with hand-offs allowed, unless one of its rules speaks of them."""
    if not isinstance(data, Mapping):
        return policy
    rules = list(data.get("rules") or [])
    for r in rules:
        if isinstance(r, Mapping):
            named = [r.get(k) for k in ("allow", "ask", "deny")]
            flat = [x for n in named for x in (n if isinstance(n, list) else [n])]
            if "handoff" in flat:
                return policy
    return Policy.from_dict({**data, "rules": [*rules, HANDOFF_RULE]}, source="<simulation>")


class GraphShard(Shard):
    """One shard run through LangGraph (see the module's docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        shard: int,
        interactions: int,
        *,
        store: Store | None = None,
        prefix: str = "",
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.truth: dict[str, tuple[_Run, str | None, bool, bool]] = {}
        self.current: _Run | None = None
        self.pending: tuple[AgentMessage, bool, bool] | None = None
        self.untrusted = False
        self.done: set[str] = set()
        super().__init__(
            scenario, shard, interactions, store=store, prefix=prefix, progress=progress
        )
        self.graph = self._build()

    def _make_guard(self, policy: Policy, data: Any) -> Guard:
        return Guard(
            _with_handoffs(policy, data),
            store=self.store,
            cascade=self.monitor,
            breaker=self.breaker,
            clock=self._clock,
            listeners=[self._heard],
            approver=self._approve,
        )

    # -- the graph ---------------------------------------------------------------------------

    def _tools(self) -> list[BaseTool]:
        keys: dict[str, set[str]] = {}
        for role in self.scenario.roles:
            for t in role.tools:
                found = keys.setdefault(t.name, set())
                found.update(t.args)
                for recorded in self.scenario.recorded.get(t.name, ()):
                    found.update(recorded)
            for a in role.attacks:
                keys.setdefault(a.tool, set()).update(a.args)
        tools: list[BaseTool] = []
        for name, names in sorted(keys.items()):
            fields: dict[str, Any] = dict.fromkeys(sorted(names), (Any, None))
            schema = create_model(f"SimulatedArgs{len(tools)}", **fields)
            tools.append(
                StructuredTool.from_function(
                    func=self._tool(name),
                    name=name,
                    description=f"the simulated tool {name}",
                    args_schema=schema,
                )
            )
        return tools

    def _build(self) -> Any:
        tools = self._tools()
        builder: StateGraph[Any, Any, Any, Any] = StateGraph(MessagesState)
        agents = sorted(self.guards)
        for a in agents:
            guard = self.guards[a]
            builder.add_node(a, guard_node(self._agent(a), guard, on_deny="drop"))
            with warnings.catch_warnings():  # attacks call tools the policy denies: on purpose
                warnings.simplefilter("ignore", PolicyToolWarning)
                node = GuardedToolNode(tools, guard, agent=a)
            builder.add_node(f"{a}__tools", node)
            builder.add_conditional_edges(a, _route(a), [f"{a}__tools", END])
            builder.add_edge(f"{a}__tools", a)
        builder.add_conditional_edges(START, self._entry, agents)
        return builder.compile()

    def _entry(self, state: Any) -> str:
        assert self.current is not None
        return self.current.agent

    def _agent(self, name: str) -> Callable[[Any], Any]:
        def body(state: Any) -> Any:
            run = self.current
            assert run is not None
            if self.pending is not None and self.pending[0].recipient == name:
                msg, relay, compromised = self.pending
                self.pending = None
                self._delivered(run, msg, relay, compromised)
            self.now += _between_f(self.rng, run.role.think)
            if self.events >= self.budget or run.id in self.done:
                return {"messages": [AIMessage("stopping here", name=name)]}
            if run.left > 0:
                call, harmful, side, untrusted = self._plan_call(run)
                assert call.call_id is not None
                self.truth[call.call_id] = (run, harmful, side, untrusted)
                self.untrusted = untrusted
                run.left -= 1
                asked = {"name": call.tool, "args": dict(call.args), "id": call.call_id}
                return {"messages": [AIMessage("", name=name, tool_calls=[asked])]}
            planned = self._plan_handoff(run)
            if planned is None:
                self.done.add(run.id)
                self._finish(run)
                return {"messages": [AIMessage("done", name=name)]}
            self.pending = planned
            self.report.messages += 1
            said = AIMessage(planned[0].content, name=name)
            return Command(goto=planned[0].recipient, update={"messages": [said]})

        body.__name__ = name
        return body

    def _tool(self, tool: str) -> Callable[..., str]:
        def ran(**args: Any) -> str:
            run = self.current
            assert run is not None
            return self._result(run, tool, self.untrusted)

        return ran

    # -- what the guard decided ------------------------------------------------------------------

    def _heard(self, event: Event, d: Decision) -> None:
        run = self.current
        if isinstance(event, ToolCall):
            if event.message is not None:
                kind = "message"
            elif d.kind == "approval":
                kind = "approval"
            else:
                kind = "tool_call"
        elif isinstance(event, ToolResult):
            kind = "tool_result"
        elif isinstance(event, AgentMessage):
            kind = "message"
        else:
            kind = "model_call"
        self._count(kind, d)
        if run is None:
            return
        if kind == "message":
            if not d.allowed:
                self.report.messages_held[_cause(d)] += 1
                self.pending = None
                self._stop_once(run, _cause(d))
        elif kind == "model_call":
            if not d.allowed:
                self._stop_once(run, _cause(d))
        elif kind in ("tool_call", "approval") and isinstance(event, ToolCall):
            if d.effect is Effect.ASK and d.kind != "control":
                self.report.approvals["asked"] += 1
                return
            truth = self.truth.pop(event.call_id or "", None)
            if truth is None:
                return
            cause = self._settle(truth[0], event, d, truth[1], truth[2])
            if cause is not None:
                self._stop_once(truth[0], cause)

    def _approve(self, request: ApprovalRequest) -> Approval:
        truth = self.truth.get(request.call.call_id or "")
        harmful = truth[1] if truth is not None else None
        ap = self.scenario.approvers
        rng = self.rng
        r = self.report
        if rng.random() < ap.never:
            self.now += ap.timeout
            r.approvals["expired"] += 1
            return Approval.reject("nobody answered in time", approver="simulated")
        wait = _between_f(rng, ap.delay)
        self.now += wait
        yes = rng.random() < (ap.approve_harmful if harmful else ap.approve)
        r.approvals["answered"] += 1
        r.approvals["approved" if yes else "rejected"] += 1
        r.approval_wait += wait
        if yes:
            return Approval.approve(approver="simulated")
        return Approval.reject("not this one", approver="simulated")

    def _stop_once(self, run: _Run, cause: str) -> None:
        if run.id not in self.done:
            self.done.add(run.id)
            self._stop(run, cause)

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> SimulationReport:
        """Simulate runs one after another until the shard's interactions are spent."""
        done = 0
        while self.events < self.budget:
            self.now += self.rng.expovariate(self.scenario.arrivals)
            self._one_run()
            if self.progress is not None and self.events > done:
                self.progress(self.events - done)
                done = self.events
        r = self.report
        r.pending.clear()
        r.interactions = self.events
        r.simulated_seconds = self.now
        r.outage["failures"] = self.store.failures
        return r

    def _one_run(self) -> None:
        run = self._start_run()
        self.current = run
        self.pending = None
        try:
            self.graph.invoke(
                {"messages": [HumanMessage(f"work item {run.id}")]},
                {"configurable": {"thread_id": run.id}, "recursion_limit": 100_000},
            )
        except Exception as exc:  # a kill, a pause, a quarantine raised through the graph
            decision = getattr(exc, "decision", None)
            self._stop_once(run, _cause(decision) if isinstance(decision, Decision) else "guard")
        if run.id not in self.done:  # cut short when the interactions ran out
            self.active.pop(run.id, None)
        self.done.discard(run.id)
        self.current = None


def _route(name: str) -> Callable[[Any], str]:
    def to(state: Any) -> str:
        last: BaseMessage = state["messages"][-1]
        return f"{name}__tools" if isinstance(last, AIMessage) and last.tool_calls else END

    return to
