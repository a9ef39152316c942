"""What the OpenAI tests share: the tools, the policy, a guard with an audit log, the loop a
plain ``openai`` app writes (Chat Completions and Responses, sync and async), and how audit
records are compared across adapters."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai

from guardrails_plugin import Approval, Guard, Policy, allow, ask, deny
from guardrails_plugin.audit import AuditLog
from guardrails_plugin.openai import GuardedTools
from guardrails_plugin.policy import Budget
from guardrails_plugin.scopes import Paths

RAN: list[tuple[str, dict[str, Any]]] = []
"""Every tool body that ran, with the arguments it received (cleared by ``guard_for``)."""


def read_file(path: str) -> str:
    """Read a file under /data."""
    RAN.append(("read_file", {"path": path}))
    return f"contents of {path}"


def send_email(to: str, body: str = "") -> str:
    """Send an email."""
    RAN.append(("send_email", {"to": to, "body": body}))
    return f"sent to {to}"


def count(n: int, label: str = "items") -> str:
    """Count things."""
    RAN.append(("count", {"n": n, "label": label}))
    return f"{n} {label}"


TOOLS = [read_file, send_email, count]
DATA = Paths(["/data"], resolve_symlinks=False)
PRIVATE = Paths(["/data/private"], resolve_symlinks=False)


def policy(*budgets: Budget) -> Policy:
    return Policy(
        [
            allow("read_file", args={"path": DATA}),
            ask("read_file", args={"path": PRIVATE}, id="private files"),
            ask("send_email", id="email needs a person"),
            allow("count"),
            deny("count", agents="intern", id="no counting for interns"),
        ],
        budgets=budgets,
    )


def guard_for(
    tmp: Path, *budgets: Budget, approver: Callable[..., Any] | None = None
) -> tuple[Guard, AuditLog]:
    RAN.clear()
    log = AuditLog(tmp / f"audit-{os.urandom(4).hex()}.db")
    return Guard(policy(*budgets), approver=approver, audit=log), log


def answers(*replies: Any) -> Callable[[Any], Any]:
    """An approver answering from ``replies`` in turn (``Approval`` objects)."""
    queue = list(replies)
    return lambda request: queue.pop(0)


APPROVE = Approval.approve(approver="ana")


def comparable(log: AuditLog) -> list[dict[str, Any]]:
    """The audit records, without what differs between two runs of one script by design:
    sequence, time, hash chain, run id, checkpoint and the graph step."""
    out = []
    for record in log:
        doc = record.to_doc()
        for key in ("seq", "at", "prev", "hash", "run_id", "checkpoint_id"):
            doc.pop(key)
        doc["detail"].pop("step", None)
        out.append(doc)
    return out


def client(server: Any, *, aio: bool = False) -> Any:
    cls = openai.AsyncOpenAI if aio else openai.OpenAI
    return cls(base_url=server.base_url, api_key="test", max_retries=0)


def chat_loop(
    tools: GuardedTools, llm: openai.OpenAI, prompt: str, *, stream: bool = False
) -> list[Any]:
    """The plain Chat Completions loop an app writes; returns every ``ToolOutputs``."""
    messages: list[Any] = [{"role": "user", "content": prompt}]
    seen = []
    while True:
        tools.before_model()
        if stream:
            with llm.chat.completions.stream(
                model="gpt-test",
                messages=messages,
                tools=tools.tools(),
                stream_options={"include_usage": True},
            ) as events:
                answer: Any = events.get_final_completion()
        else:
            answer = llm.chat.completions.create(
                model="gpt-test", messages=messages, tools=tools.tools()
            )
        messages.append(answer.choices[0].message.model_dump(exclude_none=True))
        outputs = tools.run(answer)
        if not outputs:
            return seen
        seen.append(outputs)
        messages.extend(outputs)


async def achat_loop(tools: GuardedTools, llm: openai.AsyncOpenAI, prompt: str) -> list[Any]:
    messages: list[Any] = [{"role": "user", "content": prompt}]
    seen = []
    while True:
        await tools.abefore_model()
        answer = await llm.chat.completions.create(
            model="gpt-test", messages=messages, tools=await tools.atools()
        )
        messages.append(answer.choices[0].message.model_dump(exclude_none=True))
        outputs = await tools.arun(answer)
        if not outputs:
            return seen
        seen.append(outputs)
        messages.extend(outputs)


def responses_loop(
    tools: GuardedTools, llm: openai.OpenAI, prompt: str, *, stream: bool = False
) -> list[Any]:
    """The plain Responses API loop (input items carried along by hand)."""
    items: list[Any] = [{"role": "user", "content": prompt}]
    seen = []
    while True:
        tools.before_model()
        if stream:
            with llm.responses.stream(
                model="gpt-test", input=items, tools=tools.tools("responses")
            ) as events:
                answer: Any = events.get_final_response()
        else:
            answer = llm.responses.create(
                model="gpt-test", input=items, tools=tools.tools("responses")
            )
        items.extend(item.model_dump(exclude_none=True) for item in answer.output)
        outputs = tools.run(answer)
        if not outputs:
            return seen
        seen.append(outputs)
        items.extend(outputs)


async def aresponses_loop(tools: GuardedTools, llm: openai.AsyncOpenAI, prompt: str) -> list[Any]:
    items: list[Any] = [{"role": "user", "content": prompt}]
    seen = []
    while True:
        await tools.abefore_model()
        async with llm.responses.stream(
            model="gpt-test", input=items, tools=await tools.atools("responses")
        ) as events:
            answer = await events.get_final_response()
        items.extend(item.model_dump(exclude_none=True) for item in answer.output)
        outputs = await tools.arun(answer)
        if not outputs:
            return seen
        seen.append(outputs)
        items.extend(outputs)
