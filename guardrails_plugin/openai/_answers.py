"""Reading a model's answer from the ``openai`` SDK's own types: the tool calls in it, the
model, and the usage it reports, for Chat Completions and the Responses API alike."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

__all__ = ["Answer", "RawCall", "read_answer"]

Api = Literal["chat", "responses"]


@dataclass(frozen=True, slots=True)
class RawCall:
    """One tool call as the model wrote it: nothing parsed yet."""

    call_id: Any
    name: Any
    arguments: Any
    kind: str = "function"


@dataclass(frozen=True, slots=True)
class Answer:
    api: Api
    calls: tuple[RawCall, ...]
    model: str
    usage: tuple[int, int] | None
    """(input tokens, output tokens) as reported; ``None`` when the answer has none."""
    text: str
    """What the model wrote (text and call arguments), for counting when usage is missing."""
    id: str = ""
    """The answer's own id (``chatcmpl-…``, ``resp_…``): with each call's id, name and
    argument text, what tells a retry of this answer from a new one."""


def read_answer(response: Any) -> Answer:
    """An ``Answer`` from a ``ChatCompletion`` (or ``ParsedChatCompletion``), the chunks of a
    finished Chat Completions stream, or a Responses API ``Response``."""
    if isinstance(response, Response):
        return _from_response(response)
    if isinstance(response, Sequence) and not isinstance(response, str | bytes):
        if not response or not all(isinstance(c, ChatCompletionChunk) for c in response):
            raise TypeError("expected the ChatCompletionChunk objects of one finished stream")
        from openai.lib.streaming.chat import ChatCompletionStreamState

        state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
        for chunk in response:
            state.handle_chunk(chunk)
        response = state.get_final_completion()
    if isinstance(response, ChatCompletion):
        return _from_completion(response)
    raise TypeError(
        "expected a ChatCompletion, the chunks of a finished stream or a Response, found "
        f"{type(response).__name__}"
    )


def _from_completion(completion: ChatCompletion) -> Answer:
    if len(completion.choices) > 1:
        raise ValueError(
            f"the completion has {len(completion.choices)} choices: pass the one you continue "
            "with (a completion with n=1)"
        )
    calls: list[RawCall] = []
    text = ""
    if completion.choices:
        message = completion.choices[0].message
        text = message.content or ""
        for tc in message.tool_calls or ():
            function = getattr(tc, "function", None)
            if getattr(tc, "type", None) == "function" and function is not None:
                calls.append(RawCall(tc.id, function.name, function.arguments))
                text += function.arguments or ""
            else:
                custom = getattr(tc, "custom", None)
                name = getattr(custom, "name", None)
                calls.append(RawCall(tc.id, name, getattr(custom, "input", None), tc.type))
    usage = completion.usage
    counted = None if usage is None else (usage.prompt_tokens, usage.completion_tokens)
    return Answer("chat", tuple(calls), completion.model, counted, text, completion.id or "")


def _from_response(response: Response) -> Answer:
    calls: list[RawCall] = []
    text = ""
    for item in response.output:
        if item.type == "function_call":
            calls.append(RawCall(item.call_id, item.name, item.arguments))
            text += item.arguments or ""
        elif item.type == "custom_tool_call":
            calls.append(RawCall(item.call_id, item.name, item.input, item.type))
        elif item.type == "message":
            for part in item.content:
                text += getattr(part, "text", "") or getattr(part, "refusal", "") or ""
    usage = response.usage
    counted = None if usage is None else (usage.input_tokens, usage.output_tokens)
    return Answer("responses", tuple(calls), str(response.model), counted, text, response.id or "")


def sent_text(sent: Any) -> str:
    """What was sent to the model, as text to count when the answer reports no usage."""
    if sent is None:
        return ""
    if isinstance(sent, str):
        return sent
    return json.dumps(sent, default=str, ensure_ascii=False)
