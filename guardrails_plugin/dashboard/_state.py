"""What the dashboard shows, read from the guard's Store: pending approvals, paused steps,
kill-switch flags, cascade trips, grants, and the agents and threads they name.

Everything here is a plain read of store documents, so the dashboard can run as its own
operator process on the store file the guards share. Documents written by agents (arguments,
reasons, messages) are data for the page, never markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._decision import Decision
from .._errors import GuardrailsError, StoreError
from .._grants import GRANT_PREFIX, Grant
from ..cascade._breaker import TRIP_PREFIX, trips_in
from ..controls import CONTROL_PREFIX, Flag
from ..store import Store

PENDING_PREFIX = "pending/"
"""Where the LangGraph gate records what waits (``langgraph._pending.PENDING_PREFIX``; not
imported from there so that the dashboard reads a store without LangGraph installed)."""

MAX_TRIPS = 50
"""Cascade trips sent to the page, newest first."""


def split_key(key: str) -> tuple[str, str]:
    """``pending/<thread>/<call id or node:task>`` -> (thread, call id or step). Thread ids
    may hold slashes (``acme/support/t-1``); call ids and LangGraph task ids do not."""
    thread, _, rest = key[len(PENDING_PREFIX) :].rpartition("/")
    return thread, rest


def pending_approvals(docs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Approvals a guarded graph waits for (``pending/<thread>/<call id>`` documents that
    hold an asked decision and no final one), oldest first."""
    out: list[dict[str, Any]] = []
    for key, doc in docs.items():
        if not isinstance(doc, Mapping) or "asked" not in doc or "final" in doc:
            continue
        asked: Mapping[str, Any] = doc["asked"] if isinstance(doc["asked"], Mapping) else {}
        found = doc.get("call")
        call: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        thread, call_id = split_key(key)
        out.append(
            {
                "key": key,
                "thread_id": str(call.get("thread_id") or thread),
                "call_id": str(call.get("call_id") or call_id),
                "agent": str(call.get("agent") or asked.get("agent") or ""),
                "tool": str(call.get("tool") or asked.get("tool") or ""),
                "args": call.get("args") if "args" in call else asked.get("args"),
                "rule": str(asked.get("rule") or ""),
                "reason": str(asked.get("reason") or ""),
                "asked_at": _number(doc.get("at")),
            }
        )
    return sorted(out, key=lambda p: (p["asked_at"] or 0.0, p["key"]))


def paused_steps(docs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Steps held by a pause, which go on once the pause is lifted and the graph resumed:
    node holds (``pending/<thread>/node:<task>``, unless the task has got past its hold
    since), calls whose log ends in a pause, before a decision or after a person approved
    them (``approved``)."""
    out: list[dict[str, Any]] = []
    for key, doc in docs.items():
        if not isinstance(doc, Mapping):
            continue
        thread, step = split_key(key)
        log = doc.get("log")
        pauses = doc.get("pauses")
        if isinstance(pauses, int) and not isinstance(pauses, bool):
            if pauses > 0 and not doc.get("passed"):
                out.append(_held(key, thread, step, pauses))
            continue
        if not (isinstance(log, list) and log and log[-1] == "pause"):
            continue
        if "asked" in doc and not _allowed(doc.get("final")):
            continue  # waits for a person (shown as pending), or was denied
        found = doc.get("call")
        call: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        held = _held(key, str(call.get("thread_id") or thread), step, log.count("pause"))
        held.update(
            call_id=str(call.get("call_id") or step),
            agent=str(call.get("agent") or ""),
            tool=str(call.get("tool") or ""),
            approved="asked" in doc,
        )
        out.append(held)
    return sorted(out, key=lambda p: p["key"])


def _held(key: str, thread: str, step: str, pauses: int) -> dict[str, Any]:
    return {
        "key": key,
        "thread_id": thread,
        "step": step,
        "pauses": pauses,
        "call_id": None,
        "agent": "",
        "tool": "",
        "approved": False,
    }


def _allowed(doc: Any) -> bool:
    """Whether a final decision document lets the call run."""
    try:
        return Decision.from_doc(doc).allowed
    except (GuardrailsError, ValueError, TypeError, KeyError, AttributeError):
        return False


def flags(docs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Kill-switch flags in force, oldest first (a quarantine says how many grants it holds)."""
    out = []
    for key, doc in docs.items():
        try:
            flag = Flag.from_doc(doc)
        except (GuardrailsError, ValueError, TypeError) as exc:  # shown, never hidden
            out.append({"key": key, "error": f"unreadable flag: {exc}", "at": 0.0})
            continue
        held = len(flag.grants or {})
        out.append(
            {
                "key": key,
                "level": flag.level,
                "target": flag.target,
                "state": str(flag.state),
                "reason": flag.reason,
                "by": flag.by,
                "at": flag.at,
                "grants_held": held,
            }
        )
    return sorted(out, key=lambda f: (f["at"], f["key"]))


def trips(docs: Mapping[str, Any], limit: int = MAX_TRIPS) -> list[dict[str, Any]]:
    """The cascade breaker's trips, newest first."""
    found = trips_in(docs)
    return [
        {
            "key": t.key,
            "signal": t.signal,
            "scope": t.scope,
            "reason": t.reason,
            "response": t.response,
            "culprit": t.culprit,
            "agents": list(t.agents),
            "at": t.at,
            "at_message": t.at_message,
            "thread_id": t.thread_id,
            "evidence": [dict(e) for e in t.evidence],
        }
        for t in reversed(found[-limit:])
    ]


def grants(docs: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
    """Run-time grants in the store, with whether each is expired or broken."""
    out = []
    by_id: dict[str, Grant] = {}
    for key, doc in docs.items():
        if not isinstance(doc, Mapping):
            continue
        try:
            g = Grant.from_doc(doc)
        except StoreError as exc:  # an unreadable record is shown, not dropped
            out.append({"key": key, "id": key[len(GRANT_PREFIX) :], "error": str(exc)})
            continue
        by_id[g.id] = g
    for g in by_id.values():
        parent_gone = (
            g.parent is not None and not g.parent.startswith("rule:") and g.parent not in by_id
        )
        doc = g.to_doc()
        doc["key"] = GRANT_PREFIX + g.id
        doc["expired"] = not g.active(now)
        doc["orphaned"] = parent_gone
        out.append(doc)
    return sorted(out, key=lambda d: (str(d.get("agent", "")), str(d.get("id", ""))))


def snapshot(
    store: Store, now: float, decisions: Iterable[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Everything the page shows except the decision stream, as one JSON-able document.

    ``decisions`` (recent ones) only add the agents and threads they name.
    """
    pending_docs = store.scan(PENDING_PREFIX)
    state = {
        "pending": pending_approvals(pending_docs),
        "paused_steps": paused_steps(pending_docs),
        "flags": flags(store.scan(CONTROL_PREFIX)),
        "trips": trips(store.scan(TRIP_PREFIX)),
        "grants": grants(store.scan(GRANT_PREFIX), now),
    }
    state["agents"], state["threads"] = _who(state, decisions)
    return state


def _who(
    state: Mapping[str, Any], decisions: Iterable[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    agents: dict[str, dict[str, Any]] = {}
    threads: dict[str, dict[str, Any]] = {}

    def agent(name: Any) -> dict[str, Any] | None:
        if not isinstance(name, str) or not name:
            return None
        return agents.setdefault(
            name, {"name": name, "state": None, "grants": 0, "pending": 0, "decisions": 0}
        )

    def thread(tid: Any) -> dict[str, Any] | None:
        if not isinstance(tid, str) or not tid or tid == "-":
            return None
        return threads.setdefault(
            tid, {"id": tid, "state": None, "pending": 0, "paused_steps": 0, "decisions": 0}
        )

    for g in state["grants"]:
        a = agent(g.get("agent"))
        if a is not None and not g.get("expired"):
            a["grants"] += 1
    for f in state["flags"]:
        if f.get("level") == "agent" and (a := agent(f.get("target"))) is not None:
            a["state"] = f["state"]
        if f.get("level") == "thread" and (t := thread(f.get("target"))) is not None:
            t["state"] = f["state"]
    for p in state["pending"]:
        if (a := agent(p["agent"])) is not None:
            a["pending"] += 1
        if (t := thread(p["thread_id"])) is not None:
            t["pending"] += 1
    for s in state["paused_steps"]:
        if (t := thread(s["thread_id"])) is not None:
            t["paused_steps"] += 1
    for trip in state["trips"]:
        for name in [trip["culprit"], *trip["agents"]]:
            agent(name)
        thread(trip["thread_id"])
    for d in decisions:
        if (a := agent(d.get("agent"))) is not None:
            a["decisions"] += 1
        if (t := thread(d.get("thread_id"))) is not None:
            t["decisions"] += 1
    return (
        sorted(agents.values(), key=lambda a: a["name"]),
        sorted(threads.values(), key=lambda t: t["id"]),
    )


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
