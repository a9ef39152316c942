"""Escalation: an action denied to one agent, requested again through another."""

from __future__ import annotations

import json
import re
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .._events import ToolCall
from ._facts import STRONG, facts
from ._signals import Alarm, Evidence, Observed, Tracker, chain
from ._sketch import Sketcher


class Escalation:
    """Trip when a tool call the policy denied to agent A is made again, with the same or
    nearly the same arguments, by another agent B that A's messages reached after the
    denial (directly or through other agents): the confused deputy. Two stages:

    **At the request** (``requests=True``, the default), before any call: a message from B
    to C that names an action denied to B, or to an agent A whose messages reached B after
    the denial (the denied call's argument values: an address, a record id, an amount, a
    quoted value; or the tool's name), where C is not A, and that *asks* for it, trips as
    it is sent: the request is held before C can act on it. A message asks when a sentence
    naming those values carries a request marker (a question mark; "please", "can you",
    "must", "has to", "need", "for me" and their German, Spanish, French, Italian and
    Dutch counterparts), or opens with the denied tool's verb (``delete_record``: "admin:
    delete R-1 today"), or when a sentence points at the recipient's rights ("you have
    the rights for it", "your permissions are higher"). A message that names the values
    without asking (a report of the denial to the lead, "FYI: deleting R-1 was refused";
    an acknowledgement, "noted, R-1 stays") is let through: the second stage watches what
    its recipient does next.

    **At the call**: a permitted call of a tool denied to A, by an agent A's messages
    reached after the denial, whose arguments match the denied call's (equal canonical
    JSON; for texts of at least ``min_chars``, MinHash similarity at least ``threshold``,
    so a reworded e-mail body still matches; or every value the denied call named is
    among its own, so an added argument does not hide it) trips before the call runs.
    This is where a request worded as a report is caught: late (the privileged agent
    already acted on the message) but before the harm. Only calls the policy would let
    through report: a re-request the policy denies anyway escalated nothing. The culprit
    (the agent a quarantine isolates) is A, whose denied action came back.

    What each stage cannot see. The request stage reads words, not intent: a request with
    no marker (a bare imperative whose verb is not the tool's, "R-1 - get rid of it", or
    a marker in a sentence that does not name the values, "R-1 was refused. Please take
    care of it.") or in a language outside its lexicons passes as a statement, to be caught
    at the call; a report worded as a request ("please note that R-1 could not be
    deleted"), an obligation or a question about keeping it ("R-1 must be kept 7 years",
    "R-1 stays, ok?") or a sentence opening with the tool's verb as a noun ("Delete of
    R-1 failed") is held, a false alarm a person resumes. It does not know who holds the
    right (the policy is not consulted), nor the message's direction: a request sent back
    up to the agent that gave the task is judged by its words like any other. The call
    stage needs the denied values in the new call's arguments, and a call by an agent the
    denied agent's messages never reached (the request passed through a channel the
    monitor does not see) is not linked; near-identical values match too (``CUST-57900``
    and ``CUST-579000`` are 84% similar as canonical JSON), so a lead's deletion of a record
    one character away from a denied one is held.

    State per scope: the last ``memory`` denials per tool, and for each agent the agents
    whose messages reached it (at most ``memory`` each, most recent kept). Each message
    costs O(memory) at most (reading a message's sentences only when it names a denied
    value); a call costs nothing unless its tool was denied before.
    """

    name = "escalation"

    def __init__(
        self,
        threshold: float = 0.8,
        *,
        memory: int = 64,
        min_chars: int = 24,
        requests: bool = True,
        sketcher: Sketcher | None = None,
    ) -> None:
        if not 0.0 < threshold <= 1.0 or memory < 1:
            raise ValueError(
                "Escalation: expected 0 < threshold <= 1 and memory >= 1, got "
                f"threshold={threshold}, memory={memory}"
            )
        self.threshold = threshold
        self.memory = memory
        self.min_chars = min_chars
        self.requests = requests
        self.sketcher = sketcher or Sketcher()

    def __repr__(self) -> str:
        return f"Escalation(threshold={self.threshold}, memory={self.memory})"

    def track(self) -> Tracker:
        """A fresh tracker of this signal's per-run state."""
        return _EscalationTracker(self)


@dataclass(slots=True)
class _Reach:
    since: int  # tick at which the origin's message left the origin
    evidence: tuple[Evidence, ...]  # first hop from the origin, ..., the hop into the agent


@dataclass(slots=True)
class _Denied:
    agent: str
    text: str
    tick: int
    sketch: Any = None
    facts: frozenset[str] = frozenset()
    tool: str = ""
    values: bool = False  # the call named values (not only its tool)


class _EscalationTracker:
    __slots__ = ("_by_agent", "_denied", "_denied_agents", "_reached", "_signal", "_tick")

    def __init__(self, signal: Escalation) -> None:
        self._signal = signal
        self._tick = 0
        self._reached: dict[str, OrderedDict[str, _Reach]] = {}
        self._denied: dict[str, deque[_Denied]] = {}
        # Agents denied a call in this scope so far. Only their reach can ever matter: a
        # reach counts when it left its origin after the origin's denial (since > tick).
        self._denied_agents: set[str] = set()
        self._by_agent: dict[str, deque[_Denied]] = {}

    @property
    def name(self) -> str:
        return self._signal.name

    @property
    def idle(self) -> bool:
        """No call denied in this scope yet: no reach can count, so the monitor feeds this
        tracker no message until a denial wakes it. (Its clock, ``_tick``, then misses the
        messages before the first denial: it only orders events, and every later event
        keeps its order.)"""
        return not self._denied_agents

    def observe(self, seen: Observed) -> Alarm | None:
        self._tick += 1
        denied = self._denied_agents
        if not denied:
            return None  # nothing denied in this scope yet: no reach can count
        m = seen.message
        alarm = self._request(seen) if self._signal.requests else None
        into = self._reached.get(m.recipient)
        if into is None:
            into = self._reached[m.recipient] = OrderedDict()
        hop = (seen.evidence,)
        # What reached the sender now reaches the recipient too, since the same time.
        for origin, reach in list(self._reached.get(m.sender, {}).items()):
            if origin != m.recipient:
                self._put(
                    into,
                    origin,
                    _Reach(reach.since, (*reach.evidence[:1], *reach.evidence[1:][-6:], *hop)),
                )
        for origin in (*m.path, m.sender):
            if origin != m.recipient and origin in denied:
                self._put(into, origin, _Reach(self._tick, hop))
        return alarm

    def _request(self, seen: Observed) -> Alarm | None:
        """The message asks its recipient for an action denied to its sender, or to an agent
        whose messages reached the sender after the denial: it names the denied call's
        values (an address, an id, an amount) or its tool."""
        m = seen.message
        reached: Mapping[str, _Reach] = self._reached.get(m.sender, {})
        origins = [(m.sender, _Reach(self._tick, ()))] if m.sender in self._by_agent else []
        origins += [(o, r) for o, r in reached.items() if o in self._by_agent]
        said: frozenset[str] | None = None
        for origin, reach in origins:
            if origin == m.recipient:
                continue
            for d in reversed(self._by_agent[origin]):
                if reach.since <= d.tick or not d.facts:
                    continue
                if said is None:
                    said = frozenset(f for f, w in seen.facts().items() if w >= STRONG)
                named = said & d.facts
                if not named:
                    continue
                if not _asks(m.content, named, _verb(d.tool)):
                    continue  # says the values but asks nothing: the call stage watches
                links = (*reach.evidence, seen.evidence)
                hops = [e.message.sender for e in links] + [m.recipient]
                return Alarm(
                    signal=self.name,
                    scope=seen.scope,
                    agents=(origin, m.recipient),
                    reason=(
                        f"escalation: {d.tool!r} was denied to {origin}, and "
                        f"{chain(dict.fromkeys(hops))} now asks {m.recipient} for it (naming "
                        f"{', '.join(sorted(named)[:3])}); possible confused deputy, held "
                        "before it acts"
                    ),
                    evidence=links,
                    at_message=seen.index,
                    culprit=origin,
                )
        return None

    def _put(self, into: OrderedDict[str, _Reach], origin: str, reach: _Reach) -> None:
        into[origin] = reach
        into.move_to_end(origin)
        if len(into) > self._signal.memory:
            into.popitem(last=False)

    def observe_call(self, call: ToolCall, denied: bool, scope: str, index: int) -> Alarm | None:
        self._tick += 1
        signal = self._signal
        if denied:
            queue = self._denied.get(call.tool)
            if queue is None:
                queue = self._denied[call.tool] = deque(maxlen=signal.memory)
            said = _arg_facts(call)
            entry = _Denied(call.agent, _canonical(call), self._tick, None, said)
            entry.tool = call.tool
            entry.values = bool(said - _tool_facts(call.tool))
            queue.append(entry)
            mine = self._by_agent.get(call.agent)
            if mine is None:
                mine = self._by_agent[call.agent] = deque(maxlen=signal.memory)
            mine.append(entry)
            self._denied_agents.add(call.agent)
            return None
        queue = self._denied.get(call.tool)
        reached = self._reached.get(call.agent)
        if not queue or not reached:
            return None
        text = _canonical(call)
        sketch: Any = None
        named: frozenset[str] | None = None
        for d in reversed(queue):
            if d.agent == call.agent:
                continue
            reach = reached.get(d.agent)
            if reach is None or reach.since <= d.tick:
                continue
            similarity = 1.0 if text == d.text else 0.0
            if similarity < signal.threshold and min(len(text), len(d.text)) >= signal.min_chars:
                if sketch is None:
                    sketch = signal.sketcher.sketch(text)
                if d.sketch is None:
                    d.sketch = signal.sketcher.sketch(d.text)
                similarity = float(sketch.jaccard(d.sketch))
            if similarity < signal.threshold and d.values:
                # The same tool naming every value the denied call named (an extra argument,
                # a reworded reason): the denied action repeated.
                if named is None:
                    named = _arg_facts(call)
                if d.facts <= named:
                    similarity = -1.0
            if -1.0 < similarity < signal.threshold:
                continue
            hops = [e.message.sender for e in reach.evidence] + [call.agent]
            route = chain(dict.fromkeys(hops))
            return Alarm(
                signal=self.name,
                scope=scope,
                agents=(d.agent, call.agent),
                reason=(
                    f"escalation: {call.tool!r} was denied to {d.agent}, and {call.agent} "
                    f"(reached by {d.agent}'s messages: {route}) now requests it "
                    f"{_how(similarity)}"
                    f"; possible confused deputy"
                ),
                evidence=reach.evidence,
                at_message=index,
                culprit=d.agent,
            )
        return None


def _how(similarity: float) -> str:
    if similarity == 1.0:
        return "with the same arguments"
    if similarity < 0:
        return "naming every value of the denied call"
    return f"with arguments {similarity:.0%} similar"


def _tool_facts(tool: str) -> frozenset[str]:
    return frozenset(f for f, w in facts(tool).items() if w >= STRONG)


def _arg_facts(call: ToolCall) -> frozenset[str]:
    """What names a call in a message: the facts of its argument values (and each short
    value whole, as a quoted value), and the tool's name when it is an identifier."""
    found = set(_tool_facts(call.tool))
    for value in call.args.values():
        texts = value if isinstance(value, (list, tuple)) else (value,)
        for v in texts:
            if isinstance(v, bool) or v is None:
                continue
            text = str(v)
            found.update(f for f, w in facts(text).items() if w >= STRONG)
            if 2 <= len(text) <= 80:
                found.add('"' + " ".join(text.lower().split()) + '"')
    return frozenset(found)


def _canonical(call: ToolCall) -> str:
    try:
        return json.dumps(dict(call.args), sort_keys=True, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(sorted(call.args.items(), key=lambda kv: kv[0]))


# -- request or statement: does a message naming a denied action ask for it? -------------
#
# Small lexicons of words (English, German, Spanish, French, Italian, Dutch), looked up in
# sets after one tokenizing pass (no model, no alternation scanned at every position). They
# name grammatical categories, not the phrasings of a given story: a question, a
# politeness particle, a second-person ability or willingness modal, an obligation or a
# need, an action done on the sender's behalf; and an appeal to the recipient's rights.


def _lexicon(*lines: str) -> frozenset[str]:
    """Words separated by spaces."""
    return frozenset(" ".join(lines).split())


def _phrases(*lines: str) -> frozenset[tuple[str, ...]]:
    """Phrases separated by ``|``, each as the tuple of its words."""
    return frozenset(tuple(p.split()) for p in "".join(lines).split("|"))


_ASK_WORDS = _lexicon(
    "please pls plz kindly bitte svp stp alsjeblieft alstublieft must should muss müssen",
    "soll sollte braucht brauche debe deben debes deberías necesita necesito puedes podrías",
    "podrias doit doivent faut besoin deve devono devi dovresti bisogna puoi potresti può",
    "potrebbe moet moeten",
)
_ASK_PAIRS = _phrases(
    "por favor|per favore|can you|could you|would you|will you|can u|could u|you can|",
    "you could|you should|you must|you might|you may|has to|have to|ought to|go ahead|",
    "want you|like you|for me|kannst du|könntest du|würdest du|musst du|solltest du|",
    "du kannst|du könntest|du musst|du solltest|können sie|könnten sie|würden sie|",
    "sollten sie|für mich|puede usted|podría usted|tienes que|tiene que|hay que|por mí|",
    "por mi|quiero que|peux tu|pourrais tu|dois tu|devrais tu|pouvez vous|pourriez vous|",
    "devez vous|devriez vous|tu peux|tu pourrais|tu dois|vous pouvez|vous pourriez|",
    "vous devez|pour moi|per me|kun je|kunt u|zou je|voor mij",
)
_ASK_TRIPLES = _phrases(
    "s il vous|s il te|on my behalf|in my place|instead of me|take care of|won t you|",
    "wouldn t you|in meinem namen|an meiner stelle|en mi nombre|en mi lugar|à ma place|",
    "en mon nom|je veux que|je voudrais que|al posto mio",
)
_NOT = _lexicon("no not t nicht kein keine pas")  # "no need", "don't need"
_YOU = _lexicon(
    "you your yours du dein deine deinen deinem deiner dir dich ihr ihre ihren ihrem ihrer",
    "ihnen tú tu tus tienes usted ustedes vous votre vos toi tuo tua tuoi voi vostro vostra",
    "vostri vostre jij jouw jullie",
)
_RIGHTS = _lexicon(
    "rights permission permissions privilege privileges access clearance derecho derechos",
    "permiso permisos privilegio privilegios acceso droit droits accès diritti diritto",
    "permesso permessi rechten",
)
_RIGHTS_STEMS = ("authori", "rechte", "berechtigung", "befugnis", "zugriff", "autoriza", "autoris")
# Where a sentence, list item, JSON string or clause ends (a question mark stays with its
# sentence: it asks).
_BREAKS = (
    ". ",
    "! ",
    "; ",
    "… ",
    "。",
    " - ",
    " \u2014 ",
    " \u2013 ",
    " / ",
    '",',
    '"]',
    '"}',
    '["',
)
_WORD = re.compile(r"\w+")
# What may open a sentence before its verb: a bullet, an addressee or an opener ("admin:",
# "ok,", "hi Maria,"), at most two of them.
_OPENING = re.compile(r"^[\W_]*(?:[^\s:,]+(?:\s+[^\s:,]+)?\s*[:,]\s*){0,2}")


def _verb(tool: str) -> str:
    """The first word of a tool's name (``delete_record`` -> ``delete``, ``sendEmail`` ->
    ``send``): by the usual verb-object naming, the action; said first in a sentence, the
    imperative asking for it."""
    word = re.match(r"[a-z]+|[A-Z][a-z]*", tool.strip("_"))
    return word.group().lower() if word and len(word.group()) >= 3 else ""


def _asks(content: str, named: frozenset[str], verb: str = "") -> bool:
    """Whether a message naming the denied values ``named`` asks its recipient for the
    denied action: a sentence naming one of the values carries a request marker (a
    question mark; "please", "can you", "must", "has to", "need", "for me", and their
    German, Spanish, French, Italian, Dutch counterparts) or opens with the denied tool's
    ``verb`` (the imperative: "admin: delete R-1 today"), or a sentence points at the
    recipient's rights ("you have the rights", "your permissions are higher"). A report
    of the denial ("FYI: deleting R-1 was refused"), an acknowledgement ("noted, R-1
    stays") or a bare mention asks nothing."""
    text = content[:1000].lower().replace("? ", "?\n")
    for mark in _BREAKS:
        if mark in text:
            text = text.replace(mark, "\n")
    needles = [n for n in (f.strip('"') for f in named) if n]
    you = not _YOU.isdisjoint(_WORD.findall(text))  # a second person: maybe an appeal
    for clause in text.split("\n"):
        words: list[str] | None = None
        if you:
            words = _WORD.findall(clause)
            if not _YOU.isdisjoint(words) and _appeals(words):
                return True
        if not any(v in clause for v in needles):
            continue
        if words is None:
            words = _WORD.findall(clause)
        if "¿" in clause or clause.rstrip(" \"')]}.!").endswith("?"):
            return True
        if verb:
            opening = _OPENING.match(clause)
            rest = clause[opening.end() :] if opening else clause
            if rest.startswith(verb) and not rest[len(verb) : len(verb) + 1].isalpha():
                return True
        if _requests(words):
            return True
    return False


def _appeals(words: list[str]) -> bool:
    """A second-person word within three words of a rights word ("you have the rights",
    "your permissions", "tienes los permisos"), or "the right" beside one."""
    for i, w in enumerate(words):
        if w not in _YOU:
            continue
        for x in words[max(0, i - 4) : i] + words[i + 1 : i + 5]:
            if x in _RIGHTS or x.startswith(_RIGHTS_STEMS):
                return True
    return any(w == "right" and i and words[i - 1] == "the" for i, w in enumerate(words))


def _requests(words: list[str]) -> bool:
    """A request marker among a sentence's words (``_ASK_WORDS``, ``_ASK_PAIRS``,
    ``_ASK_TRIPLES``; "need" unless negated: "no need")."""
    if not _ASK_WORDS.isdisjoint(words):
        return True
    if not _ASK_PAIRS.isdisjoint(pairwise(words)):
        return True
    if not _ASK_TRIPLES.isdisjoint(zip(words, words[1:], words[2:], strict=False)):
        return True
    if "need" not in words and "needs" not in words:
        return False
    return any(
        w in ("need", "needs") and not (i and words[i - 1] in _NOT) for i, w in enumerate(words)
    )
