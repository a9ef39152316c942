"""LangGraph adapters: guarded tool node, guarded agent nodes, approvals through
``interrupt()``, the kill switch, and recovery (rollback with side-effect undo).

    from guardrails_plugin.langgraph import GuardedToolNode, guard_node

    builder.add_node("tools", GuardedToolNode(tools, guard))
    builder.add_node("researcher", guard_node(researcher, guard))
    graph.invoke(inputs, {"callbacks": [CascadeWatcher(guard)]})  # a graph you cannot change
"""

from __future__ import annotations

try:
    import langgraph  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "guardrails_plugin.langgraph needs LangGraph: pip install 'guardrails-plugin[langgraph]'"
    ) from exc

from ._approvals import PendingApproval, aanswer_with, answer, answer_with, approval_requests
from ._nodes import HANDOFF_TOOL, GuardedNode, guard_node
from ._recovery import Recovery, RollbackReport
from ._toolnode import GuardedToolNode
from ._watch import CascadeWatcher

__all__ = [
    "HANDOFF_TOOL",
    "CascadeWatcher",
    "PendingApproval",
    "Recovery",
    "RollbackReport",
    "GuardedNode",
    "GuardedToolNode",
    "aanswer_with",
    "answer",
    "answer_with",
    "approval_requests",
    "guard_node",
]
