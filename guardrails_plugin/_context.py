"""Context the adapters know and the engine records: where in a graph a decision happens."""

from __future__ import annotations

import contextvars

CHECKPOINT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "guardrails_checkpoint", default=None
)
"""The root checkpoint the current LangGraph step started from (set by the LangGraph
adapters as a step begins; each task runs in its own context). The audit log records it,
so a decision can be found again in the thread's history and rolled back to."""
