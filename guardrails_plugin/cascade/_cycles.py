"""Cycles: the same loop of hand-offs going round while no new fact comes out of it."""

from __future__ import annotations

from collections import OrderedDict
from itertools import islice
from typing import Any, Final

from .._events import ToolResult
from ._facts import STRONG, facts
from ._signals import Alarm, Evidence, Observed, Tracker, chain


class Cycles:
    """Trip when the same directed cycle of hand-offs (up to ``max_length`` hand-offs, 12:
    three agents whose messages pass through two team leads each make a cycle of 9) goes
    round ``repeats`` times in a row and every message after the first round brings no news.

    **News is information, not wording.** A message is news when it carries facts the run
    has not seen (``facts``: identifiers, numbers, addresses, quoted values, names), worth
    ``min_news`` together (a new identifier or a new position such as "chapter 4" alone
    is enough; one new name is not), or when
    its sender got a tool result with new facts since its last message. Agents stuck in a
    loop reword every round ("Could you take another look?", "Please check it once more")
    and bump counters ("attempt 4", "v3"), which are not facts; a review that makes real
    edits cites what it changed (a line, a figure, a quoted phrase) and is progress.

    **Facts are read when they can matter.** Only a message repeating a hand-off its chain
    made before (the same sender and recipient up to ``max_length`` steps up) can extend a
    loop; every other message resets the runs whatever it says. So a message's text is read
    only when such a message is judged: then the facts of its chain (its last
    ``repeats * max_length`` messages) not read yet are learned, oldest first, and its own
    new facts weighed; a tool result is weighed the same way, after the chain of the last
    message to its agent. "Facts the run has seen" are thus those of the chains judged so
    far and of the tool results: a fact seen only on a branch that never repeats a hand-off
    is news the first time a loop cites it (such a loop may trip a round later).

    **Loops follow causality.** A message's predecessor is its ``parent`` (the delivery
    that started its sender's activation), so interleaved branches of a fan-out do not
    break a loop and unrelated messages do not make one. A message with ``generation`` 0
    and no parent starts a new chain (a timer's heartbeat, a new user turn). When the
    reporter cannot tell (``generation`` is ``None``), the predecessor is the last message
    the sender received (what most likely activated it), so interleaved bystanders do not
    break a loop either; but a periodic exchange started by a timer (a heartbeat whose
    replies carry nothing new) is then a loop to it, like any other.
    A message one cycle of length ``L`` up the chain with the same sender and recipient
    means the loop went round; ``(repeats - 1) * L`` stale messages in a row on the chain,
    each repeating its ``L``-th ancestor's hand-off, trip: a ping-pong (``L = 2``) at the
    end of its third round (the second without news), a loop of three at its ninth message.

    State per scope: the facts seen (at most ``max_facts``, 8,192; the older half forgotten
    when full) and, for the last ``memory`` (1,024) messages with an id, their hand-off
    chain (``max_length`` edges), runs and last messages, and which of them were read: a
    few hundred kB at most. Cost per message: a tuple of ``max_length`` edges (a message's
    place on its chain is a link to its parent's, with the chain's last ``repeats *
    max_length`` messages copied once per as many messages), ``max_length`` comparisons,
    and, for a message that
    repeats a hand-off, one regular-expression scan (up to 8,000 characters: ``readable``) of each of
    its chain's messages not read yet: each message is read at most once while remembered,
    so at most one scan per message amortized, none in traffic that never repeats a
    hand-off.
    """

    name = "cycles"

    def __init__(
        self,
        max_length: int = 12,
        repeats: int = 3,
        *,
        min_news: int = STRONG,
        memory: int = 1_024,
        max_facts: int = 8_192,
    ) -> None:
        if max_length < 1 or repeats < 2 or min_news < 1 or memory < 1 or max_facts < 1:
            raise ValueError(
                "Cycles: expected max_length >= 1, repeats >= 2, min_news >= 1, memory >= 1 "
                f"and max_facts >= 1, got max_length={max_length}, repeats={repeats}, "
                f"min_news={min_news}, memory={memory}, max_facts={max_facts}"
            )
        self.max_length = max_length
        self.repeats = repeats
        self.min_news = min_news
        self.memory = memory
        self.max_facts = max_facts

    def __repr__(self) -> str:
        return f"Cycles(max_length={self.max_length}, repeats={self.repeats})"

    def track(self) -> Tracker:
        """A fresh tracker of this signal's per-run state."""
        return _CycleTracker(self)


# A node is what a message leaves for the messages it causes, as a tuple (built without a
# Python frame): the hand-offs of its chain, this one first (``max_length + 1`` at most,
# each the tracker's own copy of the edge, so that equal edges are usually the same
# object), its runs (per cycle length: stale repeats in a row up to it) and its link.
# A link is the message's place on its chain, for reading and evidence: its evidence and
# its parent's link, so that a message costs no copy of its chain's last messages; every
# ``keep``-th link of a chain (and its first) holds them instead (``base``: the chain's last
# ``keep`` messages, itself last) and no parent, so that a walk back stops within ``keep``
# steps and a node keeps at most ``keep`` links alive.
_EDGES: Final = 0
_RUNS: Final = 1
_LINK: Final = 2
_EVIDENCE: Final = 0
_UP: Final = 1
_BASE: Final = 2
_HOPS: Final = 3
_Link = tuple[Evidence, Any, "tuple[Evidence, ...] | None", int]
_Node = tuple[tuple[tuple[str, str], ...], list[int], _Link]


class _CycleTracker:
    __slots__ = (
        "_done",
        "_edges",
        "_facts",
        "_inbox",
        "_keep",
        "_max_length",
        "_memory",
        "_min_news",
        "_news",
        "_nodes",
        "_repeats",
        "_signal",
        "_zero",
    )

    def __init__(self, signal: Cycles) -> None:
        self._signal = signal
        self._max_length = signal.max_length
        self._memory = signal.memory
        self._min_news = signal.min_news
        self._repeats = signal.repeats
        # (sender, recipient) -> the tracker's copy of that edge, for edges whose agents'
        # names are in ``_facts`` (cleared when ``_facts`` forgets, or when full)
        self._edges: dict[tuple[str, str], tuple[str, str]] = {}
        self._facts: dict[str, int | None] = {}  # facts seen, oldest first
        self._nodes: OrderedDict[str, _Node] = OrderedDict()
        self._inbox: dict[str, _Node] = {}  # agent -> last message to it, oldest first
        self._news: set[str] = set()
        self._done: dict[int, None] = {}  # indices of the messages whose facts were learned
        self._zero = [0] * (signal.max_length + 1)
        self._keep = signal.repeats * signal.max_length  # messages a trail holds

    @property
    def name(self) -> str:
        return self._signal.name

    def _learn(self, found: dict[str, int]) -> int:
        """Remember ``found``; the weight of the facts not seen before. (``dict.update``
        appends the new ones at the end in their order, as one at a time would, and leaves
        the known ones where they are: the new ones are the last ``added`` keys.)"""
        known = self._facts
        before = len(known)
        known.update(found)
        added = len(known) - before
        if not added:
            return 0
        if added == len(found):
            new = sum(found.values())
        else:
            new = sum(map(found.__getitem__, islice(reversed(known), added)))
        if len(known) > self._signal.max_facts:
            # forget the older half at once (amortized O(1) per fact)
            for fact in list(known)[: len(known) // 2]:
                del known[fact]
            self._edges.clear()  # their agents' names may be forgotten too
        return new

    def _read(self, trail: tuple[Evidence, ...], end: int) -> None:
        """Learn the facts of the messages of ``trail[:end]`` not read yet, oldest first.
        A message is marked read only once the messages before it on its chain are, so the
        walk back stops at the first one read. Every message is read at most once while
        remembered (``_done``, bounded: a message forgotten there may be read again, which
        changes nothing)."""
        done = self._done
        start = end
        while start and trail[start - 1].index not in done:
            start -= 1
        for evidence in trail[start:end]:
            done[evidence.index] = None
            self._learn(facts(evidence.message.content))
        if len(done) > self._signal.memory:
            for index in list(done)[: len(done) // 2]:
                del done[index]

    def _trail(self, link: _Link) -> tuple[Evidence, ...]:
        """The last ``keep`` messages of the chain ending at ``link``, oldest first."""
        back = []
        while link[_BASE] is None:
            back.append(link[_EVIDENCE])
            link = link[_UP]
        trail = link[_BASE]
        if back:
            back.reverse()
            trail = (*trail, *back)[-self._keep :]
        return trail

    def _edge(self, sender: str, recipient: str) -> tuple[str, str]:
        """The tracker's copy of the edge, its agents' names learned first: agents' own
        names are not news (greetings, hand-off tools' "transferred to ...")."""
        known = self._facts
        known[sender.lower()] = None
        known[recipient.lower()] = None
        edges = self._edges
        if len(edges) >= self._memory:
            edges.clear()
        edge = edges[(sender, recipient)] = (sender, recipient)
        return edge

    def observe_result(self, result: ToolResult, untrusted: bool, seen: Observed) -> None:
        # weighed against what reached its agent first (the chain of its last message in)
        last = self._inbox.get(result.agent)
        if last is not None:
            trail = self._trail(last[_LINK])
            self._read(trail, len(trail))
        if self._learn(seen.facts()) >= self._signal.min_news:
            self._news.add(result.agent)

    def observe(self, seen: Observed) -> Alarm | None:
        m = seen.message
        sender = m.sender
        recipient = m.recipient
        if m.parent is not None:
            parent = self._nodes.get(m.parent)
        elif m.generation is None or m.generation > 0:
            parent = self._inbox.get(sender)
        else:
            parent = None  # a new chain (the run's input, a timer)
        edge = self._edges.get((sender, recipient))
        if edge is None:
            edge = self._edge(sender, recipient)
        brought = False
        if self._news:
            brought = sender in self._news
            self._news.discard(sender)
        tripped = 0
        if parent is None:
            edges: tuple[tuple[str, str], ...] = (edge,)
            runs = self._zero
            link: _Link = (seen.evidence, None, (seen.evidence,), 0)
        else:
            max_length = self._max_length
            up = parent[_EDGES]
            if len(up) > max_length:
                up = up[:max_length]
            edges = (edge, *up)
            up_link = parent[_LINK]
            hops = up_link[_HOPS] + 1
            if hops < self._keep:
                link = (seen.evidence, up_link, None, hops)
            else:  # every keep-th link holds the chain's last messages, and no parent
                base = (*self._trail(up_link)[1 - self._keep :], seen.evidence)
                link = (seen.evidence, None, base, 0)
            runs = self._zero
            # Only a hand-off its chain made before can extend a loop: the others reset
            # every run whatever they say, so their facts are read later, if ever (when a
            # message down their chain repeats a hand-off).
            if edge in up:
                done = self._done
                if up_link[_EVIDENCE].index not in done:
                    trail = self._trail(up_link)
                    if len(trail) >= self._keep:
                        trail = trail[1:]
                    self._read(trail, len(trail))
                elif len(done) > self._memory:  # its chain is read: only _read's trimming
                    for index in list(done)[: len(done) // 2]:
                        del done[index]
                done[seen.index] = None
                found = seen._facts  # seen.facts(), inlined
                if found is None:
                    found = seen._facts = facts(m.content)
                news = self._learn(found) >= self._min_news or brought
            else:
                news = True  # whatever it says: no run goes through a hand-off new to its chain
            if not news:
                runs = [0] * (max_length + 1)
                before = parent[_RUNS]
                repeats = self._repeats - 1
                for length in range(1, len(edges)):
                    if edges[length] == edge:
                        run = runs[length] = before[length] + 1
                        if not tripped and run >= repeats * length:
                            tripped = length
                if tripped:
                    runs = self._zero  # it has to go stale again to trip again
        node = (edges, runs, link)
        inbox = self._inbox
        if recipient in inbox:
            del inbox[recipient]
        inbox[recipient] = node
        if len(inbox) > self._memory:
            del inbox[next(iter(inbox))]
        if m.id is not None:
            nodes = self._nodes
            nodes[m.id] = node
            if len(nodes) > self._memory:
                nodes.popitem(last=False)
        if not tripped:
            return None
        signal = self._signal
        loop = [a for a, _ in reversed(edges[:tripped])]
        rounds = self._trail(link)[-signal.repeats * tripped :]
        return Alarm(
            signal=self.name,
            scope=seen.scope,
            agents=tuple(loop),
            reason=(
                f"hand-offs went round the loop {chain([*loop, loop[0]])} {signal.repeats} "
                f"times in a row, and the last {signal.repeats - 1} rounds brought no new "
                "fact (no identifier, number, name, quoted value or tool result the run had "
                "not seen): the agents are repeating each other"
            ),
            evidence=rounds,
            at_message=seen.index,
        )
