"""The guard's answer: a small typed record a caller never has to interpret, and the
exceptions that carry one (``Decision.error()`` picks the one a hook raises)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._root_error import GuardrailsError


class Effect(enum.StrEnum):
    """What happens to the guarded step."""

    ALLOW = "allow"
    """Go ahead."""
    DENY = "deny"
    """Do not run it; ``reason`` says why (the model reads it too)."""
    ASK = "ask"
    """A person must approve, edit, reject or answer first."""
    MODIFY = "modify"
    """Go ahead with ``args`` instead of what the model asked for (an approved edit)."""
    RESPOND = "respond"
    """Do not run it; a person answered in the tool's place with ``response``."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Charge:
    """One unit of budget a decision consumed, kept so that it can be given back."""

    key: str
    amount: float = 0.0
    window: float | None = None
    at: float = 0.0
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """Allow, deny, ask, modify or respond; which rule decided; why.

    ``rule`` is the id of the rule that decided (``"default-deny"`` when no rule matched);
    ``reason`` is written for both the operator and the model. ``kind`` says what sort of
    thing ``rule`` names: ``"rule"``, ``"budget"``, ``"grant"``, ``"approval"``, ``"guard"``
    (the guard itself: unreadable call, store failure), ``"control"`` (the kill switch: a
    kill is a deny, a pause an ask that only an operator's ``resume`` answers).
    """

    effect: Effect
    rule: str
    reason: str
    tool: str | None = None
    agent: str | None = None
    args: Mapping[str, Any] | None = None
    response: str | None = None
    kind: str = "rule"
    charges: tuple[Charge, ...] = field(default=(), repr=False, compare=False)
    approver: str | None = None
    """Who answered, for a decision a person made (approve, edit, reject, respond)."""
    shadow: str | None = None
    """Shadow mode: what the policy decided (``"deny"`` or ``"ask"``) for a call the guard
    let through anyway; ``None`` for an enforced decision."""
    would: str | None = None
    """Shadow rules (``deny(..., shadow=True)``): what the policy would have decided
    (``"deny"``, ``"ask"`` or ``"allow"``) with its shadow rules enforced, when that differs
    from this decision; ``None`` when they change nothing (or the policy has none)."""
    would_rule: str | None = None
    """The rule that would have decided, with ``would``."""
    model_reason: str | None = field(default=None, compare=False)
    """What the model reads instead of ``reason`` when set: which rule and what was wrong,
    never what the rule allows (``reason``, for the operator, the audit log and approval
    requests, lists that)."""

    def __post_init__(self) -> None:
        if self.args is not None and not isinstance(self.args, MappingProxyType):
            object.__setattr__(self, "args", MappingProxyType(dict(self.args)))

    @property
    def allowed(self) -> bool:
        """True when the step may run (allow, or allow with modified arguments)."""
        return self.effect in (Effect.ALLOW, Effect.MODIFY)

    @property
    def denied(self) -> bool:
        """Whether the call must not run."""
        return self.effect is Effect.DENY

    @property
    def needs_approval(self) -> bool:
        """Whether a person must decide (an ``ask``)."""
        return self.effect is Effect.ASK

    def message(self) -> str:
        """One line for logs, errors and the operator: ``denied by rule 'x': reason``."""
        return self._line(self.reason)

    def for_model(self) -> str:
        """:meth:`message` with the reason written for the model (``model_reason``)."""
        return self._line(self.reason if self.model_reason is None else self.model_reason)

    def _line(self, reason: str) -> str:
        verb = {
            Effect.ALLOW: "allowed",
            Effect.DENY: "denied",
            Effect.ASK: "needs approval",
            Effect.MODIFY: "allowed with edited arguments",
            Effect.RESPOND: "answered by a person",
        }[self.effect]
        what = f"{self.tool!r} " if self.tool else ""
        return f"{what}{verb} by rule {self.rule!r}: {reason}"

    def error(self) -> GuardDecisionError:
        """The exception to raise where a hook can only raise: ``BudgetExceeded`` for a
        budget, ``ApprovalRequired`` for an unanswered ``ask``, ``RunKilled`` / ``RunPaused``
        for the kill switch, else ``ToolCallDenied``."""
        if self.kind == "control":
            return RunPaused(self) if self.effect is Effect.ASK else RunKilled(self)
        if self.kind == "budget":
            return BudgetExceeded(self)
        if self.effect is Effect.ASK:
            return ApprovalRequired(self)
        return ToolCallDenied(self)

    def __hash__(self) -> int:
        return hash((self.effect, self.rule, self.reason, self.tool, self.agent))

    def to_doc(self) -> dict[str, Any]:
        """A JSON-serializable document; ``Decision.from_doc`` reads it back (charges too)."""
        doc: dict[str, Any] = {
            "effect": str(self.effect),
            "rule": self.rule,
            "reason": self.reason,
            "tool": self.tool,
            "agent": self.agent,
            "args": None if self.args is None else dict(self.args),
            "response": self.response,
            "kind": self.kind,
            "charges": [[c.key, c.amount, c.window, c.at, list(c.members)] for c in self.charges],
            "approver": self.approver,
            "model_reason": self.model_reason,
        }
        if self.would is not None:  # shadow rules' mark, only when there is one
            doc["would"] = self.would
            doc["would_rule"] = self.would_rule
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Decision:
        """Read a decision back from ``to_doc``'s document."""
        return cls(
            Effect(doc["effect"]),
            str(doc["rule"]),
            str(doc["reason"]),
            tool=doc.get("tool"),
            agent=doc.get("agent"),
            args=doc.get("args"),
            response=doc.get("response"),
            kind=str(doc.get("kind", "rule")),
            charges=tuple(
                Charge(str(k), float(a), None if w is None else float(w), float(t), tuple(m))
                for k, a, w, t, m in doc.get("charges", ())
            ),
            approver=doc.get("approver"),
            model_reason=doc.get("model_reason"),
            would=doc.get("would"),
            would_rule=doc.get("would_rule"),
        )


class GuardDecisionError(GuardrailsError):
    """A guarded step did not go ahead; ``decision`` says which rule stopped it and why."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(decision.message())


class ToolCallDenied(GuardDecisionError):
    """The policy, or a person, denied a tool call."""


class BudgetExceeded(ToolCallDenied):
    """A call, amount, token or rate budget ran out."""


class ApprovalRequired(GuardDecisionError):
    """The call needs a person's approval and no approver is configured."""


class RunKilled(GuardDecisionError):
    """An operator killed the run (or the agent, or everything) with the kill switch."""


class RunPaused(GuardDecisionError):
    """An operator paused the run (or the agent, or everything); lift it with ``resume``."""
