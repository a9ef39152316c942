"""Asking a person: the request the guard sends and the answers it accepts."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._decision import Decision
from ._events import ToolCall


class Answer(enum.StrEnum):
    APPROVE = "approve"
    EDIT = "edit"
    REJECT = "reject"
    RESPOND = "respond"

    def __str__(self) -> str:
        return self.value


ALL_ANSWERS: tuple[Answer, ...] = (Answer.APPROVE, Answer.EDIT, Answer.REJECT, Answer.RESPOND)


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What a person is asked to decide. ``to_dict()`` is JSON-serializable."""

    call: ToolCall
    decision: Decision
    allowed: tuple[Answer, ...] = ALL_ANSWERS

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.call.agent,
            "tool": self.call.tool,
            "args": _jsonable(dict(self.call.args)),
            "call_id": self.call.call_id,
            "thread_id": self.call.thread_id,
            "run_id": self.call.run_id,
            "rule": self.decision.rule,
            "reason": self.decision.reason,
            "allowed_decisions": [str(a) for a in self.allowed],
        }


@dataclass(frozen=True, slots=True)
class Approval:
    """A person's answer: approve, edit (run with other arguments), reject, or respond.

    ``Approval.approve()``, ``Approval.edit({"to": "a@example.com"})``,
    ``Approval.reject("not to customers")``, ``Approval.respond("the answer is 42")``.
    An edited call is checked against the policy again.
    """

    answer: Answer
    args: Mapping[str, Any] | None = None
    message: str = ""
    approver: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "answer", Answer(self.answer))
        if self.answer is Answer.EDIT and not isinstance(self.args, Mapping):
            raise ValueError(f"an edit needs the new arguments as a mapping, found {self.args!r}")
        if self.args is not None:
            object.__setattr__(self, "args", MappingProxyType(dict(self.args)))

    @classmethod
    def approve(cls, *, approver: str = "") -> Approval:
        return cls(Answer.APPROVE, approver=approver)

    @classmethod
    def edit(cls, args: Mapping[str, Any], *, approver: str = "") -> Approval:
        return cls(Answer.EDIT, args=args, approver=approver)

    @classmethod
    def reject(cls, message: str = "", *, approver: str = "") -> Approval:
        return cls(Answer.REJECT, message=message, approver=approver)

    @classmethod
    def respond(cls, message: str, *, approver: str = "") -> Approval:
        return cls(Answer.RESPOND, message=message, approver=approver)

    @classmethod
    def parse(cls, value: Any) -> Approval:
        """Accept an ``Approval``, a bool, or a dict ``{"type": "approve"|"edit"|..., ...}``."""
        if isinstance(value, Approval):
            return value
        if value is True:
            return cls.approve()
        if value is False:
            return cls.reject()
        if isinstance(value, Mapping):
            kind = value.get("type", value.get("answer"))
            try:
                answer = Answer(kind)
            except ValueError:
                raise ValueError(
                    f"an approval must have type approve, edit, reject or respond, found {kind!r}"
                ) from None
            return cls(
                answer,
                args=value.get("args"),
                message=str(value.get("message") or ""),
                approver=str(value.get("approver") or ""),
            )
        raise TypeError(
            f"an approver must return an Approval, a bool or a dict, found {type(value).__name__}"
        )


Approver = Callable[[ApprovalRequest], "Approval | bool | Mapping[str, Any]"]
AsyncApprover = Callable[[ApprovalRequest], Awaitable["Approval | bool | Mapping[str, Any]"]]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)
