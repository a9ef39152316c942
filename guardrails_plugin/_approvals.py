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
    """What a person may answer: the same four decision types as LangChain's
    ``HumanInTheLoopMiddleware`` (``approve``, ``edit``, ``reject``, ``respond``)."""

    APPROVE = "approve"
    EDIT = "edit"
    REJECT = "reject"
    RESPOND = "respond"

    def __str__(self) -> str:
        return self.value


ALL_ANSWERS: tuple[Answer, ...] = (Answer.APPROVE, Answer.EDIT, Answer.REJECT, Answer.RESPOND)
"""Every answer, in the order LangChain lists them."""


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What a person is asked to decide. ``to_dict()`` is JSON-serializable."""

    call: ToolCall
    decision: Decision
    allowed: tuple[Answer, ...] = ALL_ANSWERS

    def to_dict(self) -> dict[str, Any]:
        """The request as plain JSON: who, which tool, the arguments, the rule that asked and
        why, and the answers allowed."""
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

    An edit changes the arguments it names and keeps the others (``replace=True`` hands the
    tool exactly ``args`` instead). The edited call is checked against the policy again, on
    the arguments the tool will receive (where an adapter can see the tool's schema: aliases
    and coercions applied, unknown keys denied), and runs only if the policy allows it.
    ``tool`` is set when the answer named the tool it edits (LangChain's ``edited_action``):
    an edit cannot switch tools, so another name is refused.
    """

    answer: Answer
    args: Mapping[str, Any] | None = None
    message: str = ""
    approver: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    replace: bool = False
    tool: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "answer", Answer(self.answer))
        if self.answer is Answer.EDIT and not isinstance(self.args, Mapping):
            raise ValueError(f"an edit needs the new arguments as a mapping, found {self.args!r}")
        if self.args is not None:
            if not all(isinstance(k, str) for k in self.args):
                raise ValueError(f"an edit's argument names must be strings, found {self.args!r}")
            object.__setattr__(self, "args", MappingProxyType(dict(self.args)))
        if self.tool is not None and not isinstance(self.tool, str):
            raise ValueError(f"an edit's tool name must be a string, found {self.tool!r}")

    @classmethod
    def approve(cls, *, approver: str = "") -> Approval:
        """Let the call run as it is."""
        return cls(Answer.APPROVE, approver=approver)

    @classmethod
    def edit(
        cls, args: Mapping[str, Any], *, replace: bool = False, approver: str = ""
    ) -> Approval:
        """Run the call with changed arguments: ``args`` are merged into the call's own
        (the keys given replace theirs, the others stay), or, with ``replace=True``, are the
        whole new arguments. The edited call is checked against the policy again."""
        return cls(Answer.EDIT, args=args, approver=approver, replace=replace)

    @classmethod
    def reject(cls, message: str = "", *, approver: str = "") -> Approval:
        """Do not run the call; ``message`` tells the model why."""
        return cls(Answer.REJECT, message=message, approver=approver)

    @classmethod
    def respond(cls, message: str, *, approver: str = "") -> Approval:
        """Do not run the call; ``message`` is handed to the model as the tool's result."""
        return cls(Answer.RESPOND, message=message, approver=approver)

    def edited_args(self, original: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments of the edited call: ``args`` merged into ``original``, or ``args``
        alone when the edit replaces them. (Adapters that know the tool's schema merge by
        field, so that an alias replaces the field it names: see ``langgraph``.)"""
        if self.args is None:
            return dict(original)
        if self.replace:
            return dict(self.args)
        return {**original, **self.args}

    @classmethod
    def parse(cls, value: Any) -> Approval:
        """Read an answer: an ``Approval``; ``True`` (approve) or ``False`` (reject); our dict
        ``{"type": "approve"|"edit"|"reject"|"respond", "args": ..., "message": ...}``
        (``"answer"`` for ``"type"`` too); or LangChain's ``HumanInTheLoopMiddleware``
        decision ``{"type": "edit", "edited_action": {"name": ..., "args": ...}}`` (its
        edit replaces the arguments) or response ``{"decisions": [one decision]}``.

        Raises ``ValueError`` or ``TypeError`` with what was wrong for anything else.
        """
        if isinstance(value, Approval):
            return value
        if value is True:
            return cls.approve()
        if value is False:
            return cls.reject()
        if isinstance(value, Mapping):
            if "decisions" in value and "type" not in value and "answer" not in value:
                decisions = value["decisions"]
                if not isinstance(decisions, list | tuple) or len(decisions) != 1:
                    raise ValueError(
                        "a response for one call needs exactly one decision, found "
                        f"{_count(decisions)}"
                    )
                return cls.parse(decisions[0])
            kind = value.get("type", value.get("answer"))
            try:
                answer = Answer(kind)
            except ValueError:
                raise ValueError(
                    f"an approval must have type approve, edit, reject or respond, found {kind!r}"
                ) from None
            args = value.get("args")
            tool: Any = value.get("tool") if answer is Answer.EDIT else None
            replace = value.get("replace", False)
            if not isinstance(replace, bool):
                raise ValueError(f"an edit's replace must be true or false, found {replace!r}")
            if answer is Answer.EDIT and "edited_action" in value:  # LangChain's edit
                action = value["edited_action"]
                if not isinstance(action, Mapping) or not isinstance(action.get("args"), Mapping):
                    raise ValueError(
                        "an edit's edited_action must be an object with name and args, "
                        f"found {action!r}"
                    )
                args, tool, replace = action["args"], action.get("name"), True
            message = value.get("message")
            if message is not None and not isinstance(message, str):
                raise ValueError(f"an approval's message must be a string, found {message!r}")
            return cls(
                answer,
                args=args if answer is Answer.EDIT else None,
                message=message or "",
                approver=str(value.get("approver") or ""),
                replace=replace,
                tool=tool,
            )
        raise TypeError(
            f"an answer must be an Approval, a bool or a dict, found {type(value).__name__}"
        )


def _count(decisions: Any) -> str:
    if isinstance(decisions, list | tuple):
        return f"{len(decisions)}"
    return f"{type(decisions).__name__} {decisions!r}"


@dataclass(frozen=True, slots=True)
class EditedArgs:
    """An edit applied to a call: the arguments to hand the tool (``sent``) and those the
    tool will receive from them (``received``, what the policy checks), or ``None`` and
    ``problem``, why the guard cannot tell (the edited call is then denied)."""

    sent: Mapping[str, Any]
    received: Mapping[str, Any] | None
    problem: str | None = None


EditReader = Callable[[Approval, Mapping[str, Any]], EditedArgs]
"""How an adapter that sees the tool applies an edit to a call's arguments (its schema
merges by field and parses the result as the tool will); the guard's default is
``Approval.edited_args`` with no parsing."""


Approver = Callable[[ApprovalRequest], "Approval | bool | Mapping[str, Any]"]
"""A function asked about each ``ask``: returns an ``Approval``, a bool, or an answer dict."""
AsyncApprover = Callable[[ApprovalRequest], Awaitable["Approval | bool | Mapping[str, Any]"]]
"""An approver that is a coroutine function (used from ``ainvoke`` / ``astream``)."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)
