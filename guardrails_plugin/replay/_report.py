"""What a replay found: counters, the budgets that ran out, a few examples of each change."""

from __future__ import annotations

import collections
import enum
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .._decision import Decision
from .._events import ToolCall
from ._sources import RecordedCall

__all__ = ["BudgetRun", "Change", "Example", "ReplayReport"]


class Change(enum.StrEnum):
    """How a call's new decision compares with the recorded one."""

    NEWLY_DENIED = "newly denied"
    NEWLY_ASKED = "newly asked"
    NEWLY_ALLOWED = "newly allowed"
    UNCHANGED = "unchanged"
    UNKNOWN = "not recorded"
    """The source recorded no decision (checkpoints, calls without ``outcome``)."""


@dataclass(frozen=True, slots=True)
class Example:
    """One replayed call that changed: where it was recorded, what it was, both decisions."""

    where: str
    agent: str
    tool: str
    args: str
    thread_id: str | None
    recorded: str | None
    recorded_rule: str | None
    now: str
    rule: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The example as plain JSON values."""
        return {
            "where": self.where,
            "agent": self.agent,
            "tool": self.tool,
            "args": self.args,
            "thread_id": self.thread_id,
            "recorded": self.recorded,
            "recorded_rule": self.recorded_rule,
            "now": self.now,
            "rule": self.rule,
            "reason": self.reason,
        }


@dataclass(slots=True)
class BudgetRun:
    """A budget the candidate policy ran out of: when first, at which call, how often."""

    budget: str
    first_at: float
    first_call: int
    agent: str
    thread_id: str | None
    denied: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The budget's run as plain JSON values."""
        return {
            "budget": self.budget,
            "first_at": self.first_at,
            "first_call": self.first_call,
            "agent": self.agent,
            "thread_id": self.thread_id,
            "denied": self.denied,
        }


def _counts() -> collections.Counter[Change]:
    return collections.Counter()


@dataclass(slots=True)
class ReplayReport:
    """The result of ``replay``: how many calls, what the candidate decided, what changed,
    per rule and per agent, the budgets it ran out of, and a few examples of each change.

    ``str(report)`` is a table for people; ``to_dict()`` / ``to_json()`` the same for tools.
    Two replays of the same traffic with the same policy give equal reports.
    """

    policy: str
    source: str = ""
    asks: str = "approve"
    examples_kept: int = 5
    calls: int = 0
    results: int = 0
    redacted: int = 0
    unseen_results: int = 0
    unmatched_results: int = 0
    """Results whose call the source never recorded, or that the candidate did not run."""
    """Calls that run now with no recorded result (denied then): recorded as empty."""
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    changes: collections.Counter[Change] = field(default_factory=collections.Counter)
    by_rule: collections.defaultdict[str, collections.Counter[Change]] = field(
        default_factory=lambda: collections.defaultdict(_counts)
    )
    by_agent: collections.defaultdict[str, collections.Counter[Change]] = field(
        default_factory=lambda: collections.defaultdict(_counts)
    )
    budgets: dict[str, BudgetRun] = field(default_factory=dict)
    examples: dict[Change, list[Example]] = field(default_factory=dict)
    result_denials: collections.Counter[str] = field(default_factory=collections.Counter)
    """Results the guard refused to record (a result-token budget ran out), per rule."""

    def __repr__(self) -> str:
        changed = sum(
            n for c, n in self.changes.items() if c not in (Change.UNCHANGED, Change.UNKNOWN)
        )
        return f"ReplayReport(policy={self.policy!r}, calls={self.calls}, changed={changed})"

    # -- filled in by replay ---------------------------------------------------------------

    def _budget_denied(self, budget: str, at: float, index: int, call: ToolCall) -> None:
        run = self.budgets.get(budget)
        if run is None:
            self.budgets[budget] = BudgetRun(budget, at, index, call.agent, call.thread_id)
        else:
            run.denied += 1

    def _record_denied(self, rule: str, call: ToolCall) -> None:
        self.result_denials[rule] += 1

    def _example(self, change: Change, item: RecordedCall, decision: Decision) -> None:
        if change in (Change.UNCHANGED, Change.UNKNOWN):
            return
        kept = self.examples.setdefault(change, [])
        if len(kept) >= self.examples_kept:
            return
        args = json.dumps(dict(item.args), ensure_ascii=False, sort_keys=True, default=str)
        kept.append(
            Example(
                where=item.where or f"call {self.calls}",
                agent=item.agent,
                tool=item.tool,
                args=args if len(args) <= 200 else args[:199] + "…",
                thread_id=item.thread_id,
                recorded=item.outcome,
                recorded_rule=item.rule,
                now=str(decision.effect),
                rule=decision.rule,
                reason=decision.reason,
            )
        )

    # -- reading it --------------------------------------------------------------------------

    @property
    def changed(self) -> int:
        """Calls whose decision changed (newly denied, asked or allowed)."""
        return sum(
            self.changes[c] for c in (Change.NEWLY_DENIED, Change.NEWLY_ASKED, Change.NEWLY_ALLOWED)
        )

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON values (keys sorted where order carries no meaning)."""
        return {
            "policy": self.policy,
            "source": self.source,
            "asks": self.asks,
            "calls": self.calls,
            "results": self.results,
            "redacted": self.redacted,
            "unseen_results": self.unseen_results,
            "unmatched_results": self.unmatched_results,
            "outcomes": dict(sorted(self.outcomes.items())),
            "changes": {str(c): self.changes[c] for c in Change},
            "by_rule": {r: _row(c) for r, c in sorted(self.by_rule.items())},
            "by_agent": {a: _row(c) for a, c in sorted(self.by_agent.items())},
            "budgets": [b.to_dict() for b in sorted(self.budgets.values(), key=_first)],
            "result_denials": dict(sorted(self.result_denials.items())),
            "examples": {
                str(c): [e.to_dict() for e in self.examples.get(c, [])]
                for c in Change
                if self.examples.get(c)
            },
        }

    def to_json(self, **kwargs: Any) -> str:
        """``to_dict()`` as JSON text (``kwargs`` go to ``json.dumps``, e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    def __str__(self) -> str:
        out = [
            f"replayed {self.calls:,} calls ({self.results:,} results) "
            f"{'from ' + self.source + ' ' if self.source else ''}with policy {self.policy}",
            "now: " + ", ".join(f"{self.outcomes[o]:,} {o}" for o in ("allow", "ask", "deny")),
            "against the record: "
            + ", ".join(
                f"{self.changes[c]:,} {c}"
                for c in Change
                if self.changes[c]
                or c in (Change.NEWLY_DENIED, Change.NEWLY_ASKED, Change.NEWLY_ALLOWED)
            ),
        ]
        if self.redacted:
            out.append(
                f"{self.redacted:,} calls were decided on redacted arguments (the audit log "
                "hid some values): their decisions may differ from the real ones"
            )
        if self.unseen_results:
            out.append(
                f"{self.unseen_results:,} calls run now that did not run then: no result was "
                "recorded, so the guard saw them return nothing (result tokens not counted)"
            )
        for title, table in (("by rule", self.by_rule), ("by agent", self.by_agent)):
            if table:
                out.append("")
                out.append(_table(title, table))
        if self.budgets:
            out.append("")
            out.append("budgets that would run out:")
            for b in sorted(self.budgets.values(), key=_first):
                out.append(
                    f"  {b.budget}: first at call {b.first_call:,} ({_when(b.first_at)}), "
                    f"agent {b.agent!r}"
                    f"{', thread ' + repr(b.thread_id) if b.thread_id else ''}; "
                    f"{b.denied:,} calls denied"
                )
        for change in (Change.NEWLY_DENIED, Change.NEWLY_ASKED, Change.NEWLY_ALLOWED):
            kept = self.examples.get(change)
            if not kept:
                continue
            out.append("")
            out.append(f"{change}, for example:")
            for e in kept:
                out.append(
                    f"  {e.where}: {e.agent} {e.tool}({e.args}) — was {e.recorded}"
                    f"{' by ' + repr(e.recorded_rule) if e.recorded_rule else ''}, "
                    f"now {e.now} by {e.rule!r}: {e.reason}"
                )
        return "\n".join(out)


_COLUMNS = (Change.NEWLY_DENIED, Change.NEWLY_ASKED, Change.NEWLY_ALLOWED)


def _row(counts: collections.Counter[Change]) -> dict[str, int]:
    return {str(c): counts[c] for c in _COLUMNS}


def _first(b: BudgetRun) -> tuple[int, str]:
    return (b.first_call, b.budget)


def _when(at: float) -> str:
    try:
        return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return str(at)


def _table(title: str, table: dict[str, collections.Counter[Change]]) -> str:
    names = sorted(table, key=lambda k: (-sum(table[k].values()), k))
    width = max(len(title), *(len(n) for n in names))
    head = f"{title:<{width}}  " + "  ".join(f"{c!s:>13}" for c in _COLUMNS)
    rows = [f"{n:<{width}}  " + "  ".join(f"{table[n][c]:>13,}" for c in _COLUMNS) for n in names]
    return "\n".join([head, *rows])
