"""Cycles reads a message's text only when it can matter, and each message at most once.

Generated causal trees (random senders, recipients and parents, random tool results) are
fed to a ``Cycles`` tracker whose fact extractor counts what it reads. The promises: a
message is read at most once; a message is read only if a later message on its chain (or
itself) repeats a hand-off of its chain, or a tool result arrives for an agent it led to;
traffic where no hand-off repeats is never read; and when a message is judged, every
message of its chain before it (within the trail) has been read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin import AgentMessage, ToolResult
from guardrails_plugin.cascade import CascadeMonitor, Cycles, _cycles, _signals

AGENTS = ["a", "b", "c", "d"]

step = st.tuples(
    st.sampled_from(AGENTS),  # sender
    st.sampled_from(AGENTS),  # recipient
    st.integers(min_value=-1, max_value=60),  # parent: an earlier message, or none (< 0)
    st.booleans(),  # a tool result for the sender before it writes
)


@contextmanager
def _counting() -> Iterator[Counter[str]]:
    """Count the texts the fact extractor reads (its ancestors' and its own)."""
    read: Counter[str] = Counter()
    original = _cycles.facts

    def counting(text: str, max_chars: int = 1_000) -> dict[str, int]:
        read[text] += 1
        return original(text, max_chars)

    _cycles.facts = _signals.facts = counting
    try:
        yield read
    finally:
        _cycles.facts = _signals.facts = original


def _play(steps: list[tuple[str, str, int, bool]]) -> tuple[Counter[str], list[AgentMessage]]:
    monitor = CascadeMonitor([Cycles()])
    sent: list[AgentMessage] = []
    with _counting() as read:
        for i, (sender, recipient, parent_at, result) in enumerate(steps):
            if sender == recipient:
                continue
            parent = sent[parent_at] if 0 <= parent_at < len(sent) else None
            if result:
                monitor.observe_result(
                    ToolResult("lookup", f"result {i} ORD-{i}", agent=sender, thread_id="t"),
                    untrusted=False,
                )
            m = AgentMessage(
                sender,
                recipient,
                f"message {i}: see ORD-{i} and ORD-{i // 3}",
                thread_id="t",
                id=f"m{i}",
                parent=None if parent is None else parent.id,
                generation=0 if parent is None else (parent.generation or 0) + 1,
            )
            monitor.observe(m)
            sent.append(m)
    return read, sent


def _chain(m: AgentMessage, by_id: dict[str, AgentMessage], n: int) -> list[AgentMessage]:
    out = [m]
    while len(out) < n and out[-1].parent is not None:
        out.append(by_id[out[-1].parent])
    return out  # newest first


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=60))
def test_each_message_is_read_at_most_once_and_only_when_it_can_matter(
    steps: list[tuple[str, str, int, bool]],
) -> None:
    read, sent = _play(steps)
    texts = {m.content for m in sent}
    assert all(n == 1 for text, n in read.items() if text in texts), read
    by_id = {m.id: m for m in sent if m.id is not None}
    cycles = Cycles()
    window = cycles.repeats * cycles.max_length
    judged = set()
    for m in sent:
        chain = _chain(m, by_id, cycles.max_length + 1)
        if (m.sender, m.recipient) in [(x.sender, x.recipient) for x in chain[1:]]:
            judged.add(m.id)
            # judged: its chain within the trail was read, and so was it
            for x in _chain(m, by_id, window):
                assert read[x.content] == 1, (m.id, x.id)
    has_results = any(result for *_, result in steps)
    if not judged and not has_results:
        assert not any(text in texts for text in read), "read without a repeated hand-off"
    if not has_results:
        # without tool results, a message read is on the trail of a judged message
        needed = {x.content for j in judged for x in _chain(by_id[j], by_id, window)}
        assert {t for t in read if t in texts} <= needed


def test_traffic_that_never_repeats_a_hand_off_is_never_read() -> None:
    agents = [f"agent-{i}" for i in range(30)]
    steps = [(agents[i], agents[i + 1], i - 1, False) for i in range(29)]
    read, sent = _play(steps)
    assert len(sent) == 29
    assert not read


def test_a_ping_pong_reads_each_message_once_and_still_trips() -> None:
    monitor = CascadeMonitor([Cycles()])
    alarms = []
    parent = None
    with _counting() as read:
        for i in range(8):
            sender, recipient = ("a", "b") if i % 2 == 0 else ("b", "a")
            text = f"Please recheck invoice INV-7 (attempt {i})" if i % 2 == 0 else "Still INV-7."
            m = AgentMessage(
                sender, recipient, text, thread_id="t", id=f"m{i}", parent=parent, generation=i
            )
            alarms += monitor.observe(m)
            parent = m.id
    assert [a.at_message for a in alarms] == [5]
    # each distinct text read once per message that carries it (the second reading of the
    # same text comes from another message)
    assert sum(read.values()) == 8
