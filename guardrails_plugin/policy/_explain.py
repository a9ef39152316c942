"""Explanations: every rule, grant, flow, budget and control a decision considered.

The evaluation code takes an optional :class:`Trace` and, when given one, appends a
:class:`Step` at each point where it looks at something (``if trace is not None``: nothing
is built when no one asks). ``Guard.explain`` and ``guardrails-plugin check --explain`` run
the very code that decides, with a trace, so what they print cannot drift from what the
guard does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._decision import Decision
    from ._rules import Rule, RuleResult

MATCHED = "matched"
MISSED = "did not match"
FAILED = "could not be evaluated (fail closed)"
NOT_REACHED = "not reached"
OVERRIDDEN = "overridden"


@dataclass(frozen=True, slots=True)
class Step:
    """One thing a decision looked at: its kind (``rule``, ``grant``, ``flow``, ``budget``,
    ``control``, ``layer``, ``call``), its name, what it said and why."""

    kind: str
    name: str
    said: str
    detail: str = ""
    layer: str = ""

    def __str__(self) -> str:
        where = f" [{self.layer}]" if self.layer else ""
        why = f": {self.detail}" if self.detail else ""
        return f"{self.kind} {self.name!r}{where} {self.said}{why}"


class Trace:
    """Steps appended in the order the evaluation takes them."""

    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def add(self, kind: str, name: str, said: str, detail: str = "", layer: str = "") -> None:
        self.steps.append(Step(kind, name, said, detail, layer))

    def rule(self, rule: Rule, result: RuleResult, layer: str = "") -> None:
        from ._rules import Outcome

        said = {Outcome.MATCH: MATCHED, Outcome.MISS: MISSED, Outcome.ERROR: FAILED}
        self.add(kind_of(rule), rule.id, said[result.outcome], result.reason, layer)

    def unreached(self, rules: Iterable[Rule], by: str, layer: str = "") -> None:
        for r in rules:
            self.add(kind_of(r), r.id, NOT_REACHED, f"decided by {by!r} first", layer)

    def overridden(self, rule: Rule, by: str, why: str, layer: str = "") -> None:
        self.add(kind_of(rule), rule.id, OVERRIDDEN, f"by {by!r}: {why}", layer)


def kind_of(rule: Rule) -> str:
    if rule.id.startswith("grant:"):
        return "grant"
    if rule.tainted_by or not rule.permits:
        return "flow"
    return "rule"


@dataclass(frozen=True)
class Explanation:
    """Why a call was decided as it was: the steps in order, then the decision."""

    decision: Decision
    steps: tuple[Step, ...] = field(default=())

    def __str__(self) -> str:
        lines = [f"{i}. {s}" for i, s in enumerate(self.steps, 1)]
        d = self.decision
        lines.append(f"=> {d.effect} by {d.kind} {d.rule!r}: {d.reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The steps and the decision as plain data (for JSON output and dashboards)."""
        d = self.decision
        return {
            "steps": [
                {"kind": s.kind, "name": s.name, "said": s.said, "detail": s.detail}
                | ({"layer": s.layer} if s.layer else {})
                for s in self.steps
            ],
            "decision": {
                "effect": str(d.effect),
                "rule": d.rule,
                "kind": d.kind,
                "reason": d.reason,
            },
        }
