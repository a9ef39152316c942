"""Infection: untrusted content passed on from agent to agent (prompt infection)."""

from __future__ import annotations

import re
from collections import OrderedDict

from .._events import ToolResult
from ._signals import Alarm, Evidence, Observed, Tracker, chain

_WORD = re.compile(r"\w+")


def shingles(text: str, size: int = 3, max_chars: int = 20_000) -> set[int]:
    """Hashes of the text's runs of ``size`` words (lowercased; punctuation, spacing and line
    breaks ignored), from its first ``max_chars`` characters."""
    words = _WORD.findall(text[:max_chars].lower())
    if len(words) < size:
        return {hash(tuple(words))} if words else set()
    return set(map(hash, zip(*(words[i:] for i in range(size)), strict=False)))


class Infection:
    """Trip when content that a tool the policy marks as an untrusted source returned
    (``DataFlow(sources=...)``: a web page, an inbox) is passed on by a second agent: the
    agent that read it tells another (hop 1), that agent passes it on (hop ``hops``, 2):
    the message is held before it reaches a third agent, one holding a sink tool, say.

    The guard tells the monitor every result of a source tool (``Guard.record``): its text
    is cut into word ``shingle``-grams (hashed; the last ``memory`` results kept, each up to
    ``max_chars`` characters). A message *contains* the content when it shares at least
    ``min_shared`` (10) of them with one result, or ``min_fraction`` (half) of a shorter
    result's: containment, not similarity of whole texts, so an injected instruction
    wrapped in new prose, or reworded here and there (one word in six changed keeps about
    half its 3-grams), still matches. An agent that receives such a message carries the
    content one hop further; the sender of the message that reaches ``hops`` is the
    culprit (the breaker quarantines it by default).

    Costs nothing in a run no untrusted content entered; otherwise one pass over the
    message's words.

    Blind spots: a payload translated, summarised in other words, or split over several
    messages; content that entered without a tool result the guard saw (a file the
    agent was given at start, a message from another run without ``origin``).
    """

    name = "infection"

    def __init__(
        self,
        hops: int = 2,
        *,
        min_shared: int = 10,
        min_fraction: float = 0.5,
        shingle: int = 3,
        memory: int = 64,
        max_chars: int = 20_000,
        agents: int = 1_024,
    ) -> None:
        if hops < 1 or min_shared < 1 or not 0.0 < min_fraction <= 1.0 or shingle < 1:
            raise ValueError(
                "Infection: expected hops >= 1, min_shared >= 1, 0 < min_fraction <= 1 and "
                f"shingle >= 1, got hops={hops}, min_shared={min_shared}, "
                f"min_fraction={min_fraction}, shingle={shingle}"
            )
        if memory < 1 or agents < 1:
            raise ValueError(f"Infection: expected memory, agents >= 1, got {memory}, {agents}")
        self.hops = hops
        self.min_shared = min_shared
        self.min_fraction = min_fraction
        self.shingle = shingle
        self.memory = memory
        self.max_chars = max_chars
        self.agents = agents

    def __repr__(self) -> str:
        return f"Infection(hops={self.hops}, min_shared={self.min_shared})"

    def track(self) -> Tracker:
        """A fresh tracker of this signal's per-run state."""
        return _InfectionTracker(self)


class _Source:
    __slots__ = ("need", "shingles", "tool")

    def __init__(self, tool: str, found: set[int], need: int) -> None:
        self.tool = tool
        self.shingles = found
        self.need = need


class _InfectionTracker:
    __slots__ = ("_carriers", "_index", "_next", "_reported", "_signal", "_sources")

    def __init__(self, signal: Infection) -> None:
        self._signal = signal
        self._sources: OrderedDict[int, _Source] = OrderedDict()
        self._index: dict[int, int] = {}  # shingle -> the latest source holding it
        self._next = 0
        # agent -> (hops the content took to reach it, the messages that carried it)
        self._carriers: OrderedDict[str, tuple[int, tuple[Evidence, ...]]] = OrderedDict()
        self._reported: set[tuple[int, str]] = set()

    @property
    def name(self) -> str:
        return self._signal.name

    @property
    def idle(self) -> bool:
        """No untrusted content seen yet: no message can carry any, so the monitor feeds
        this tracker no message until a result wakes it."""
        return not self._sources

    def observe_result(self, result: ToolResult, untrusted: bool, seen: Observed) -> None:
        if not untrusted or result.is_error:
            return
        signal = self._signal
        found = shingles(result.content, signal.shingle, signal.max_chars)
        if not found:
            return
        at = self._next
        self._next += 1
        need = min(signal.min_shared, max(1, round(signal.min_fraction * len(found))))
        self._sources[at] = _Source(result.tool, found, need)
        index = self._index
        for h in found:
            index[h] = at
        if len(self._sources) > signal.memory:
            old, gone = self._sources.popitem(last=False)
            for h in gone.shingles:
                if index.get(h) == old:
                    del index[h]
        self._carry(result.agent, 0, ())

    def _carry(self, agent: str, hop: int, links: tuple[Evidence, ...]) -> None:
        carriers = self._carriers
        known = carriers.get(agent)
        if known is None or hop < known[0]:
            carriers[agent] = (hop, links)
            carriers.move_to_end(agent)
            if len(carriers) > self._signal.agents:
                carriers.popitem(last=False)

    def observe(self, seen: Observed) -> Alarm | None:
        if not self._sources:
            return None
        signal = self._signal
        m = seen.message
        index = self._index
        hits: dict[int, int] = {}
        for h in shingles(m.content, signal.shingle, signal.max_chars):
            at = index.get(h)
            if at is not None:
                hits[at] = hits.get(at, 0) + 1
        source = -1
        for at, n in hits.items():
            if n >= self._sources[at].need:
                source = at
                break
        if source < 0:
            return None
        hop, links = self._carriers.get(m.sender, (0, ()))
        hop += 1
        links = (*links, seen.evidence)
        self._carry(m.recipient, hop, links)
        if hop < signal.hops or (source, m.sender) in self._reported:
            return None
        if len(self._reported) >= 4 * signal.agents:
            self._reported.clear()
        self._reported.add((source, m.sender))
        tool = self._sources[source].tool
        agents = (*(e.message.sender for e in links), m.recipient)
        return Alarm(
            signal=self.name,
            scope=seen.scope,
            agents=agents,
            reason=(
                f"untrusted content from {tool!r} is being passed on: {chain(agents)} "
                f"({hop} hops; {hits[source]} of its word runs in this message); possible "
                "prompt infection"
            ),
            evidence=links,
            at_message=seen.index,
        )
