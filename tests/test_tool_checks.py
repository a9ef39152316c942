"""The policy read against the tools the app really binds, at build time and from the CLI.

Each mistake the check exists for: a rule for a misspelled tool (the real one then hidden
from the model), a bound tool no rule speaks about, a scope on an argument the tool does
not take, a scope whose kind cannot read the argument's type. Generated policies check
the report against its definition and against what the guard then does (a tool reported
as matching no rule is one the guard hides from the model).
"""

from __future__ import annotations

import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
from fakes import Ran, ScriptedChatModel, recording_tool, tool_call, user
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.tools import tool

from guardrails_plugin import Guard, Policy, allow, ask, deny
from guardrails_plugin.cli import main
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.langgraph import GuardedToolNode
from guardrails_plugin.policy import PolicyToolError, PolicyToolWarning, ToolShape
from guardrails_plugin.scopes import Not, Number, OneOf, Paths, Text, Urls, optional


@tool
def http_get(url: str, timeout: int = 10) -> str:
    """Fetch a URL."""
    return url


@tool
def read_file(path: str, limit: int = 100) -> str:
    """Read a file."""
    return path


TOOLS = [http_get, read_file]

MISTAKES = Policy(
    [
        allow("http_gte", args={"url": Urls(["example.com"])}, id="web"),  # typo
        allow("read_file", args={"pth": Paths(["/srv"])}, id="files"),  # typo in the argument
        ask("read_file", args={"limit": Paths(["/srv"])}, id="odd"),  # a path scope on an int
    ]
)


def kinds(problems: list[Any]) -> list[tuple[str, str, str | None]]:
    return [(p.kind, p.tool, p.rule) for p in problems]


def test_every_mistake_is_reported_with_a_suggestion() -> None:
    problems = MISTAKES.check_tools(TOOLS)
    assert kinds(problems) == [
        ("unknown-tool", "http_gte", "web"),
        ("unknown-argument", "read_file", "files"),
        ("wrong-kind", "read_file", "odd"),
        ("unmatched-tool", "http_get", None),
    ]
    text = [str(p) for p in problems]
    assert "did you mean 'http_get'?" in text[0]
    assert "did you mean 'path'?" in text[1]
    assert "takes integer: every call matches the ask" in text[2]
    assert "default deny hides it" in text[3]
    assert "did you mean 'http_gte'?" in text[3]


def test_wrapped_scopes_are_judged_by_the_scope_that_reads_the_value() -> None:
    policy = Policy(
        [
            allow("read_file", args={"limit": optional(Paths(["/srv"]))}, id="opt"),
            allow("read_file", args={"limit": Not(Urls(["example.com"]))}, id="not"),
            allow("read_file", args={"limit": Text(urls=Urls(["example.com"]))}, id="text"),
            allow("read_file", args={"limit": optional(Number(le=5))}, id="fits"),
            allow("http_get", args={"url": Not(optional(Urls(["example.com"])))}, id="fits2"),
        ]
    )
    problems = [p for p in policy.check_tools(TOOLS) if p.kind == "wrong-kind"]
    assert [p.rule for p in problems] == ["opt", "not", "text"]
    assert "allows only calls that leave it empty" in str(problems[0])
    assert "never allows a call" in str(problems[1])


def test_a_fitting_policy_reports_nothing() -> None:
    policy = Policy(
        [
            allow("http_get", args={"url": Urls(["example.com"]), "timeout": Number(le=30)}),
            allow("read_file", args={"path": Paths(["/srv"])}),
            deny("delete_*"),  # a glob naming no bound tool is a safety belt, not a typo
            allow("handoff", args={"to": OneOf(["a"])}),  # guard_node's hand-offs
        ]
    )
    assert policy.check_tools(TOOLS) == []


def test_rules_for_other_agents_are_not_held_against_this_one() -> None:
    policy = Policy([allow(["http_get", "read_file"], agents="web"), allow("sql", agents="db")])
    assert kinds(policy.check_tools(TOOLS, agent="web")) == []
    assert kinds(policy.check_tools(TOOLS)) == [("unknown-tool", "sql", "allow sql for db")]


def test_guarded_tool_node_warns_at_build_time_and_strict_refuses() -> None:
    guard = Guard(MISTAKES)
    with pytest.warns(PolicyToolWarning) as caught:
        GuardedToolNode(TOOLS, guard)
    assert len(caught) == 4
    assert all(str(w.message).startswith("GuardedToolNode: ") for w in caught)
    with pytest.raises(PolicyToolError, match=r"(?s)http_gte.*pth.*limit.*http_get"):
        GuardedToolNode(TOOLS, guard, strict=True)


def test_middleware_warns_when_given_the_tools_and_strict_refuses() -> None:
    guard = Guard(MISTAKES)
    with pytest.warns(PolicyToolWarning, match="GuardMiddleware: rule 'web' names tool"):
        GuardMiddleware(guard, tools=TOOLS)
    with pytest.raises(PolicyToolError):
        GuardMiddleware(guard, tools=TOOLS, strict=True)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_middleware_checks_the_agents_tools_at_its_first_model_call(mode: str) -> None:
    ran: Ran = []
    tools = [recording_tool("http_get", ran, "url")]
    policy = Policy([allow("http_gte")])

    def agent(strict: bool) -> Any:
        model = ScriptedChatModel([tool_call("http_get", url="x"), "done", "done"])
        middleware = GuardMiddleware(Guard(policy), strict=strict)
        return create_agent(model, tools, middleware=[middleware])

    async def invoke(graph: Any) -> Any:
        if mode == "async":
            return await graph.ainvoke(user("go"))
        return graph.invoke(user("go"))

    with pytest.warns(PolicyToolWarning) as caught:
        await invoke(agent(strict=False))
    assert sorted(str(w.message).split(":")[1].split()[0] for w in caught) == ["bound", "rule"]
    with pytest.raises(PolicyToolError, match="did you mean 'http_get'"):
        await invoke(agent(strict=True))
    assert ran == []


def test_a_fitting_app_builds_without_warnings() -> None:
    policy = Policy([allow(["http_get", "read_file"])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GuardedToolNode(TOOLS, Guard(policy), strict=True)
        GuardMiddleware(Guard(policy), tools=TOOLS, strict=True)


# -- from the command line ------------------------------------------------------------------------

POLICY_YAML = """\
rules:
  - id: web
    allow: http_gte
  - id: files
    allow: read_file
    args:
      pth: {path: {roots: [/srv]}}
  - id: mail
    allow: send_email
  - id: mail-ask
    ask: send_email
"""

TOOLS_MODULE = """\
from langchain_core.tools import tool

@tool
def http_get(url: str) -> str:
    '''Fetch.'''
    return url

@tool
def read_file(path: str) -> str:
    '''Read.'''
    return path

@tool
def send_email(to: str) -> str:
    '''Send.'''
    return to

TOOLS = [http_get, read_file, send_email]

def make_tools():
    return TOOLS
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "lint_app_tools.py").write_text(TOOLS_MODULE)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_YAML)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    sys.modules.pop("lint_app_tools", None)
    return policy


@pytest.mark.parametrize("attr", ["TOOLS", "make_tools"])
def test_lint_with_tools_reports_every_mistake(
    app: Path, attr: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lint", str(app), "--tools", f"lint_app_tools:{attr}"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert all(line.startswith("warning: ") for line in err)
    text = "\n".join(err)
    assert "rule 'mail' never takes effect: rule 'mail-ask' (ask)" in text
    assert "rule 'web' names tool 'http_gte'" in text
    assert "did you mean 'http_get'?" in text
    assert "scopes argument 'pth'" in text
    assert "did you mean 'path'?" in text
    assert "bound tool 'http_get' matches no rule" in text
    assert main(["lint", str(app), "--tools", f"lint_app_tools:{attr}", "--strict"]) == 2


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("lint_app_tools", "must look like module:attribute"),
        ("no_such_module_xyz:TOOLS", "cannot import 'no_such_module_xyz'"),
        ("lint_app_tools:TOOL", "did you mean 'TOOLS'?"),
        ("lint_app_tools:tool", "expected a list of tools"),
    ],
)
def test_lint_tools_errors_are_one_line(
    app: Path, spec: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lint", str(app), "--tools", spec]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert says in err


def test_lint_without_tools_does_not_import_them(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lint", str(app)]) == 0
    assert "lint_app_tools" not in sys.modules
    assert "names tool" not in capsys.readouterr().err


# -- generated: the definition, and what the guard then does --------------------------------------

names = st.sampled_from(["get", "got", "put", "read", "reed", "send", "sned"])


@st.composite
def apps(draw: st.DrawFn) -> tuple[Policy, list[ToolShape]]:
    bound = draw(st.lists(names, unique=True, max_size=4))
    shapes = [
        ToolShape(n, {a: frozenset({draw(st.sampled_from(["string", "integer"]))}) for a in "xy"})
        for n in bound
    ]
    rules = []
    for i in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from([allow, ask, deny]))
        pattern = draw(st.one_of(names, names.map(lambda n: n[:2] + "*")))
        arg = draw(st.sampled_from([None, "x", "y", "z"]))
        scope = draw(st.sampled_from([Paths(["/srv"]), Number(le=1)]))
        rules.append(kind(pattern, args={arg: scope} if arg else None, id=f"r{i}"))
    return Policy(rules), shapes


@settings(max_examples=300, deadline=None)
@given(apps())
def test_generated_reports_match_the_definition_and_the_guard(
    app: tuple[Policy, list[ToolShape]],
) -> None:
    policy, shapes = app
    problems = policy.check_tools(shapes)
    bound = {s.name: s for s in shapes}
    expected = set()
    for r in policy.rules:
        for t in r.tools:
            if "*" not in t and t not in bound:
                expected.add(("unknown-tool", t, r.id))
        for name, shape in bound.items():
            if not r.about("agent", name):
                continue
            for arg, scope in r.args.items():
                if arg not in (shape.args or {}):
                    expected.add(("unknown-argument", name, r.id))
                else:
                    wants = {"path": "string", "number": "integer"}[scope.kind]
                    if wants not in (shape.args or {})[arg]:
                        expected.add(("wrong-kind", name, r.id))
    for name in bound:
        if not any(r.about("agent", name) for r in policy.rules):
            expected.add(("unmatched-tool", name, None))
    assert set(kinds(problems)) == expected
    # what it means at run time: a tool matching no rule is hidden from the model
    hidden = {p.tool for p in problems if p.kind == "unmatched-tool"}
    visible = set(Guard(policy).visible_tools("agent", list(bound)))
    assert not hidden & visible


def test_cli_module_text_is_valid() -> None:
    """The module the CLI tests import is plain Python (guards the fixture itself)."""
    compile(textwrap.dedent(TOOLS_MODULE), "lint_app_tools.py", "exec")
