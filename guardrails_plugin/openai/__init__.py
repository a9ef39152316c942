"""The ``openai`` SDK's own tool loop, guarded: Chat Completions and the Responses API, sync
and async clients.

An app that calls ``client.chat.completions.create`` (or ``client.responses.create``) and
runs the tool calls itself hands each answer to :class:`GuardedTools`. It decides every tool
call in the answer through the guard, one by one in order (parallel calls too), runs the
allowed ones from its registry, and returns the outputs to send back, in that API's shape;
a denied call comes back as an error output the model can read. ``ask`` rules go to the
guard's approver (an edit is re-checked, then parsed again by the tool's schema). The
answer's real ``usage`` is counted against model budgets (``Budget.tokens(of="model")``,
``Budget.cost(prices=...)``) before its calls are decided; tiktoken counts only where an
answer reports none. ``before_model()`` is the kill switch (and model budgets) before each
model call: one line in the loop, rather than a wrapped client, so that streaming, the
Responses API and the SDK's helpers stay exactly the SDK's::

    from guardrails_plugin.openai import GuardedTools

    tools = GuardedTools(guard, [read_file], agent="support", thread_id="t-1")
    while True:
        tools.before_model()
        answer = client.chat.completions.create(model=..., messages=messages, tools=tools.tools())
        messages.append(answer.choices[0].message)
        outputs = tools.run(answer)            # await tools.arun(answer) with AsyncOpenAI
        if not outputs:
            break
        messages.extend(outputs)

Streams: pass the finished stream's final object (``stream.get_final_completion()``,
``stream.get_final_response()``) or the list of Chat Completions chunks.

Arguments are decided as the tool will receive them: parsed once (JSON, then the tool's own
schema), and the parsed values are what the tool is called with. Malformed JSON, a string or
list instead of an object, duplicate keys, unknown keys, values the schema rejects, unknown
tools and a call id shared by two calls of one answer are denied as ``malformed-call``, with
the reason.

Exactly once across attempts at one answer: an attempt that stops part way (the kill switch,
``on_deny="raise"``, a store failure, a cancelled task) and is retried with the same answer
(or the answer read again) runs no call twice. A call whose tool finished gets its output
again; a call whose tool started and did not finish is denied (rule ``exactly-once``: it may
have run); the others are decided afresh. An answer is known by its own id with each call's
id, name and argument text, so a model that numbers call ids per answer is not mistaken for a
retry. This is kept in memory, per ``GuardedTools`` (not across processes).

Audit records have the LangChain adapter's shape for the same call (the graph ``step`` and
the run id aside: a plain loop has no graph step, and its run is the loop's ``run_id``).
"""

from __future__ import annotations

try:
    import openai as _openai  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "guardrails_plugin.openai needs the openai package: pip install 'guardrails-plugin[openai]'"
    ) from exc

from ._loop import GuardedTools, ToolOutcome, ToolOutputs, blocked
from ._tools import FunctionTool, function_tool, parse_arguments

__all__ = [
    "FunctionTool",
    "GuardedTools",
    "ToolOutcome",
    "ToolOutputs",
    "blocked",
    "function_tool",
    "parse_arguments",
]
