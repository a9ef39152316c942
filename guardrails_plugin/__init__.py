"""guardrails-plugin: make existing LangChain and LangGraph agents controllable.

Least-privilege, argument-level tool scopes; budgets and rates; run-time grants with
attenuated delegation; data-flow rules; human approval. Framework adapters live in
``guardrails_plugin.langchain`` and ``guardrails_plugin.langgraph``; the core imports no
framework (docs/architecture.md maps the layers).

    from guardrails_plugin import Guard, Policy, allow, ask, deny
    from guardrails_plugin.scopes import Paths

    guard = Guard(Policy([allow("read_file", args={"path": Paths(["/data"])})]))
"""

from ._approvals import Answer, Approval, ApprovalRequest
from ._decision import Charge, Decision, Effect
from ._errors import (
    ApprovalAnswerError,
    ApprovalRequired,
    ApproverClosed,
    BudgetExceeded,
    DelegationError,
    GuardDecisionError,
    GuardrailsError,
    PolicyError,
    PolicyFileError,
    RollbackError,
    RunKilled,
    RunPaused,
    ScopeError,
    ScopeViolation,
    StoreError,
    ToolCallDenied,
)
from ._events import AgentMessage, Event, ModelCall, ModelUsage, ToolCall, ToolResult
from ._grants import Grant
from .approvers import ConsoleApprover, QueueApprover, QueuedApproval
from .controls import Controls, Flag
from .guard import Guard
from .listeners import EventKind, Subscription, event_kind, subscribe
from .policy import Budget, DataFlow, Policy, Rule, allow, ask, deny, rate
from .store import MemoryStore, SQLiteStore, Store, open_store

__version__ = "0.1.0"

__all__ = [
    "AgentMessage",
    "Answer",
    "Approval",
    "ApprovalAnswerError",
    "ApprovalRequest",
    "ApprovalRequired",
    "ApproverClosed",
    "Budget",
    "BudgetExceeded",
    "Charge",
    "ConsoleApprover",
    "Controls",
    "DataFlow",
    "Decision",
    "DelegationError",
    "Effect",
    "Event",
    "EventKind",
    "Flag",
    "Grant",
    "Guard",
    "GuardDecisionError",
    "GuardrailsError",
    "MemoryStore",
    "ModelCall",
    "ModelUsage",
    "Policy",
    "QueueApprover",
    "QueuedApproval",
    "PolicyError",
    "PolicyFileError",
    "RollbackError",
    "Rule",
    "RunKilled",
    "RunPaused",
    "SQLiteStore",
    "ScopeError",
    "ScopeViolation",
    "Store",
    "StoreError",
    "Subscription",
    "ToolCall",
    "ToolCallDenied",
    "ToolResult",
    "__version__",
    "allow",
    "ask",
    "deny",
    "event_kind",
    "open_store",
    "rate",
    "subscribe",
]
