"""LangChain's human-in-the-loop format on the guard's interrupts, and edits by the tool's schema.

The guard's approval interrupts carry LangChain's ``HumanInTheLoopMiddleware`` request as
well as its own fields, so an approval UI written for that middleware (an inbox app,
LangGraph Studio) reads them unchanged::

    {"type": "approval", "call_id": ..., "tool": ..., "args": ..., "rule": ..., "reason": ...,
     "action_requests": [{"name": tool, "args": args, "description": ...,
                          "rule": ..., "reason": ..., "call_id": ...}],
     "review_configs": [{"action_name": tool, "allowed_decisions": [...]}],
     "tool_call_id": ..., "name": ..., "description": ...}

(an ``"approvals"`` interrupt lists several calls of one step: one action request each, in
order). A resume is read in either format: LangChain's ``{"decisions": [...]}`` (matched to
the action requests by position; its ``edit`` names the tool and replaces the arguments),
a single decision (its per-call mode), or the guard's own (``Approval``, bool, ``{"type":
..., "args": ...}``, or answers by call id for a step). A resume the guard cannot read is
raised to the caller of ``invoke`` / ``resume`` (:class:`~guardrails_plugin.ApprovalAnswerError`)
with what was wrong, and nothing is decided: the approval stays pending and can be answered
again. It is never read as a deny the operator does not see.

Edits: an ``Approval.edit`` merges into the arguments the model sent, field by field as the
tool's schema names them (an alias replaces the field it is an alias of), and the result
is parsed by the tool's own schema (:func:`~._toolargs.received`) before the policy checks
it again: the policy sees what the tool will receive, not the raw edit.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from langchain_core.tools import BaseTool
from langgraph.types import interrupt
from pydantic import BaseModel, PlainValidator, WithJsonSchema

from .._approvals import Approval, EditedArgs
from .._errors import ApprovalAnswerError
from .._events import ToolCall
from ._toolargs import _alias_keys, received

HITL_KEYS = ("action_requests", "review_configs")
"""The keys of LangChain's ``HITLRequest``."""


def with_hitl(request: dict[str, Any]) -> dict[str, Any]:
    """One call's approval payload, with LangChain's request fields added (in place)."""
    action = _action(request)
    request["action_requests"] = [action]
    request["review_configs"] = [_review(request)]
    # LangChain's per-call request (``ToolApprovalRequest``) names the same things so:
    request["tool_call_id"] = request.get("call_id")
    request["name"] = request.get("tool")
    request["description"] = action["description"]
    return request


def bundle_with_hitl(payload: dict[str, Any]) -> dict[str, Any]:
    """A step's ``"approvals"`` payload with LangChain's request fields: one action request
    and one review config per listed call, in order (in place)."""
    requests = payload.get("requests", [])
    payload["action_requests"] = [_action(r) for r in requests]
    payload["review_configs"] = [_review(r) for r in requests]
    return payload


def _action(request: Mapping[str, Any]) -> dict[str, Any]:
    rule, reason = request.get("rule"), request.get("reason")
    return {
        "name": request.get("tool"),
        "args": request.get("args"),
        "description": f"The guard asks before this call (rule {rule!r}): {reason}",
        "rule": rule,
        "reason": reason,
        "call_id": request.get("call_id"),
    }


def _review(request: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "action_name": request.get("tool"),
        "allowed_decisions": list(request.get("allowed_decisions", ())),
    }


_VALIDATES = "response_schema" in inspect.signature(interrupt).parameters

DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"enum": ["approve", "edit", "reject", "respond"]},
        "edited_action": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "args": {"type": "object"}},
            "required": ["name", "args"],
        },
        "message": {"type": "string"},
    },
    "required": ["type"],
}
RESPONSE_SCHEMA: dict[str, Any] = {
    "description": "LangChain's HITLResponse: one decision per action request, in order "
    "(or the guard's own answer: an approval dict, a bool, answers by call id)",
    "type": "object",
    "properties": {"decisions": {"type": "array", "items": DECISION_SCHEMA}},
}
"""The resume the guard's approval interrupts publish as their ``response_schema``."""


def ask(payload: Mapping[str, Any], read: Callable[[Any], Any] | None) -> Any:
    """``interrupt(payload)``, the resume value read by ``read`` *before* LangGraph saves it:
    an unreadable one raises (``ApprovalAnswerError``) and is not kept, so the same
    interrupt can be answered again (LangGraph's ``response_schema`` validation; on a
    LangGraph without it, the value is read after it was saved)."""
    if read is None:
        return interrupt(payload)
    if not _VALIDATES:  # pragma: no cover - LangGraph before response_schema
        return read(interrupt(payload))
    adapter = Annotated[Any, PlainValidator(_marked(read)), WithJsonSchema(RESPONSE_SCHEMA)]
    return interrupt(payload, response_schema=adapter)


def _marked(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def checked(value: Any) -> Any:
        try:
            return read(value)
        except ApprovalAnswerError as exc:
            # what LangGraph marks on a resume its schema rejects: ToolNode then re-raises
            # it whatever its ``handle_tool_errors`` (the model cannot fix a resume)
            setattr(exc, "_langgraph_invalid_resume", True)  # noqa: B010
            raise

    return checked


def read_answer(value: Any, call: ToolCall) -> Approval:
    """The answer to one call's approval interrupt, in either format; raises
    ``ApprovalAnswerError`` (nothing decided) when it cannot be read."""
    try:
        approval = Approval.parse(value)
    except (TypeError, ValueError) as exc:
        raise _unreadable(call, value, str(exc)) from None
    if approval.tool is not None and approval.tool != call.tool:
        raise _unreadable(
            call, value, f"the edit names tool {approval.tool!r}; an edit cannot switch tools"
        )
    return approval


def read_answers(value: Any, listed: Sequence[ToolCall]) -> dict[str, Approval]:
    """The answers in the resume of an ``"approvals"`` interrupt listing ``listed``: by
    position (LangChain's ``{"decisions": [...]}``), by call id (``{call_id: answer}``; calls
    left out stay pending), or one answer for all. Raises ``ApprovalAnswerError`` when any
    of it cannot be read (then none is applied)."""
    if isinstance(value, Mapping) and _is_decisions(value):
        decisions = value["decisions"]
        if not isinstance(decisions, list | tuple) or len(decisions) != len(listed):
            found = len(decisions) if isinstance(decisions, list | tuple) else repr(decisions)
            raise ApprovalAnswerError(
                f"cannot read the answer to the approvals of {len(listed)} calls "
                f"({_names(listed)}): {found} decisions where one per call, in order, was "
                "expected; nothing was decided, the approvals are still pending"
            )
        return {str(c.call_id): read_answer(d, c) for c, d in zip(listed, decisions, strict=True)}
    if isinstance(value, Mapping) and not _is_one(value):
        known = {str(c.call_id) for c in listed}
        unknown = [k for k in value if k not in known]
        if unknown:
            raise ApprovalAnswerError(
                f"cannot read the answer to the approvals of {_names(listed)}: no pending call "
                f"{unknown[0]!r} (pending: {sorted(known)}); nothing was decided"
            )
        return {
            str(c.call_id): read_answer(value[c.call_id], c) for c in listed if c.call_id in value
        }
    return {str(c.call_id): read_answer(value, c) for c in listed}


def _is_decisions(value: Mapping[str, Any]) -> bool:
    return "decisions" in value and not _is_one(value)


def _is_one(value: Mapping[str, Any]) -> bool:
    return "type" in value or "answer" in value


def _names(calls: Sequence[ToolCall]) -> str:
    return ", ".join(f"{c.tool} ({c.call_id})" for c in calls)


def _unreadable(call: ToolCall, value: Any, why: str) -> ApprovalAnswerError:
    shown = repr(value)
    shown = shown if len(shown) <= 200 else shown[:199] + "…"
    return ApprovalAnswerError(
        f"cannot read the answer to the approval of {call.tool!r} (call {call.call_id}): "
        f"{why}; the answer was {shown}. Nothing was decided: the approval is still pending. "
        'Resume with {"decisions": [{"type": "approve"|"edit"|"reject"|"respond", ...}]} or '
        "an Approval"
    )


class ToolEdits:
    """Applies an edit to a call of ``tool`` (an :data:`~guardrails_plugin._approvals.
    EditReader`): merges it by field into what the model ``sent`` (or replaces it), then
    parses the result with the tool's schema, as the tool will."""

    __slots__ = ("sent", "tool")

    def __init__(self, tool: BaseTool | None, sent: Any) -> None:
        self.tool = tool
        self.sent = sent

    def __call__(self, approval: Approval, current: Mapping[str, Any]) -> EditedArgs:
        edit = dict(approval.args or {})
        if approval.replace:
            merged = edit
        else:
            base = dict(self.sent) if isinstance(self.sent, Mapping) else dict(current)
            touched = {_field(self.tool, k) for k in edit}
            merged = {k: v for k, v in base.items() if _field(self.tool, k) not in touched}
            merged.update(edit)
        if self.tool is None:
            return EditedArgs(merged, merged)
        args, problem = received(self.tool, merged)
        return EditedArgs(merged, args, problem)


def _field(tool: BaseTool | None, key: str) -> str:
    """The schema field ``key`` sets (itself, or the field it is an alias of)."""
    schema = getattr(tool, "args_schema", None)
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        return key
    for name, info in schema.model_fields.items():
        if key == name or key == info.alias or key in _alias_keys(info.validation_alias):
            return name
    return key


__all__ = [
    "HITL_KEYS",
    "ToolEdits",
    "bundle_with_hitl",
    "read_answer",
    "ask",
    "read_answers",
    "with_hitl",
]
