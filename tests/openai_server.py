"""A scripted, OpenAI-compatible HTTP server on loopback, for driving the real ``openai`` client
(and anything built on it: ``langchain-openai``, the OpenAI Agents SDK) offline.

It serves, over real HTTP (Starlette app, uvicorn in a background thread, ``127.0.0.1``, a free
port):

- ``POST /v1/chat/completions``: non-streaming and streaming (SSE, ``data: [DONE]``), text,
  ``tool_calls`` (several per turn: parallel calls), ``usage``, and for streams the final
  usage-only chunk when the request sets ``stream_options.include_usage``;
- ``POST /v1/responses``: non-streaming and streaming (``response.created`` …
  ``response.completed`` events, the sequence the SDK's ``responses.stream()`` accumulates),
  ``message`` and ``function_call`` output items, ``usage``.

Scripting a turn
----------------
Tests push :class:`Turn` objects; each request to either endpoint pops the next one (first in,
first out) and renders it in that endpoint's wire format, so one script can drive both APIs::

    server.push(
        Turn(tool_calls=[Call("read_file", {"path": "/tmp/a"}), Call("ls", '{"dir": 1')]),
        Turn(text="done", usage=Usage(prompt=50, completion=5)),
    )
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)

``Call.arguments`` is a ``dict`` (sent as its JSON) or a ``str`` (sent verbatim: malformed JSON,
a JSON string instead of an object ... whatever the model might emit). ``Call.id`` defaults to a
fresh ``call_<n>``; set it to reuse an id on purpose. ``Turn(error=(status, message))`` answers
with an OpenAI-shaped error body instead (the client raises ``openai.APIStatusError``). With no
turn left the server answers 400 ``no scripted turn left`` (never a retryable status).

Reading requests
----------------
``server.requests`` lists every request received, in order, as :class:`Request` (``path`` and the
parsed JSON ``body``). ``Request.tool_outputs()`` gives the tool results the client sent back,
whatever the API: ``{call_id: output}`` from ``role: "tool"`` messages (Chat Completions) or
``function_call_output`` input items (Responses). ``server.pending()`` is the number of pushed
turns not yet served.

Fixtures (tests/conftest.py)
----------------------------
``openai_server``: the session's server, emptied (queue and requests) before each test.
:func:`serve` starts one as a context manager for scripts (benchmarks, cookbook).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["Call", "OpenAIServer", "Request", "Turn", "Usage", "serve"]


@dataclass(frozen=True)
class Usage:
    """Token counts reported for a turn (``prompt``: input tokens, ``completion``: output)."""

    prompt: int = 10
    completion: int = 5


@dataclass(frozen=True)
class Call:
    """One function tool call in a scripted turn.

    ``arguments``: a dict (sent as JSON) or a raw string (sent verbatim). ``id``: the call id
    (``call_id`` in the Responses API); ``None`` gives a fresh one."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def raw_arguments(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True)
class Turn:
    """One scripted model answer: assistant ``text`` and/or ``tool_calls``, with ``usage``
    (``None``: no usage in the answer at all). ``model`` overrides the echoed request model.
    ``error``: answer ``(status, message)`` instead of a completion."""

    text: str | None = None
    tool_calls: tuple[Call, ...] | list[Call] = ()
    usage: Usage | None = field(default_factory=Usage)
    model: str | None = None
    error: tuple[int, str] | None = None


@dataclass(frozen=True)
class Request:
    """One request the server received: its path and parsed JSON body."""

    path: str
    body: dict[str, Any]

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def tool_outputs(self) -> dict[str, Any]:
        """Tool results sent back in this request, ``{call_id: output}``, in order."""
        outputs: dict[str, Any] = {}
        if self.path.endswith("/chat/completions"):
            for message in self.body.get("messages", []):
                if isinstance(message, dict) and message.get("role") == "tool":
                    outputs[str(message.get("tool_call_id"))] = message.get("content")
        else:
            items = self.body.get("input")
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and item.get("type") == "function_call_output":
                    outputs[str(item.get("call_id"))] = item.get("output")
        return outputs


class OpenAIServer:
    """The scripted server (see the module docstring). Start it with :func:`serve`."""

    def __init__(self) -> None:
        self._turns: deque[Turn] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.requests: list[Request] = []
        self.base_url = ""  # set once serving: "http://127.0.0.1:<port>/v1"
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/responses", self._responses, methods=["POST"]),
            ]
        )

    def __repr__(self) -> str:
        return (
            f"OpenAIServer({self.base_url!r}, pending={self.pending()}, "
            f"requests={len(self.requests)})"
        )

    def push(self, *turns: Turn) -> None:
        """Queue ``turns``, served in order, one per request."""
        with self._lock:
            self._turns.extend(turns)

    def pending(self) -> int:
        with self._lock:
            return len(self._turns)

    def reset(self) -> None:
        """Drop queued turns and recorded requests."""
        with self._lock:
            self._turns.clear()
            self.requests.clear()

    def _next(self, path: str, body: dict[str, Any]) -> Turn | None:
        with self._lock:
            self.requests.append(Request(path, body))
            return self._turns.popleft() if self._turns else None

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    async def _take(self, request: HTTPRequest) -> tuple[dict[str, Any], Turn | Response]:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return {}, _error(400, "request body is not JSON")
        if not isinstance(body, dict):
            return {}, _error(400, "request body is not a JSON object")
        turn = self._next(request.url.path, body)
        if turn is None:
            return body, _error(400, "no scripted turn left")
        if turn.error is not None:
            return body, _error(*turn.error)
        return body, turn

    # -- Chat Completions -----------------------------------------------------------------------

    async def _chat(self, request: HTTPRequest) -> Response:
        body, turn = await self._take(request)
        if isinstance(turn, Response):
            return turn
        calls = [(call, call.id or self._id("call")) for call in turn.tool_calls]
        model = turn.model or str(body.get("model", "scripted"))
        ident, created = self._id("chatcmpl"), int(time.time())
        usage = None
        if turn.usage is not None:
            usage = {
                "prompt_tokens": turn.usage.prompt,
                "completion_tokens": turn.usage.completion,
                "total_tokens": turn.usage.prompt + turn.usage.completion,
            }
        finish = "tool_calls" if calls else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": turn.text}
            if calls:
                message["tool_calls"] = [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.raw_arguments()},
                    }
                    for call, call_id in calls
                ]
            completion: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                ],
            }
            if usage is not None:
                completion["usage"] = usage
            return JSONResponse(completion)

        def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}
                ],
            }

        chunks = [chunk({"role": "assistant", "content": ""})]
        for piece in _pieces(turn.text or ""):
            chunks.append(chunk({"content": piece}))
        for index, (call, call_id) in enumerate(calls):
            head = {"index": index, "id": call_id, "type": "function"}
            head["function"] = {"name": call.name, "arguments": ""}
            chunks.append(chunk({"tool_calls": [head]}))
            for piece in _pieces(call.raw_arguments()):
                delta = {"index": index, "function": {"arguments": piece}}
                chunks.append(chunk({"tool_calls": [delta]}))
        chunks.append(chunk({}, finish))
        options = body.get("stream_options")
        if usage is not None and isinstance(options, dict) and options.get("include_usage"):
            last = chunk({})
            last["choices"], last["usage"] = [], usage
            chunks.append(last)
        return _sse([("", c) for c in chunks], done=True)

    # -- Responses ------------------------------------------------------------------------------

    async def _responses(self, request: HTTPRequest) -> Response:
        body, turn = await self._take(request)
        if isinstance(turn, Response):
            return turn
        output: list[dict[str, Any]] = []
        if turn.text is not None:
            output.append(
                {
                    "type": "message",
                    "id": self._id("msg"),
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {
                            "type": "output_text",
                            "text": turn.text,
                            "annotations": [],
                            "logprobs": [],
                        }
                    ],
                }
            )
        for call in turn.tool_calls:
            output.append(
                {
                    "type": "function_call",
                    "id": self._id("fc"),
                    "call_id": call.id or self._id("call"),
                    "name": call.name,
                    "arguments": call.raw_arguments(),
                    "status": "completed",
                }
            )
        response: dict[str, Any] = {
            "id": self._id("resp"),
            "object": "response",
            "created_at": time.time(),
            "model": turn.model or str(body.get("model", "scripted")),
            "status": "completed",
            "output": output,
            "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "metadata": {},
            "temperature": 1.0,
            "top_p": 1.0,
            "text": {"format": {"type": "text"}},
            "usage": None,
        }
        if turn.usage is not None:
            response["usage"] = {
                "input_tokens": turn.usage.prompt,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": turn.usage.completion,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": turn.usage.prompt + turn.usage.completion,
            }
        if not body.get("stream"):
            return JSONResponse(response)
        return _sse(_response_events(response), done=False)


def _response_events(response: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The Responses API's stream for a finished ``response``: lifecycle events around each
    output item's added / delta / done events, ``sequence_number`` counting from 0."""
    events: list[tuple[str, dict[str, Any]]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append((kind, {"type": kind, "sequence_number": len(events), **fields}))

    opening = {**response, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=opening)
    emit("response.in_progress", response=opening)
    for index, item in enumerate(response["output"]):
        if item["type"] == "function_call":
            emit("response.output_item.added", output_index=index, item={**item, "arguments": ""})
            for piece in _pieces(item["arguments"]):
                emit(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=piece,
                )
            emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        else:
            text = item["content"][0]["text"]
            empty = {**item["content"][0], "text": ""}
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            emit("response.content_part.added", **where, part=empty)
            for piece in _pieces(text):
                emit("response.output_text.delta", **where, delta=piece, logprobs=[])
            emit("response.output_text.done", **where, text=text, logprobs=[])
            emit("response.content_part.done", **where, part=item["content"][0])
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed", response=response)
    return events


def _pieces(text: str, size: int = 7) -> list[str]:
    """``text`` in small pieces, as a model streams it (nothing for an empty text)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def _sse(events: list[tuple[str, dict[str, Any]]], *, done: bool) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for kind, data in events:
            head = f"event: {kind}\n" if kind else ""
            yield f"{head}data: {json.dumps(data)}\n\n".encode()
            await asyncio.sleep(0)
        if done:
            yield b"data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")


def _error(status: int, message: str) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": None}},
        status_code=status,
    )


@contextlib.contextmanager
def serve() -> Iterator[OpenAIServer]:
    """Start an :class:`OpenAIServer` on ``127.0.0.1`` (a free port) in a background thread;
    stop it on exit."""
    scripted = OpenAIServer()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(scripted.app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the scripted OpenAI server did not start")
            time.sleep(0.01)
        scripted.base_url = f"http://127.0.0.1:{port}/v1"
        yield scripted
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
