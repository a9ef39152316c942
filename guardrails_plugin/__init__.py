"""guardrails-plugin: make existing LangChain and LangGraph agents controllable.

Least-privilege, argument-level tool scopes; budgets and rates; run-time grants with
attenuated delegation; data-flow rules; human approval. Framework adapters live in
``guardrails_plugin.langchain`` (and, later, ``.langgraph``); the core imports no framework.

    from guardrails_plugin import Guard, Policy, allow, ask, deny
    from guardrails_plugin.scopes import Paths

    guard = Guard(Policy([allow("read_file", args={"path": Paths(["/data"])})]))
"""

from ._approvals import Answer, Approval, ApprovalRequest
from ._decision import Charge, Decision, Effect
from ._errors import (
    ApprovalRequired,
    BudgetExceeded,
    DelegationError,
    GuardDecisionError,
    GuardrailsError,
    PolicyError,
    PolicyFileError,
    RunKilled,
    ScopeError,
    ScopeViolation,
    StoreError,
    ToolCallDenied,
)
from ._events import AgentMessage, Event, ModelCall, ToolCall, ToolResult
from ._grants import Grant
from .guard import Guard
from .policy import Budget, DataFlow, Policy, Rule, allow, ask, deny, rate
from .store import MemoryStore, SQLiteStore, Store, open_store

__version__ = "0.1.0"

__all__ = [
    "AgentMessage",
    "Answer",
    "Approval",
    "ApprovalRequest",
    "ApprovalRequired",
    "Budget",
    "BudgetExceeded",
    "Charge",
    "DataFlow",
    "Decision",
    "DelegationError",
    "Effect",
    "Event",
    "Grant",
    "Guard",
    "GuardDecisionError",
    "GuardrailsError",
    "MemoryStore",
    "ModelCall",
    "Policy",
    "PolicyError",
    "PolicyFileError",
    "Rule",
    "RunKilled",
    "SQLiteStore",
    "ScopeError",
    "ScopeViolation",
    "Store",
    "StoreError",
    "ToolCall",
    "ToolCallDenied",
    "ToolResult",
    "__version__",
    "allow",
    "ask",
    "deny",
    "open_store",
    "rate",
]
