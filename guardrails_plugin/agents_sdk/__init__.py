"""The guard for apps built on the OpenAI Agents SDK (``openai-agents``).

One call guards an agent and every agent it can hand off to::

    from guardrails_plugin.agents_sdk import guard_agent

    triage = guard_agent(triage, guard, thread="support-42")
    result = Runner.run_sync(triage, "refund order 7")

Every function tool is decided by the guard before it runs (the guard as the tool's input
guardrail, ``ask`` as the SDK's own approval interruptions), every hand-off is checked as a
``handoff`` call and reported to the cascade monitor, and every model turn is held at the
kill switch. Answer an interruption the guard asked for with ``state.approve(item)`` /
``state.reject(item)``, or with :func:`answer` to edit the call or respond in its place.
See :mod:`guardrails_plugin.agents_sdk._adapter` for how.
"""

from __future__ import annotations

from typing import Any

from agents import Agent
from agents.items import ToolApprovalItem
from agents.run_state import RunState

from ..guard import Guard
from ._adapter import AgentsGuard, OnDeny, Thread

__all__ = ["AgentsGuard", "answer", "guard_agent", "guard_of"]


def guard_agent(
    agent: Agent[Any],
    guard: Guard,
    *,
    thread: Thread = None,
    on_deny: OnDeny = "reject",
    unguarded: tuple[str, ...] = (),
) -> Agent[Any]:
    """A guarded copy of ``agent`` and of the agents it hands off to, recursively (see
    :class:`AgentsGuard` for the options)."""
    return AgentsGuard(guard, thread=thread, on_deny=on_deny, unguarded=unguarded).wrap(agent)


def guard_of(agent: Agent[Any]) -> AgentsGuard:
    """The :class:`AgentsGuard` that made ``agent`` (a guarded agent)."""
    hooks = getattr(agent, "hooks", None)
    owner = getattr(hooks, "_owner", None)
    if not isinstance(owner, AgentsGuard):
        raise ValueError(f"agent {getattr(agent, 'name', agent)!r} is not guarded")
    return owner


def answer(state: RunState[Any, Any], item: ToolApprovalItem, approval: Any) -> None:
    """Answer an interruption the guard asked for: ``True`` / ``Approval.approve()``,
    ``Approval.edit({...})`` (re-checked, then run with the new arguments), ``False`` /
    ``Approval.reject("why")``, or ``Approval.respond("...")``. Resume the run afterwards."""
    guard_of(item.agent).answer(state, item, approval)
