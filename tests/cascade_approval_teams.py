"""Generated teams that wait for a person every round: langgraph-supervisor and
langgraph-swarm teams of ``create_agent`` agents under ``GuardMiddleware`` (the
supervisor's hand-offs in a ``GuardedToolNode``), as a user wires them.

Each round the lead hands an update to the poster, whose ``publish`` call needs a person's
approval (``ask``): the run stops on LangGraph's interrupt, the harness approves and
resumes (``answer(out, True)``), the poster publishes and answers back. Kinds:

- ``approval_loop`` (a cascade): after ``prefix`` rounds of real progress (0-2) the team
  goes round with nothing new: the same request and the same answer, reworded every round
  (synonyms, sentence order, openers, round counters, short versions). In time: ``cycles``
  trips by the third stale round (at most three stale updates published).
- ``approval_team`` (benign): every round brings new facts (a part number, a build id, a
  count of fixes); nothing may trip.

Teams: ``supervisor`` (the lead is the supervisor, the poster its worker, who answers back
over the supervisor's plain edge), ``swarm`` (both agents hand off with transfer tools).
Drivers: ``invoke``, ``ainvoke``, ``astream`` (``stream_mode="updates"``). A story is
scripted in advance (one agent acts at a time), so every model turn is known.

The monitor's own record of what it observed (a signal that never trips) is returned with
the outcome, for the causal checks: each message's parent must be the delivery that started
its sender's activation, across every resume, and a new user turn starts a new chain.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from cascade_graph_scenarios import Recorder
from cascade_scenarios import NAMES, Speaker
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import StructuredTool

from guardrails_plugin import Guard, Policy, allow, ask
from guardrails_plugin.cascade import CascadeMonitor
from guardrails_plugin.cascade._monitor import default_signals
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.langgraph import GuardedToolNode, answer
from guardrails_plugin.testing import ScriptedChatModel, tool_call

KINDS = ("approval_loop", "approval_team")
TEAMS = ("supervisor", "swarm")
DRIVERS = ("invoke", "ainvoke", "astream")
LEADS = ("editor", "planner", "coordinator", "lead_writer", "dispatcher")
POSTERS = ("poster", "publisher", "announcer", "channel_bot")
POLICY = Policy([allow("transfer_to_*"), ask("publish")])


@dataclass
class Story:
    """One generated run: who says what each round (in advance), and what happened."""

    kind: str
    seed: int
    lead: str
    poster: str
    rounds: int
    prefix: int
    lead_says: list[str]
    poster_says: list[str]
    turn_break: int | None = None
    """The round before which the lead ends the first user turn (a second turn goes on)."""
    published: list[int] = field(default_factory=list)
    """The rounds whose ``publish`` really ran (the side effect)."""

    @property
    def stale_published(self) -> int:
        return sum(1 for r in self.published if r > self.prefix)


def story(kind: str, seed: int) -> Story:
    """The story of ``kind`` for ``seed``: names, rounds and every message, reworded."""
    rng = random.Random(f"{kind}/{seed}")
    sp = Speaker(rng)
    lead, poster = rng.choice(LEADS), rng.choice(POSTERS)
    feature = f"REL-{rng.randint(100, 9999)}"
    channel = rng.choice(("releases", "status", "changelog", "ops-news"))
    if kind == "approval_loop":
        rounds, prefix = 12, rng.randint(0, 2)
    else:
        rounds, prefix = rng.randint(3, 6), 10**6
    lead_says, poster_says = [], []
    for r in range(1, rounds + 1):
        if r <= prefix:
            build, fixes, owner = f"B{rng.randint(10000, 99999)}", rng.randint(2, 60), None
            owner = rng.choice(NAMES)
            lead_says.append(
                sp.say(
                    [
                        [
                            "Part {r} of {feature}: {fixes} fixes in build {build}.",
                            "{feature} part {r} is ready, build {build} with {fixes} fixes.",
                        ],
                        ["{please} post it to {channel}.", "{owner} signed it off."],
                    ],
                    full=r == 1,
                    r=r,
                    feature=feature,
                    fixes=fixes,
                    build=build,
                    channel=channel,
                    owner=owner,
                    please="please",
                )
            )
            poster_says.append(
                sp.say(
                    [["Posted part {r} of {feature} ({build}).", "{build} is out on {channel}."]],
                    r=r,
                    feature=feature,
                    build=build,
                    channel=channel,
                )
            )
        else:
            n = r - prefix
            lead_says.append(
                sp.say(
                    [
                        [
                            "{please} post the {feature} notes {again}.",
                            "The {feature} notes need to go out to {channel} {again}.",
                            "{please} {send} the {feature} update to {channel}.",
                        ],
                        ["{thanks}.", "It is not {done} yet.", ""],
                    ],
                    n=n + 1,
                    short=["{feature} notes {again}", "{feature}: post it"],
                    feature=feature,
                    channel=channel,
                    please="please",
                    again="again",
                    send="send",
                    thanks="thanks",
                    done="done",
                )
            )
            poster_says.append(
                sp.say(
                    [
                        [
                            "Posted the {feature} notes to {channel} {again}.",
                            "The {feature} update went out {again}.",
                            "{done}: {feature} notes are on {channel}.",
                        ],
                        ["Anything else?", "{thanks}.", ""],
                    ],
                    n=n + 1,
                    short=["{feature} posted", "{done} with {feature}"],
                    feature=feature,
                    channel=channel,
                    again="again",
                    done="done",
                    thanks="thanks",
                )
            )
    return Story(kind, seed, lead, poster, rounds, prefix, lead_says, poster_says)


def build(
    st: Story,
    team: str,
    guard: Guard,
    checkpointer: Any,
    *,
    restart: bool = False,
    reuse_ids: bool = False,
) -> Any:
    """The compiled team for ``st``: scripted models, the guard's middleware on every agent,
    ``publish`` (asks a person) as the poster's tool. ``restart``: the models find their
    place in their scripts from the messages they are shown (a fresh process).
    ``reuse_ids``: each agent's model gives all its hand-off calls one tool-call id (a
    model, or an attacker writing its output, may)."""
    turn = {"round": 0}

    def publish(text: str) -> str:
        """Publish ``text`` to the team's channel."""
        st.published.append(turn["round"])
        return "queued for the channel"

    tool = StructuredTool.from_function(publish, name="publish")
    to_poster, to_lead = f"transfer_to_{st.poster}", f"transfer_to_{st.lead}"
    lead_script: list[Any] = []
    poster_script: list[Any] = []
    lead_id = "call_lead_handoff" if reuse_ids else None
    poster_id = "call_poster_handoff" if reuse_ids else None
    for r in range(st.rounds):
        if r and r == st.turn_break:  # the lead ends the user's turn here
            lead_script.append("That part is out; tell me when to go on.")
        lead_script.append(
            AIMessage(st.lead_says[r], tool_calls=[tool_call(to_poster, id=lead_id)])
        )
        poster_script.append(tool_call("publish", text=st.lead_says[r][:120]))
        if team == "supervisor":
            poster_script.append(AIMessage(st.poster_says[r]))
        else:
            back = tool_call(to_lead, id=poster_id)
            poster_script.append(AIMessage(st.poster_says[r], tool_calls=[back]))
    lead_script.append("All parts are out, thanks.")

    class LeadModel(ScriptedChatModel):
        def _next(self) -> AIMessage:
            nxt = self.script[self.calls] if self.calls < len(self.script) else None
            if isinstance(nxt, AIMessage) and nxt.tool_calls:  # a round's hand-off
                turn["round"] += 1
            return super()._next()

    if restart:
        lead_model: ScriptedChatModel = _FromHistory(lead_script, name=st.lead)
        poster_model: ScriptedChatModel = _FromHistory(poster_script, name=st.poster)
    else:
        lead_model, poster_model = LeadModel(lead_script), ScriptedChatModel(poster_script)
    if team == "supervisor":
        from langgraph_supervisor import create_handoff_tool, create_supervisor

        worker = create_agent(
            poster_model, tools=[tool], name=st.poster, middleware=[GuardMiddleware(guard)]
        )
        return create_supervisor(
            [worker],
            model=lead_model,
            supervisor_name=st.lead,
            tools=GuardedToolNode([create_handoff_tool(agent_name=st.poster)], guard),
            prompt="You run the release notes.",
        ).compile(checkpointer=checkpointer)
    from langgraph_swarm import create_handoff_tool as swarm_handoff
    from langgraph_swarm import create_swarm

    lead = create_agent(
        lead_model,
        tools=[swarm_handoff(agent_name=st.poster)],
        name=st.lead,
        middleware=[GuardMiddleware(guard)],
    )
    poster = create_agent(
        poster_model,
        tools=[tool, swarm_handoff(agent_name=st.lead)],
        name=st.poster,
        middleware=[GuardMiddleware(guard)],
    )
    return create_swarm([lead, poster], default_active_agent=st.lead).compile(
        checkpointer=checkpointer
    )


def step(app: Any, inp: Any, config: Any, driver: str) -> Any:
    """One invocation (or resume) of ``app``: its result, with ``__interrupt__`` if it
    stopped on one."""
    if driver == "invoke":
        return app.invoke(inp, config)

    async def go() -> Any:
        if driver == "ainvoke":
            return await app.ainvoke(inp, config)
        out: dict[str, Any] = {}
        async for chunk in app.astream(inp, config, stream_mode="updates"):
            if isinstance(chunk, dict) and "__interrupt__" in chunk:
                out["__interrupt__"] = chunk["__interrupt__"]
        return out

    return asyncio.run(go())


@dataclass
class Outcome:
    st: Story
    team: str
    driver: str
    tripped: str  # the first trip's signal, or "-"
    approvals: int
    seen: list[Any]  # the messages the monitor observed, in its order
    messages: list[Any]  # the thread's messages, as the checkpointer holds them at the end

    @property
    def verdict(self) -> str:
        st = self.st
        if st.kind == "approval_team":
            done = len(st.published) == st.rounds
            return "ok" if self.tripped == "-" and done else "false alarm"
        if self.tripped != "cycles":
            return "missed"
        return "in time" if st.stale_published <= 3 else "late"


def play(
    kind: str,
    team: str,
    driver: str,
    seed: int,
    *,
    guard: Guard | None = None,
    checkpointer: Any = None,
    turns: int = 1,
    reuse_ids: bool = False,
) -> Outcome:
    """Run the story of ``kind``/``seed`` in ``team`` with ``driver``: approve and resume
    every interrupt until the run ends or the guard trips. ``turns``: user turns on the
    thread (each a new input; the story goes on where it was)."""
    from langgraph.checkpoint.memory import InMemorySaver

    st = story(kind, seed)
    if turns > 1:
        st.turn_break = (st.rounds + 1) // 2
    recorder = Recorder()
    if guard is None:
        guard = Guard(POLICY, cascade=CascadeMonitor([*default_signals(), recorder]))
    app = build(st, team, guard, checkpointer or InMemorySaver(), reuse_ids=reuse_ids)
    config: dict[str, Any] = {
        "configurable": {"thread_id": f"{kind}-{team}-{driver}-{seed}"},
        "recursion_limit": 200,
    }
    approvals = 0
    for t in range(turns):
        inp: Any = {"messages": [HumanMessage(f"Post the release notes, part by part ({t}).")]}
        for _ in range(4 * st.rounds + 4):
            out = step(app, inp, config, driver)
            if not (isinstance(out, dict) and out.get("__interrupt__")) or guard.trips():
                break
            approvals += 1
            inp = answer(out, True)
        if guard.trips():
            break
    trips = guard.trips()
    # the thread's messages, with those of an agent stopped inside its own subgraph (a
    # held hand-off: its turn is in the agent's state, not yet in the team's)
    snap = app.get_state(config, subgraphs=True)
    messages = list(snap.values.get("messages") or [])
    for task in snap.tasks:
        inner = getattr(getattr(task, "state", None), "values", None) or {}
        if len(inner.get("messages") or []) > len(messages):
            messages = list(inner["messages"])
    tripped = trips[0].signal if trips else "-"
    return Outcome(st, team, driver, tripped, approvals, list(recorder.seen), messages)


HANDOFF_BACK = "__is_handoff_back"


def true_edges(messages: list[Any]) -> dict[str, tuple[str, str, str | None, int, int]]:
    """What the graph really did, read from the thread's own messages (the oracle): every
    hand-off (an agent's ``transfer_to_*`` call; a supervisor worker's hand-back pair) as
    ``id -> (sender, recipient, parent id, generation, user turn)``, where the parent is the last
    hand-off delivered to the sender before it (one agent acts at a time in these teams)
    and a user's message starts a new chain."""
    last: dict[str, tuple[str, int]] = {}
    edges: dict[str, tuple[str, str, str | None, int, int]] = {}
    turn = 0
    for at, m in enumerate(messages):
        if isinstance(m, HumanMessage):
            last.clear()  # a new user turn: nothing delivered before started what comes
            turn += 1
            continue
        if not isinstance(m, AIMessage) or not m.tool_calls or not m.name:
            continue
        sender = m.name
        back = bool((m.response_metadata or {}).get(HANDOFF_BACK))
        for tc in m.tool_calls[:1]:  # one hand-off per turn in these stories
            name = str(tc.get("name") or "")
            if not name.startswith("transfer_"):
                continue
            recipient = name.removeprefix("transfer_back_to_").removeprefix("transfer_to_")
            # (a hand-off's id: its call's, qualified by where the call stands in the thread)
            mid = f"handback:{tc.get('id')}" if back else f"{tc.get('id')}@{at}"
            parent = last.get(sender)
            edges[mid] = (
                sender,
                recipient,
                None if parent is None else parent[0],
                0 if parent is None else parent[1] + 1,
                turn,
            )
            last[recipient] = (mid, edges[mid][3])
    return edges


# -- a process per invocation: the causal chain across restarts ------------------------------


class _FromHistory(ScriptedChatModel):
    """A scripted model that finds its place in the script from the messages it is shown
    (its own earlier turns), as a fresh process must: no count kept in memory."""

    def _generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
        self.calls = sum(1 for m in messages if isinstance(m, AIMessage) and m.name == self.name)
        return super()._generate(messages, *args, **kwargs)


def restart_step(folder: str, kind: str, seed: int) -> dict[str, Any]:
    """One invocation of a swarm story in this process, from what ``folder`` holds (a
    LangGraph SQLite checkpointer and the guard's ``SQLiteStore``): the user's input on a
    new thread, else a resume approving what waits. Returns what the monitor of this
    process observed, whether the run waits again, and the thread's edges (the oracle)."""
    import os

    from langgraph.checkpoint.sqlite import SqliteSaver

    from guardrails_plugin.store import SQLiteStore

    st = story(kind, seed)
    recorder = Recorder()
    guard = Guard(
        POLICY,
        store=SQLiteStore(os.path.join(folder, "guard.db")),
        cascade=CascadeMonitor([*default_signals(), recorder]),
    )
    with SqliteSaver.from_conn_string(os.path.join(folder, "graph.db")) as saver:
        app = build(st, "swarm", guard, saver, restart=True)
        config: dict[str, Any] = {"configurable": {"thread_id": f"restart-{kind}-{seed}"}}
        if app.get_state(config).values:
            out = app.invoke(answer(app, True, config), config)
        else:
            out = app.invoke({"messages": [HumanMessage("Post the release notes.")]}, config)
        snap = app.get_state(config, subgraphs=True)
        messages = list(snap.values.get("messages") or [])
        for task in snap.tasks:
            inner = getattr(getattr(task, "state", None), "values", None) or {}
            if len(inner.get("messages") or []) > len(messages):
                messages = list(inner["messages"])
    return {
        "seen": [
            [
                s.message.id,
                s.message.sender,
                s.message.recipient,
                s.message.parent,
                s.message.generation,
            ]
            for s in recorder.seen
        ],
        "waits": bool(isinstance(out, dict) and out.get("__interrupt__")),
        "truth": {k: list(v) for k, v in true_edges(messages).items()},
        "trips": [t.signal for t in guard.trips()],
    }


if __name__ == "__main__":  # python cascade_approval_teams.py FOLDER KIND SEED [forget]
    import json
    import sys

    if sys.argv[4:] == ["forget"]:  # the counterfactual: nothing restored on a resume
        from guardrails_plugin.langgraph import _pending

        _pending.restore_position = lambda *a, **k: False  # type: ignore[assignment]
    print(json.dumps(restart_step(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
