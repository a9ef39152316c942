"""Learning a baseline from recorded traffic, one call at a time, in bounded memory."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from .._events import ToolCall
from ..replay import RecordedCall
from ._baseline import AgentProfile, Baseline, Counts
from ._values import keys, secret_name

__all__ = ["learn"]

_BIG = 256
OPEN = 0.5
"""An argument whose values were new more often than this (``Counts.novelty``: free text,
identifiers, amounts written as strings) keeps only its count: there is no habit to keep,
and its texts do not belong in the baseline file."""


def _bucket(n: int) -> int:
    """Calls per run as the volume histogram keeps them: exact up to 256, then rounded down
    to one of 8 steps per doubling (the histogram stays a few hundred entries long)."""
    if n <= _BIG:
        return n
    step = 1 << max(n.bit_length() - 4, 0)
    return n - n % step


class _Counter:
    """A bounded counter: at most ``2 * cap`` keys while counting; when full, only the
    ``cap`` most frequent stay and the occurrences of the others go to ``others`` (lossy
    counting: a key frequent over the whole history stays, a rare one is summed)."""

    __slots__ = ("cap", "counts", "others")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.counts: dict[str, int] = {}
        self.others = 0

    def add(self, key: str) -> None:
        counts = self.counts
        n = counts.get(key)
        if n is not None:
            counts[key] = n + 1
            return
        if len(counts) >= 2 * self.cap:
            self._prune()  # (a new dictionary)
        self.counts[key] = 1

    def _prune(self) -> None:
        kept = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        self.others += sum(n for _, n in kept[self.cap :])
        self.counts = dict(kept[: self.cap])

    def done(self, *, drop_open: bool = False) -> Counts:
        if len(self.counts) > self.cap:
            self._prune()
        counts = Counts(dict(self.counts), self.others)
        if drop_open and counts.novelty > OPEN:
            return Counts({}, counts.total)  # free text, ids: no habit, and not for the file
        return counts


class _Agent:
    __slots__ = ("args", "cap", "params", "tools", "transitions", "volume")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.tools = _Counter(cap)
        self.args: dict[str, dict[str, _Counter]] = {}
        self.params: dict[str, _Counter] = {}  # tool -> the argument names its calls had
        self.transitions: dict[str, _Counter] = {}
        self.volume: dict[int, int] = {}

    def call(self, tool: str, args: Any) -> None:
        self.tools.add(tool)
        per = self.args.get(tool)
        if per is None:
            if len(self.args) >= 4 * self.cap:
                return
            per = self.args[tool] = {}
            self.params[tool] = _Counter(self.cap)
        if not hasattr(args, "items"):
            return
        names = self.params[tool]
        for name, value in args.items():
            if not isinstance(name, str):
                continue
            names.add(name)
            if secret_name(name):
                continue
            found = keys(value)
            if not found:
                continue
            counter = per.get(name)
            if counter is None:
                if len(per) >= self.cap:
                    continue
                counter = per[name] = _Counter(self.cap)
            for k in found:
                counter.add(k)

    def step(self, prev: str, tool: str) -> None:
        counter = self.transitions.get(prev)
        if counter is None:
            if len(self.transitions) >= 4 * self.cap:
                return
            counter = self.transitions[prev] = _Counter(self.cap)
        counter.add(tool)

    def done(self) -> AgentProfile:
        tools = self.tools.done()
        kept = tools.values
        return AgentProfile(
            tools=tools,
            args={
                t: {a: c.done(drop_open=True) for a, c in per.items()}
                for t, per in self.args.items()
                if t in kept
            },
            params={t: c.done() for t, c in self.params.items() if t in kept},
            transitions={p: c.done() for p, c in self.transitions.items() if p == "" or p in kept},
            volume=dict(self.volume),
        )


_STOPPED = frozenset({"pause", "kill-switch", "quarantine", "store-error", "audit-error"})
"""Rules of calls the kill switch, the breaker or the guard itself stopped (recorded with no
policy outcome): they never ran."""


def _stopped(item: RecordedCall) -> bool:
    """A call that did not run: the policy denied it, or (no policy outcome recorded) the
    kill switch, the cascade breaker or a failure stopped it."""
    if item.outcome == "deny":
        return True
    rule = item.rule
    return (
        item.outcome is None
        and rule is not None
        and (rule in _STOPPED or rule.startswith("cascade:"))
    )


def learn(
    source: Iterable[Any],
    *,
    cap: int = 64,
    max_agents: int = 10_000,
    max_open_runs: int = 100_000,
    progress: Callable[[int], None] | None = None,
    stopped: bool = False,
) -> Baseline:
    """Learn each agent's habits from recorded traffic: ``source`` is any iterable of
    ``RecordedCall`` (``replay.from_audit``, ``from_jsonl``, ``from_checkpoints``,
    ``open_source``) or ``ToolCall`` (events of a run or a simulation, all taken as having
    run; unreadable ones skipped), oldest first; results and other records are skipped.

    A run is what the guard calls a scope: the call's thread, else its run; calls naming
    neither teach tools and arguments, not volume or transitions. A run counts as finished
    when the history ends, or when it is the least recently active of more than
    ``max_open_runs`` runs in progress (a later call of it then starts a new run). Memory is
    bounded by ``cap`` (keys kept per count table), ``max_agents`` and ``max_open_runs``,
    whatever the length of the history. ``progress`` is called with the number of calls
    read, every 1,000 calls and at the end.

    Calls that did not run are not habits: a call recorded as denied, or stopped by the kill
    switch or the cascade breaker (an audit log's ``control`` and ``trip`` records: rules
    ``pause``, ``kill-switch``, ``quarantine``, ``cascade:*`` with no policy outcome), is
    skipped unless ``stopped=True``; ``Baseline.skipped`` counts them. Everything else the
    source holds is learned as normal: learn from a history you trust.
    """
    if cap < 1 or max_agents < 1 or max_open_runs < 1:
        raise ValueError("learn: cap, max_agents and max_open_runs must be at least 1")
    agents: dict[str, _Agent] = {}
    runs: OrderedDict[tuple[str, str], list[Any]] = OrderedDict()  # -> [calls, last tool]
    calls = skipped = 0

    def finish(key: tuple[str, str], run: list[Any]) -> None:
        volume = agents[key[0]].volume
        b = _bucket(run[0])
        volume[b] = volume.get(b, 0) + 1

    for item in source:
        if isinstance(item, ToolCall):  # events straight from a run or a simulation
            if not item.readable:
                continue
        elif not isinstance(item, RecordedCall):
            continue
        calls += 1
        if progress is not None and calls % 1_000 == 0:
            progress(calls)
        if not stopped and isinstance(item, RecordedCall) and _stopped(item):
            skipped += 1
            continue
        agent = agents.get(item.agent)
        if agent is None:
            if len(agents) >= max_agents:
                skipped += 1
                continue
            agent = agents[item.agent] = _Agent(cap)
        agent.call(item.tool, item.args)
        scope = item.thread_id or item.run_id
        if scope is None:
            continue
        key = (item.agent, scope)
        run = runs.get(key)
        if run is None:
            run = runs[key] = [0, ""]
            if len(runs) > max_open_runs:
                finish(*runs.popitem(last=False))
        else:
            runs.move_to_end(key)
        agent.step(run[1], item.tool)
        run[0] += 1
        run[1] = item.tool
    for key, run in runs.items():
        finish(key, run)
    if progress is not None:
        progress(calls)
    return Baseline(
        agents={name: a.done() for name, a in agents.items()},
        cap=cap,
        calls=calls - skipped,
        skipped=skipped,
    )
