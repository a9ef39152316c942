"""The numbers behind the dashboard's live plots, computed on the server from what the page
already gets: the recent decisions (the live feed), the store, the cascade trips.

- ``timeline``: decisions over time by outcome (allow, deny, ask, would deny), in
  equal-width buckets of a round number of seconds;
- ``budgets``: how much of each thread-partitioned budget each recent thread has used
  (read from the store; needs the policy, so a dashboard over a bare store without one has
  none);
- ``messages``: the agent-to-agent message graph (who handed work to whom, how often, how
  often held), with the agents of cascade trips marked.

The page draws them with its own code (inline SVG): no library, nothing fetched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._events import ToolCall
from ..policy import Policy
from ..policy._budgets import Budget, Measure
from ..store import Store

SERIES = ("allow", "deny", "ask", "would_deny")
"""The timeline's series: what ran, what was denied, what waited for a person, and what ran
although a shadow policy or a shadow rule would have denied it (one series per decision)."""
MAX_BUCKETS = 30
"""Points on the timeline at most."""
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
"""Bucket widths in seconds; past a day, whole days."""
MAX_THREADS = 12
"""Threads on the budget plot at most (the most recently active)."""
DECIDED = ("decision", "trip")
"""Audit record kinds that are decisions on calls and messages (``trip``: a message or call
the cascade breaker stopped)."""
MAX_AGENTS = 40
"""Agents on the message graph at most (the most active)."""


def series_of(doc: Mapping[str, Any]) -> str | None:
    """The timeline series of one decision document (a message that tripped the cascade
    breaker included); ``None`` for what is not a decision (results, approvals, operator
    actions)."""
    if doc.get("kind") not in DECIDED:
        return None
    detail = doc.get("detail")
    outcome = doc.get("outcome")
    marks = (detail.get("shadow"), detail.get("would")) if isinstance(detail, Mapping) else ()
    if "deny" in marks and outcome in ("allow", "modify"):
        return "would_deny"  # it ran; the shadow policy or a shadow rule would have denied it
    if outcome in ("allow", "modify"):
        return "allow"
    if outcome in ("deny", "respond"):
        return "deny"
    if outcome == "ask":
        return "ask"
    return None


def step_for(span: float) -> float:
    """The bucket width for decisions ``span`` seconds apart: the smallest round width that
    makes at most ``MAX_BUCKETS`` buckets."""
    for step in STEPS:
        if span / step < MAX_BUCKETS:
            return float(step)
    return 86400.0 * math.ceil(span / 86400.0 / (MAX_BUCKETS - 1))


def timeline(decisions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Decisions per bucket and series: ``{"step": s, "series": [...], "points": [{"t":
    start, "allow": n, ...}, ...]}``, every bucket from the first decision to the last."""
    found: list[tuple[float, str]] = []
    for d in decisions:
        kind = series_of(d)
        at = d.get("at")
        if kind is not None and isinstance(at, int | float) and math.isfinite(at):
            found.append((float(at), kind))
    if not found:
        return {"step": 1.0, "series": list(SERIES), "points": []}
    first, last = min(t for t, _ in found), max(t for t, _ in found)
    step = step_for(last - first)
    base = math.floor(first / step)
    points = [
        {"t": (base + i) * step, **dict.fromkeys(SERIES, 0)}
        for i in range(math.floor(last / step) - base + 1)
    ]
    for at, kind in found:
        points[math.floor(at / step) - base][kind] += 1
    return {"step": step, "series": list(SERIES), "points": points}


def thread_budgets(policy: Policy) -> tuple[Budget, ...]:
    """The budgets of every layer partitioned by thread (``per`` naming ``thread``)."""
    return tuple(b for layer in policy.layers for b in layer.budgets if "thread" in b.per)


def budget_use(
    store: Store,
    policy: Policy | None,
    decisions: Sequence[Mapping[str, Any]],
    now: float,
) -> list[dict[str, Any]]:
    """Per recent thread (newest first), each thread budget's use: ``{"thread": t,
    "budgets": [{"id", "used", "limit", "partitions"}]}``. The partitions are those the
    thread's recent calls fall in (a budget also per agent sums its agents' partitions);
    budgets no recent call of the thread falls under, and threads with none, are left out."""
    budgets = thread_budgets(policy) if policy is not None else ()
    if not budgets:
        return []
    threads: dict[str, dict[str, set[str]]] = {}
    for d in reversed(decisions):  # newest first
        thread = d.get("thread_id")
        if not isinstance(thread, str) or not thread or d.get("kind") not in DECIDED:
            continue
        if thread not in threads:
            if len(threads) >= MAX_THREADS:
                continue
            threads[thread] = {b.id: set() for b in budgets}
        event = _event(d, thread)
        for b in budgets:
            if _applies(b, policy, event):
                threads[thread][b.id].add(b.key(event))
    out = []
    for thread, keys in threads.items():
        rows = []
        for b in budgets:
            if not keys[b.id]:
                continue  # no recent call of this thread falls under it
            used = 0.0
            for key in sorted(keys[b.id]):
                if b.measure is Measure.DISTINCT:
                    used += len(store.members(key))
                else:
                    used += store.total(key, window=b.window, now=now)
            rows.append({"id": b.id, "used": used, "limit": b.limit, "partitions": len(keys[b.id])})
        if rows:
            out.append({"thread": thread, "budgets": rows})
    return out


def _event(doc: Mapping[str, Any], thread: str) -> ToolCall:
    agent = doc.get("agent")
    tool = doc.get("tool")
    run = doc.get("run_id")
    return ToolCall(
        tool if isinstance(tool, str) and tool else "-",
        {},
        agent=agent if isinstance(agent, str) and agent else "agent",
        thread_id=thread,
        run_id=run if isinstance(run, str) else None,
    )


def _applies(b: Budget, policy: Policy | None, event: ToolCall) -> bool:
    if b.of == "model":
        return policy is not None and b in policy.model_budgets(event.agent)
    return event.tool != "-" and b.applies(event.agent, event.tool)


def message_graph(
    decisions: Iterable[Mapping[str, Any]], trips: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """Agents as nodes, messages as edges (``count``, ``held``: not delivered), from the
    recent decisions on messages and hand-offs; the agents of cascade trips marked
    (``alarm``: ``"culprit"`` or ``"involved"``, with the trips' signals) and the edges
    between two agents of one trip marked ``alarm``."""
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    activity: dict[str, int] = {}
    for d in decisions:
        if d.get("kind") not in DECIDED:
            continue
        detail = d.get("detail")
        if not isinstance(detail, Mapping):
            continue
        sender, recipient = detail.get("sender"), detail.get("recipient")
        if not (isinstance(sender, str) and isinstance(recipient, str) and sender and recipient):
            continue
        edge = edges.setdefault(
            (sender, recipient),
            {"from": sender, "to": recipient, "count": 0, "held": 0, "alarm": False},
        )
        edge["count"] += 1
        if d.get("outcome") not in ("allow", "modify"):
            edge["held"] += 1
        activity[sender] = activity.get(sender, 0) + 1
        activity[recipient] = activity.get(recipient, 0) + 1
    alarms: dict[str, dict[str, Any]] = {}
    groups: list[set[str]] = []
    for trip in trips:
        culprit = trip.get("culprit")
        named = [a for a in trip.get("agents") or () if isinstance(a, str) and a]
        group = set(named)
        if isinstance(culprit, str) and culprit:
            group.add(culprit)
        groups.append(group)
        for agent in group:
            mark = alarms.setdefault(agent, {"alarm": "involved", "signals": []})
            if agent == culprit:
                mark["alarm"] = "culprit"
            signal = str(trip.get("signal") or "")
            if signal and signal not in mark["signals"]:
                mark["signals"].append(signal)
            activity.setdefault(agent, 0)
    for edge in edges.values():
        edge["alarm"] = any(edge["from"] in g and edge["to"] in g for g in groups)
    names = sorted(activity, key=lambda a: (-activity[a], a))[:MAX_AGENTS]
    shown = set(names)
    nodes = [
        {
            "id": a,
            "messages": activity[a],
            "alarm": alarms.get(a, {}).get("alarm"),
            "signals": alarms.get(a, {}).get("signals", []),
        }
        for a in sorted(shown)
    ]
    kept = [e for e in edges.values() if e["from"] in shown and e["to"] in shown]
    return {"nodes": nodes, "edges": sorted(kept, key=lambda e: (e["from"], e["to"]))}


def plots(
    store: Store,
    policy: Policy | None,
    decisions: Sequence[Mapping[str, Any]],
    trips: Iterable[Mapping[str, Any]],
    now: float,
) -> dict[str, Any]:
    """Everything the plots draw, as one JSON-able document (the state's ``plots``)."""
    return {
        "timeline": timeline(decisions),
        "budgets": budget_use(store, policy, decisions, now),
        "messages": message_graph(decisions, trips),
    }
