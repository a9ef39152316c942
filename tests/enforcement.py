"""The model controls the tool call: a harness for generated attacks on enforcement.

Real LangChain tools with pydantic schemas (an alias with ``populate_by_name``, a validation
alias with choices, a coercing validator, defaults, a one-argument tool) record what their
bodies really receive. An argument-scoped policy (``Paths``, ``Shell``, ``Urls``, ``Emails``)
guards them through a real adapter: the callback handler on ``tool.invoke``,
``GuardMiddleware`` in a ``create_agent`` agent driven by a scripted model, or a
``GuardedToolNode``. The oracle: every call a tool body received, re-checked with the
policy, is allowed. Generated inputs: extra keys, aliases, confusable and injected-looking
keys, strings instead of objects, nested objects, unicode, reused call ids.

Used by ``tests/test_enforcement_fuzz.py`` (a modest number of examples) and
``scripts/enforcement_fuzz.py`` (100,000 calls).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, StructuredTool, tool
from langgraph.graph import START, MessagesState, StateGraph
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from guardrails_plugin import Effect, Guard, GuardrailsError, Policy, ToolCall, allow
from guardrails_plugin.langchain import GuardCallbackHandler, GuardMiddleware
from guardrails_plugin.langgraph import GuardedToolNode
from guardrails_plugin.scopes import Emails, Paths, Shell, Urls
from guardrails_plugin.testing import ScriptedChatModel

Received = list[tuple[str, dict[str, Any]]]

POLICY = Policy(
    [
        allow("read_file", args={"path": Paths(["/srv/data"])}),
        allow("shell", args={"command": Shell(["ls", "echo"])}),
        allow("fetch", args={"url": Urls(["docs.example.com"])}),
        allow("send_email", args={"to": Emails(domains=["example.com"])}),
    ]
)


class ReadArgs(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    path: str = Field(alias="file_path", description="The file to read.")
    encoding: str = "utf-8"


class FetchArgs(BaseModel):
    url: str
    timeout: int = 10
    headers: dict[str, str] = Field(default_factory=dict)


class EmailArgs(BaseModel):
    to: list[str] = Field(validation_alias=AliasChoices("to", "recipients"))
    subject: str = ""

    @field_validator("to", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [p.strip() for p in value.split(",")] if isinstance(value, str) else value


def make_tools(received: Received) -> list[BaseTool]:
    """The four tools, each appending ``(name, what its body got)`` to ``received``."""

    def read_file(path: str, encoding: str = "utf-8") -> str:
        received.append(("read_file", {"path": path, "encoding": encoding}))
        return "contents"

    def fetch(url: str, timeout: int = 10, headers: dict[str, str] | None = None) -> str:
        received.append(("fetch", {"url": url, "timeout": timeout, "headers": headers}))
        return "page"

    def send_email(to: list[str], subject: str = "") -> str:
        received.append(("send_email", {"to": to, "subject": subject}))
        return "sent"

    @tool
    def shell(command: str) -> str:
        """Run a shell command."""
        received.append(("shell", {"command": command}))
        return "ok"

    return [
        StructuredTool.from_function(read_file, description="Read a file.", args_schema=ReadArgs),
        StructuredTool.from_function(fetch, description="Fetch a URL.", args_schema=FetchArgs),
        StructuredTool.from_function(
            send_email, description="Send an email.", args_schema=EmailArgs
        ),
        shell,
    ]


def violations(received: Received, policy: Policy = POLICY) -> list[tuple[str, Any, str]]:
    """Calls a tool body received that the policy, asked again, would not allow."""
    found = []
    for name, args in received:
        d = policy.evaluate(ToolCall(name, args))
        if d.effect is not Effect.ALLOW:
            found.append((name, args, d.reason))
    return found


# -- what the model sends ---------------------------------------------------------------------

KEYS: dict[str, list[str]] = {
    "read_file": ["path", "file_path", "encoding"],
    "fetch": ["url", "timeout", "headers"],
    "send_email": ["to", "recipients", "subject"],
    "shell": ["command"],
}
TRICKY_KEYS = [
    "p\u0430th",  # Cyrillic a
    "PATH",
    "path ",
    "file_path\u200b",
    "Url",
    "to\x00",
    "state",
    "tool_call_id",
    "run_manager",
    "callbacks",
    "config",
    "kwargs",
    "args",
    "__proto__",
    "x",
]
VALUES = [
    "/srv/data/ok.txt",
    "/etc/passwd",
    "/srv/data/../../etc/shadow",
    "/srv/data/ok.txt\x00/etc/passwd",
    "ls",
    "echo hi",
    "ls; rm -rf /",
    "echo $(touch /tmp/pwned)",
    '{"command": "ls", "x": "$(touch /tmp/pwned)"\n}',
    "https://docs.example.com/a",
    "https://evil.example.org/",
    "https://docs.example.com@evil.example.org/",
    "http://docs.example.com/",
    "a@example.com",
    "x@evil.example.org",
    "a@example.com, x@evil.example.org",
    "5",
    "",
]

values: st.SearchStrategy[Any] = st.recursive(
    st.sampled_from(VALUES)
    | st.text(max_size=12)
    | st.integers(-3, 100)
    | st.booleans()
    | st.none(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from([*KEYS["read_file"], "to", "url", "x"]), inner, max_size=3
        )
    ),
    max_leaves=6,
)


TOOL_VALUES: dict[str, list[Any]] = {
    "read_file": ["/srv/data/ok.txt", "/etc/passwd", "/srv/data/../../etc/shadow", "utf-8"],
    "fetch": ["https://docs.example.com/a", "https://evil.example.org/", "5", {"X": "1"}],
    "send_email": [
        "a@example.com",
        "x@evil.example.org",
        "a@example.com, x@evil.example.org",
        ["a@example.com"],
        ["a@example.com", "x@evil.example.org"],
    ],
    "shell": ["ls", "ls; rm -rf /", '{"command": "ls", "x": "$(touch /tmp/pwned)"\n}'],
}


@st.composite
def arguments(draw: st.DrawFn, name: str) -> dict[str, Any]:
    own = st.sampled_from(KEYS[name])
    keys = draw(
        st.lists(
            st.one_of(own, own, own, st.sampled_from(TRICKY_KEYS), st.text(min_size=1, max_size=6)),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    mine = st.sampled_from(TOOL_VALUES[name])
    return {k: draw(st.one_of(mine, mine, values)) for k in keys}


@st.composite
def tool_input(draw: st.DrawFn) -> tuple[str, Any]:
    """A tool name and what the model sends it: an object, its JSON text, or a string."""
    name = draw(st.sampled_from(sorted(KEYS)))
    args = draw(arguments(name))
    form = draw(st.sampled_from(["object", "object", "json", "string"]))
    if form == "json":
        return name, json.dumps(args)
    if form == "string":
        return name, draw(st.sampled_from(VALUES) | st.text(max_size=20))
    return name, args


@st.composite
def tool_calls(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One model turn: 1-3 calls with object arguments, ids possibly reused."""
    n = draw(st.integers(1, 3))
    ids = draw(st.lists(st.sampled_from(["call_0", "call_1", "c"]), min_size=n, max_size=n))
    calls = []
    for i in range(n):
        name = draw(st.sampled_from(sorted(KEYS)))
        calls.append(
            {"name": name, "args": draw(arguments(name)), "id": ids[i], "type": "tool_call"}
        )
    return calls


# -- the adapters -------------------------------------------------------------------------------


class Target:
    """One adapter around fresh tools; ``send`` runs what the model sent through it."""

    def __init__(self, kind: str, policy: Policy = POLICY) -> None:
        self.kind = kind
        self.received: Received = []
        self.tools = {t.name: t for t in make_tools(self.received)}
        self.guard = Guard(policy)
        self.errors = 0
        if kind == "callback":
            self.handler = GuardCallbackHandler(self.guard)
        elif kind == "middleware":
            self.model = ScriptedChatModel([])
            self.agent = create_agent(
                self.model,
                tools=list(self.tools.values()),
                middleware=[GuardMiddleware(self.guard)],
            )
        elif kind == "toolnode":
            graph = StateGraph(MessagesState)
            graph.add_node("tools", GuardedToolNode(list(self.tools.values()), self.guard))
            graph.add_edge(START, "tools")
            self.graph = graph.compile()
        else:
            raise ValueError(kind)

    def invoke(self, name: str, tool_input: Any) -> None:
        """The callback adapter: ``tool.invoke`` with the guard's handler."""
        try:
            self.tools[name].invoke(tool_input, config={"callbacks": [self.handler]})
        except GuardrailsError:
            pass  # denied
        except Exception:  # the tool's own validation refused the input
            self.errors += 1

    def turn(self, calls: Sequence[dict[str, Any]]) -> None:
        """The graph adapters: one model turn with these tool calls."""
        if self.kind == "middleware":
            self.model.script.extend([AIMessage(content="", tool_calls=list(calls)), "done"])
            state: Any = {"messages": [{"role": "user", "content": "go"}]}
            runnable: Any = self.agent
        else:
            state = {"messages": [AIMessage(content="", tool_calls=list(calls))]}
            runnable = self.graph
        try:
            runnable.invoke(state)
        except GuardrailsError:
            pass
        except Exception:
            self.errors += 1
        if self.kind == "middleware":  # keep the script aligned if the run stopped early
            self.model.calls = len(self.model.script)


def valid_message_calls(calls: list[dict[str, Any]]) -> bool:
    """Whether LangChain accepts these calls in an ``AIMessage`` (object arguments)."""
    with contextlib.suppress(Exception):
        AIMessage(content="", tool_calls=calls)
        return True
    return False
