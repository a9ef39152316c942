"""The guard's agent hooks (``AgentHooks``), chained before an agent's own: each model turn
is held at the kill switch (and the model budgets) before it starts; what it answered, and the
tokens it used, are recorded when it ends; an agent ending on a tool's output after the kill
switch stopped a call ends with the kill switch's error."""

from __future__ import annotations

from typing import Any, Protocol

from agents import AgentHooks
from agents.items import ModelResponse


class _Owner(Protocol):
    async def _model_turn(self, ctx: Any, agent: Any, sent: Any) -> None: ...

    async def _seen_response(self, ctx: Any, agent: Any, response: Any) -> None: ...

    async def _agent_end(self, ctx: Any, agent: Any) -> None: ...


class Hooks(AgentHooks[Any]):
    """The guard's agent hooks, chained before the agent's own."""

    def __init__(self, owner: _Owner, inner: Any) -> None:
        self._owner = owner
        self._inner = inner

    def __repr__(self) -> str:
        return f"Hooks(inner={self._inner!r})"

    async def on_llm_start(self, context: Any, agent: Any, *args: Any) -> None:
        await self._owner._model_turn(context, agent, args)
        if self._inner is not None:
            await self._inner.on_llm_start(context, agent, *args)

    async def on_llm_end(self, context: Any, agent: Any, response: ModelResponse) -> None:
        await self._owner._seen_response(context, agent, response)
        if self._inner is not None:
            await self._inner.on_llm_end(context, agent, response)

    async def on_start(self, context: Any, agent: Any) -> None:
        if self._inner is not None:
            await self._inner.on_start(context, agent)

    async def on_end(self, context: Any, agent: Any, output: Any) -> None:
        await self._owner._agent_end(context, agent)
        if self._inner is not None:
            await self._inner.on_end(context, agent, output)

    async def on_handoff(self, context: Any, agent: Any, source: Any) -> None:
        if self._inner is not None:
            await self._inner.on_handoff(context, agent, source)

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        if self._inner is not None:
            await self._inner.on_tool_start(context, agent, tool)

    async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: Any) -> None:
        if self._inner is not None:
            await self._inner.on_tool_end(context, agent, tool, result)
