"""Counts over an audit log: what ``guardrails-plugin audit stats`` prints."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ._records import AuditRecord

__all__ = ["AuditStats"]


@dataclass(frozen=True, slots=True)
class AuditStats:
    """How many records, of which kinds and outcomes, by which agents, tools and rules, and
    the span of time they cover. ``str()`` is a readable table (most frequent first)."""

    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    first_at: float | None = None
    last_at: float | None = None
    by_kind: Mapping[str, int] = field(default_factory=dict)
    by_outcome: Mapping[str, int] = field(default_factory=dict)
    by_agent: Mapping[str, int] = field(default_factory=dict)
    by_tool: Mapping[str, int] = field(default_factory=dict)
    by_rule: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Iterable[AuditRecord]) -> AuditStats:
        """The statistics of ``records`` (one pass)."""
        count = 0
        first_seq = last_seq = None
        first_at = last_at = None
        kinds: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        agents: Counter[str] = Counter()
        tools: Counter[str] = Counter()
        rules: Counter[str] = Counter()
        for r in records:
            count += 1
            if first_seq is None:
                first_seq = r.seq
            last_seq = r.seq
            first_at = r.at if first_at is None else min(first_at, r.at)
            last_at = r.at if last_at is None else max(last_at, r.at)
            kinds[r.kind] += 1
            outcomes[r.outcome] += 1
            if r.agent is not None:
                agents[r.agent] += 1
            if r.tool is not None:
                tools[r.tool] += 1
            if r.rule is not None:
                rules[r.rule] += 1
        return cls(
            count,
            first_seq,
            last_seq,
            first_at,
            last_at,
            dict(kinds.most_common()),
            dict(outcomes.most_common()),
            dict(agents.most_common()),
            dict(tools.most_common()),
            dict(rules.most_common()),
        )

    def __str__(self) -> str:
        if not self.records:
            return "no records"
        lines = [
            f"{self.records} record{'s' * (self.records != 1)}, seq {self.first_seq} to {self.last_seq}, "
            f"{_when(self.first_at)} to {_when(self.last_at)}"
        ]
        for title, counts in (
            ("kind", self.by_kind),
            ("outcome", self.by_outcome),
            ("agent", self.by_agent),
            ("tool", self.by_tool),
            ("rule", self.by_rule),
        ):
            if not counts:
                continue
            width = max(len(title), *(len(k) for k in counts))
            lines.append("")
            lines.append(f"{title:<{width}}  {'count':>7}  {'share':>6}")
            for key, n in counts.items():
                lines.append(f"{key:<{width}}  {n:>7}  {n / self.records:>6.1%}")
        return "\n".join(lines)


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
