"""Offline test helpers: a scripted chat model that drives real LangChain agents.

Tests, demos and your own CI can run a real ``create_agent`` agent without an LLM::

    from langchain.agents import create_agent
    from guardrails_plugin.testing import ScriptedChatModel, tool_call

    model = ScriptedChatModel(
        [
            tool_call("read_file", path="/data/report.txt"),
            "All done.",
        ]
    )
    agent = create_agent(model, tools=[read_file], middleware=[GuardMiddleware(guard)])

Each scripted turn is an ``AIMessage``, a string (a final answer), or a list of
``tool_call(...)`` results (parallel tool calls in one turn). The model records the tool names
it was bound with (``bound_tools``), so a test can assert which tools were hidden.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models import BaseChatModel, LanguageModelInput
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.runnables import Runnable
    from langchain_core.tools import BaseTool
    from langchain_core.utils.function_calling import convert_to_openai_tool
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "guardrails_plugin.testing needs LangChain: pip install 'guardrails-plugin[langchain]'"
    ) from exc
from pydantic import ConfigDict, Field

__all__ = ["ScriptedChatModel", "tool_call"]

Turn = AIMessage | str | dict[str, Any] | list[dict[str, Any]]


def tool_call(name: str, /, *, id: str | None = None, **args: Any) -> dict[str, Any]:
    """One tool call as a model would emit it."""
    return {
        "name": name,
        "args": args,
        "id": id or f"call_{uuid.uuid4().hex[:8]}",
        "type": "tool_call",
    }


class ScriptedChatModel(BaseChatModel):
    """A chat model that answers with a fixed script, turn after turn (sync and async).

    When the script runs out it answers ``"(script finished)"``; ``calls`` counts turns.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    script: list[Any] = Field(default_factory=list)
    bound_tools: list[list[str]] = Field(default_factory=list)
    seen: list[list[BaseMessage]] = Field(default_factory=list)
    calls: int = 0

    def __init__(self, script: Sequence[Turn] = (), **kwargs: Any) -> None:
        kwargs["script"] = list(script)
        super().__init__(**kwargs)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _next(self) -> AIMessage:
        i = self.calls
        self.calls += 1
        if i >= len(self.script):
            return AIMessage(content="(script finished)")
        turn = self.script[i]
        if isinstance(turn, AIMessage):
            # a copy: LangChain writes an id on the message it returns, and a message object
            # used twice in a script would otherwise come back with the same id (and
            # replace the earlier one in the graph's state). Tool-call ids are kept: give
            # each turn its own tool_call(...).
            return turn.model_copy()
        if isinstance(turn, str):
            return AIMessage(content=turn)
        calls = [turn] if isinstance(turn, dict) else list(turn)
        return AIMessage(content="", tool_calls=[dict(c) for c in calls])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.seen.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=self._next())])

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        names = []
        for t in tools:
            if isinstance(t, BaseTool):
                names.append(t.name)
            elif isinstance(t, dict) and "name" in t:
                names.append(str(t["name"]))
            else:
                names.append(str(convert_to_openai_tool(t)["function"]["name"]))
        self.bound_tools.append(names)
        return self
