"""The scripted OpenAI server (tests/openai_server.py) against the real ``openai`` client: every
shape the guard's tests rely on (tool calls, parallel calls, streams, usage, Responses API) is
parsed by the SDK itself, sync and async, so the server speaks the wire format the SDK expects."""

from __future__ import annotations

import json

import openai
import pytest
from openai_server import Call, Turn, Usage

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]
TWO_CALLS = Turn(
    text=None,
    tool_calls=[Call("read_file", {"path": "/tmp/a"}), Call("read_file", '{"path": 1', id="x")],
    usage=Usage(prompt=31, completion=7),
    model="gpt-test",
)


def _client(server, *, aio=False):
    cls = openai.AsyncOpenAI if aio else openai.OpenAI
    return cls(base_url=server.base_url, api_key="test", max_retries=0)


def _check_chat(completion) -> None:
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in message.tool_calls] == ["read_file", "read_file"]
    assert json.loads(message.tool_calls[0].function.arguments) == {"path": "/tmp/a"}
    assert message.tool_calls[1].function.arguments == '{"path": 1'
    assert message.tool_calls[1].id == "x"
    assert message.tool_calls[0].id != "x"
    assert completion.model == "gpt-test"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (31, 7)


def test_chat_completion_with_parallel_tool_calls(openai_server) -> None:
    openai_server.push(TWO_CALLS)
    client = _client(openai_server)
    _check_chat(client.chat.completions.create(model="m", messages=[], tools=TOOLS))
    assert openai_server.requests[0].body["tools"] == TOOLS
    assert openai_server.pending() == 0


async def test_chat_completion_stream_accumulated_by_the_sdk_async(openai_server) -> None:
    openai_server.push(TWO_CALLS, Turn(text="hello there, a longer text", usage=None))
    client = _client(openai_server, aio=True)
    await _check_async_chat(client)
    await client.close()


async def _check_async_chat(client) -> None:
    async with client.chat.completions.stream(
        model="m", messages=[], tools=TOOLS, stream_options={"include_usage": True}
    ) as stream:
        async for _event in stream:
            pass
        _check_chat(await stream.get_final_completion())
    chunks = [
        c async for c in await client.chat.completions.create(model="m", messages=[], stream=True)
    ]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello there, a longer text"
    assert all(c.usage is None for c in chunks)


def test_chat_stream_usage_only_when_asked(openai_server) -> None:
    openai_server.push(TWO_CALLS, TWO_CALLS)
    client = _client(openai_server)
    plain = list(client.chat.completions.create(model="m", messages=[], stream=True))
    assert all(c.usage is None for c in plain)
    asked = list(
        client.chat.completions.create(
            model="m", messages=[], stream=True, stream_options={"include_usage": True}
        )
    )
    assert asked[-1].choices == []
    assert asked[-1].usage.total_tokens == 38


def test_tool_outputs_recorded_for_both_apis(openai_server) -> None:
    openai_server.push(Turn(text="a"), Turn(text="b"))
    client = _client(openai_server)
    client.chat.completions.create(
        model="m",
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "c1", "content": "out"},
        ],
    )
    client.responses.create(
        model="m", input=[{"type": "function_call_output", "call_id": "c2", "output": "o2"}]
    )
    assert [r.tool_outputs() for r in openai_server.requests] == [{"c1": "out"}, {"c2": "o2"}]


def _check_response(response) -> None:
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.name, c.arguments) for c in calls] == [
        ("read_file", '{"path": "/tmp/a"}'),
        ("read_file", '{"path": 1'),
    ]
    assert calls[1].call_id == "x"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (31, 7)


def test_responses_api_plain_and_streamed(openai_server) -> None:
    openai_server.push(TWO_CALLS, TWO_CALLS, Turn(text="some words to stream"))
    client = _client(openai_server)
    _check_response(client.responses.create(model="m", input="hi"))
    with client.responses.stream(model="m", input="hi") as stream:
        kinds = [event.type for event in stream]
        _check_response(stream.get_final_response())
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    with client.responses.stream(model="m", input="hi") as stream:
        assert stream.get_final_response().output_text == "some words to stream"


async def test_responses_api_async_stream(openai_server) -> None:
    openai_server.push(TWO_CALLS)
    client = _client(openai_server, aio=True)
    async with client, client.responses.stream(model="m", input="hi") as stream:
        _check_response(await stream.get_final_response())


def test_errors_and_an_empty_queue(openai_server) -> None:
    openai_server.push(Turn(error=(429, "slow down")))
    client = _client(openai_server)
    with pytest.raises(openai.RateLimitError, match="slow down"):
        client.chat.completions.create(model="m", messages=[])
    with pytest.raises(openai.BadRequestError, match="no scripted turn left"):
        client.responses.create(model="m", input="hi")
