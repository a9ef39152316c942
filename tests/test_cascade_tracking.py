"""The monitor's bookkeeping: which trackers it feeds, and what Cycles remembers of a chain.

- A tracker whose ``idle`` is true is fed no message until a call or result wakes it, and
  one with ``deeper_than`` only messages whose path is longer; alarms keep the signals'
  order whichever trackers a message went to. The oracle is a monitor built the plain way
  (every tracker fed every message), on generated streams.
- ``Cycles`` keeps a message's place on its chain as a link to its parent's (every
  ``keep``-th link holding the chain's last ``keep`` messages): on generated causal trees,
  the trail it rebuilds for every remembered message is the last ``keep`` messages of that
  message's chain, computed from the messages themselves.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin import AgentMessage, ToolCall, ToolResult
from guardrails_plugin.cascade import Alarm, CascadeMonitor, Cycles, Observed

AGENTS = ["a", "b", "c", "d"]


class _Recorder:
    """A signal whose trackers write down what they were fed, and trip on a chosen index."""

    def __init__(self, name: str, *, idle: bool = False, deeper_than: int | None = None):
        self.name = name
        self.sleeps = idle
        self.deeper = deeper_than
        self.trackers: list[_RecorderTracker] = []

    def track(self) -> Any:
        tracker = _RecorderTracker(self)
        self.trackers.append(tracker)
        return tracker


class _RecorderTracker:
    def __init__(self, signal: _Recorder) -> None:
        self.signal = signal
        self.name = signal.name
        self.idle = signal.sleeps
        if signal.deeper is not None:
            self.deeper_than = signal.deeper
        self.fed: list[int] = []

    def observe(self, seen: Observed) -> Alarm | None:
        self.fed.append(seen.index)
        if seen.message.content == "trip":
            return Alarm(self.name, seen.scope, (), "tripped", (seen.evidence,), seen.index)
        return None

    def observe_result(self, result: ToolResult, untrusted: bool, seen: Observed) -> None:
        if untrusted:
            self.idle = False

    def observe_call(self, call: ToolCall, denied: bool, scope: str, index: int) -> None:
        if denied:
            self.idle = False


event = st.one_of(
    st.tuples(
        st.just("message"),
        st.sampled_from(AGENTS),
        st.integers(min_value=0, max_value=5),  # path length
        st.booleans(),  # trips every tracker it reaches
    ),
    st.tuples(st.just("result"), st.sampled_from(AGENTS), st.integers(0, 0), st.booleans()),
    st.tuples(st.just("call"), st.sampled_from(AGENTS), st.integers(0, 0), st.booleans()),
)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(event, max_size=40), gate=st.integers(min_value=0, max_value=4))
def test_idle_and_gated_trackers_are_fed_what_a_plain_monitor_would_have_them_act_on(
    events: list[tuple[str, str, int, bool]], gate: int
) -> None:
    hot, idle, deep = (
        _Recorder("hot"),
        _Recorder("idle", idle=True),
        _Recorder("deep", deeper_than=gate),
    )
    monitor = CascadeMonitor([idle, hot, deep])
    woken_at: int | None = None  # index of the first message after a wake-up
    count = 0
    alarms: list[tuple[str, int]] = []
    expected: list[tuple[str, int]] = []
    expect_idle: list[int] = []
    expect_deep: list[int] = []
    for kind, agent, depth, flag in events:
        if kind == "result":
            monitor.observe_result(ToolResult("t", "x", agent=agent, thread_id="s"), untrusted=flag)
            if flag and woken_at is None:
                woken_at = count
            continue
        if kind == "call":
            monitor.observe_call(ToolCall("t", {}, agent=agent, thread_id="s"), denied=flag)
            if flag and woken_at is None:
                woken_at = count
            continue
        path = tuple(AGENTS[:depth])
        m = AgentMessage(agent, "z", "trip" if flag else "hi", thread_id="s", path=path)
        alarms += [(a.signal, a.at_message) for a in monitor.observe(m)]
        awake = woken_at is not None
        if awake:
            expect_idle.append(count)
        if len(path) > gate:
            expect_deep.append(count)
        if flag:  # the signals' order: idle, hot, deep
            expected += [
                (n, count)
                for n, fed in [("idle", awake), ("hot", True), ("deep", len(path) > gate)]
                if fed
            ]
        count += 1
    if not hot.trackers:  # no message: no scope
        assert count == 0
        assert not alarms
        return
    (h,), (i,), (d,) = hot.trackers, idle.trackers, deep.trackers
    assert h.fed == list(range(count))
    assert i.fed == expect_idle
    assert d.fed == expect_deep
    assert alarms == expected


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(AGENTS), st.sampled_from(AGENTS), st.integers(-1, 80)),
        min_size=1,
        max_size=80,
    ),
    max_length=st.integers(min_value=1, max_value=4),
    repeats=st.integers(min_value=2, max_value=3),
)
def test_a_remembered_message_rebuilds_the_last_messages_of_its_chain(
    steps: list[tuple[str, str, int]], max_length: int, repeats: int
) -> None:
    monitor = CascadeMonitor([Cycles(max_length=max_length, repeats=repeats)])
    sent: list[AgentMessage] = []
    for i, (sender, recipient, parent_at) in enumerate(steps):
        parent = sent[parent_at] if 0 <= parent_at < len(sent) else None
        m = AgentMessage(
            sender,
            recipient,
            f"message {i}",
            thread_id="t",
            id=f"m{i}",
            parent=None if parent is None else parent.id,
            generation=0 if parent is None else (parent.generation or 0) + 1,
        )
        monitor.observe(m)
        sent.append(m)
    tracker: Any = monitor._scopes["t"].trackers[0]
    keep = repeats * max_length
    by_id = {m.id: (i, m) for i, m in enumerate(sent)}
    for i, m in enumerate(sent):
        chain = [(i, m)]
        while chain[-1][1].parent is not None:
            chain.append(by_id[chain[-1][1].parent])
        want = [(j, x.id) for j, x in reversed(chain)][-keep:]
        node = tracker._nodes[m.id]
        got = [(e.index, e.message.id) for e in tracker._trail(node[2])]
        assert got == want
