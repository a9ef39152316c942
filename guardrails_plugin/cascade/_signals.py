"""The shared vocabulary of cascade signals: what a signal sees, what it reports.

A signal is configuration (``Cycles(max_length=6)``); for each scope (thread or run) the
monitor asks it for a fresh ``Tracker`` holding that scope's bounded state, and feeds the
tracker every message of the scope, in order, as an ``Observed``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._events import AgentMessage
from ._facts import facts

if TYPE_CHECKING:
    from ._sketch import Sketcher


@dataclass(frozen=True, slots=True)
class Evidence:
    """A message that contributed to a verdict, with its index in its scope."""

    index: int
    message: AgentMessage

    def __str__(self) -> str:
        m = self.message
        return f"#{self.index} {m.sender} -> {m.recipient}"


@dataclass(frozen=True, slots=True)
class Alarm:
    """A signal tripped: what it saw, where, among whom, and the messages that show it.

    ``at_message`` is the index (from 0) of the message, within its scope, that tripped the
    signal; ``evidence`` lists the messages the verdict rests on, oldest first, the tripping
    message last. ``culprit`` is the agent a quarantine would isolate: the sender of the
    tripping message, unless the signal knows better (escalation blames the agent whose
    denied action came back through another).
    """

    signal: str
    scope: str
    agents: tuple[str, ...]
    reason: str
    evidence: tuple[Evidence, ...]
    at_message: int
    culprit: str = ""

    def __post_init__(self) -> None:
        if not self.culprit and self.evidence:
            object.__setattr__(self, "culprit", self.evidence[-1].message.sender)

    def to_doc(self) -> dict[str, Any]:
        """A JSON document for the breaker's trip record (message texts cut to 500 chars)."""
        return {
            "signal": self.signal,
            "scope": self.scope,
            "agents": list(self.agents),
            "culprit": self.culprit,
            "reason": self.reason,
            "at_message": self.at_message,
            "evidence": [
                {
                    "index": e.index,
                    "sender": e.message.sender,
                    "recipient": e.message.recipient,
                    "content": e.message.content[:500],
                }
                for e in self.evidence
            ],
        }

    @property
    def messages(self) -> tuple[AgentMessage, ...]:
        """The evidence as plain messages."""
        return tuple(e.message for e in self.evidence)


_new = object.__new__
_set_index = vars(Evidence)["index"].__set__  # the slots' own setters
_set_message = vars(Evidence)["message"].__set__


class Observed:
    """One message as a tracker sees it: the message, its index in its scope, and what
    signals derive from its text (its facts, its MinHash sketches), computed at most once
    per message whichever signals ask for them.

    A tool result is observed the same way (``message`` is then a message from the tool's
    agent to itself carrying the result's text, for the derived views)."""

    __slots__ = ("_facts", "_sketches", "evidence", "index", "message", "scope")

    def __init__(self, message: AgentMessage, index: int, scope: str) -> None:
        self.message = message
        self.index = index
        self.scope = scope
        # ``Evidence(index, message)``, without the frozen dataclass's ``__init__`` (two
        # ``object.__setattr__`` calls through a Python frame): one of these per message.
        evidence = _new(Evidence)
        _set_index(evidence, index)
        _set_message(evidence, message)
        self.evidence: Evidence = evidence
        self._sketches: dict[tuple[int, ...], Any] | None = None
        self._facts: dict[str, int] | None = None

    def facts(self) -> dict[str, int]:
        """The facts of the content (``cascade._facts.facts``): fact -> weight."""
        found = self._facts
        if found is None:
            found = self._facts = facts(self.message.content)
        return found

    def sketch(self, sketcher: Sketcher) -> Any:
        """The ``datasketch.MinHash`` of the content, shared by every signal using the same
        sketch settings."""
        key = sketcher.key
        sketches = self._sketches
        if sketches is None:
            sketches = self._sketches = {}
        found = sketches.get(key)
        if found is None:
            found = sketches[key] = sketcher.sketch(self.message.content)
        return found


class Tracker(Protocol):
    """One signal's state for one scope. ``observe`` must cost amortized O(1) per message.

    A tracker that also watches tool calls (``Escalation``) has an ``observe_call(call,
    denied, scope, index)`` method; the monitor feeds it the decided calls of its scope
    (every call of every scope when its signal sets ``every_call``: ``baselines.Anomaly``).

    Two optional attributes spare the monitor calls that cannot change anything: while
    ``idle`` is true the tracker is fed no message (it may turn false only in
    ``observe_call`` or ``observe_result``, and then stays false: ``Infection`` before any
    untrusted result, ``Escalation`` before any denial), and a tracker with an int ``deeper_than`` is fed only
    messages whose ``path`` holds more agents (``Depth``)."""

    def observe(self, seen: Observed) -> Alarm | None:
        """Look at one observed message; an alarm if the signal fires."""


class Signal(Protocol):
    """A cascade signal: a name, and a tracker per scope."""

    @property
    def name(self) -> str:
        """The signal's name (in trips, config and the audit log)."""

    def track(self) -> Tracker:
        """A fresh tracker of this signal's per-run state."""


def chain(agents: Iterable[str]) -> str:
    """``A -> B -> C``, for reasons."""
    return " -> ".join(agents)


def distinct(names: Iterable[str]) -> tuple[str, ...]:
    """Names in first-seen order, each once."""
    return tuple(dict.fromkeys(names))
