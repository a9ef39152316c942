"""Policy files: named lists (``{list: name}``), ``imports:`` of custom scope kinds, and
``not:`` around any scope, failing closed on what the inner scope cannot read."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin import Effect, Guard, Policy, PolicyFileError, ToolCall, ToolResult
from guardrails_plugin.policy import allow, ask, deny
from guardrails_plugin.scopes import (
    SCOPE_KINDS,
    Emails,
    Not,
    Number,
    OneOf,
    Paths,
    Pattern,
    Scope,
    ScopeViolation,
    Shell,
    Sql,
    Urls,
    scope_from_spec,
)

ROOT = Path(__file__).resolve().parent.parent

LISTED = """\
name: mail
lists:
  trusted: [alice@example.com, bob@example.org]
  internal: [example.com]
  tools: [send_email, forward_email]
rules:
  - id: mail-trusted
    allow: {list: tools}
    args:
      to: {email: {addresses: {list: trusted}, domains: {list: internal}}}
  - id: never-outside
    deny: send_email
    args:
      to: {not: {email: {addresses: {list: trusted}, domains: {list: internal}}}}
"""


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# -- lists -------------------------------------------------------------------------------------


def test_a_list_is_used_where_it_is_referred_to(tmp_path: Path) -> None:
    policy = Policy.from_yaml(write(tmp_path, LISTED))
    guard = Guard(policy)
    assert guard.check(ToolCall("forward_email", {"to": "bob@example.org"})).allowed
    assert guard.check(ToolCall("send_email", {"to": ["carol@example.com"]})).allowed
    denied = guard.check(ToolCall("send_email", {"to": ["alice@example.com", "x@other.org"]}))
    assert denied.denied
    assert denied.rule == "never-outside"


def test_references_print_back_as_written(tmp_path: Path) -> None:
    data = yaml.safe_load(LISTED)
    printed = Policy.from_yaml(write(tmp_path, LISTED)).to_dict()
    assert printed["lists"] == data["lists"]
    assert printed["rules"][0]["allow"] == {"list": "tools"}
    scope = printed["rules"][0]["args"]["to"]["email"]
    assert scope == {"addresses": {"list": "trusted"}, "domains": {"list": "internal"}}
    negated = printed["rules"][1]["args"]["to"]["not"]["email"]
    assert negated == {"addresses": {"list": "trusted"}, "domains": {"list": "internal"}}
    again = Policy.from_dict(printed)
    assert again.to_dict() == printed
    assert again == Policy.from_yaml(write(tmp_path, yaml.safe_dump(printed), "again.yaml"))


_names = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    lists=st.dictionaries(
        _names,
        st.lists(st.integers(-50, 50), min_size=1, max_size=4, unique=True),
        min_size=1,
        max_size=4,
    ),
    picks=st.lists(st.integers(0, 10), min_size=1, max_size=5),
    negate=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_generated_lists_round_trip_exactly_and_decide_like_the_values(
    lists: dict[str, list[int]], picks: list[int], negate: list[bool]
) -> None:
    names = sorted(lists)
    rules: list[dict[str, Any]] = []
    for i, pick in enumerate(picks):
        name = names[pick % len(names)]
        scope: dict[str, Any] = {"one_of": {"values": {"list": name}}}
        if negate[i]:
            scope = {"not": scope}
        rules.append({"id": f"r{i}", "allow": f"t{i}", "args": {"v": scope}})
    data = {"name": "p", "version": "1", "lists": lists, "rules": rules}
    policy = Policy.from_dict(data)
    assert policy.to_dict() == data  # exact, references and all
    # the same policy with the values written out decides alike
    for i, pick in enumerate(picks):
        name = names[pick % len(names)]
        inline = Policy([allow(f"t{i}", args={"v": _maybe_not(OneOf(lists[name]), negate[i])})])
        for value in (*lists[name], 51, "x", None):
            call = ToolCall(f"t{i}", {"v": value})
            assert policy.evaluate(call).effect == inline.evaluate(call).effect


def _maybe_not(scope: Scope, negate: bool) -> Scope:
    return Not(scope) if negate else scope


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "lists: {a: [1]}\nrules: [{allow: t, args: {v: {one_of: {values: {list: b}}}}}]",
            "names no list",
        ),
        ("lists: [1, 2]\nrules: []", "expected a mapping of names"),
        ("lists: {a: {list: b}, b: [1]}\nrules: []", "cannot refer to another list"),
        (
            "lists: {a: [x]}\nrules: [{allow: t, args: {v: {one_of: {values: [{list: a}]}}}}]",
            "not an item of one",
        ),
        (
            "lists: {a: [1]}\nrules: [{allow: t, args: {v: {one_of: {values: {list: 3}}}}}]",
            "names no list",
        ),
    ],
)
def test_bad_lists_and_references_are_file_errors(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(PolicyFileError, match=problem):
        Policy.from_yaml(write(tmp_path, text))


def test_lint_warns_about_a_list_nothing_refers_to(tmp_path: Path) -> None:
    text = "lists: {unused: [1], used: [2]}\nrules: [{allow: t, args: {v: {one_of: {values: {list: used}}}}}]"
    warnings = Policy.from_yaml(write(tmp_path, text)).lint()
    assert warnings == ["list 'unused' is defined but no rule or flow refers to it"]


@settings(max_examples=40, deadline=None)
@given(
    hosts=st.lists(
        st.from_regex(r"[a-z]{1,8}\.(com|org|net)", fullmatch=True), min_size=1, max_size=4
    ),
    host=st.from_regex(r"[a-z]{1,8}\.(com|org|net)", fullmatch=True),
)
def test_a_flow_refers_to_lists_as_a_rule_does(hosts: list[str], host: str) -> None:
    """A flow's sources, sinks and argument scopes may be ``{list: name}``: the flow gates
    exactly as one written out, prints the references back, and counts as using them."""
    lists = {"tools": ["fetch"], "sites": hosts}
    listed = {
        "lists": lists,
        "rules": [{"allow": ["fetch", "post"]}],
        "flows": [
            {
                "sources": {"list": "tools"},
                "sinks": ["post"],
                "args": {"url": {"not": {"url": {"hosts": {"list": "sites"}}}}},
            }
        ],
    }
    written = {
        "rules": [{"allow": ["fetch", "post"]}],
        "flows": [
            {
                "sources": ["fetch"],
                "sinks": ["post"],
                "args": {"url": {"not": {"url": {"hosts": hosts}}}},
            }
        ],
    }
    policy, plain = Policy.from_dict(listed), Policy.from_dict(written)
    assert policy.flows == plain.flows
    printed = policy.to_dict()["flows"][0]
    assert printed["sources"] == {"list": "tools"}
    assert printed["args"]["url"]["not"]["url"]["hosts"] == {"list": "sites"}
    assert Policy.from_dict(policy.to_dict()) == policy
    assert not any("no rule or flow refers" in w for w in policy.lint())
    effects = []
    for p in (policy, plain):
        guard = Guard(p)
        guard.check(ToolCall("fetch", {}, thread_id="t"))
        guard.record(ToolResult("fetch", "page", thread_id="t"))
        call = ToolCall("post", {"url": f"https://{host}/"}, thread_id="t")
        effects.append(guard.check(call).effect)
    assert effects[0] == effects[1]
    assert (effects[0] is Effect.ASK) == (host not in hosts)


# -- imports -----------------------------------------------------------------------------------

CUSTOM = """\
name: custom
imports: [custom_scope_kinds]
rules:
  - id: even-only
    allow: pick
    args:
      n: {even: {strict: true}}
  - id: odd-never
    deny: drop
    args:
      n: {not: {even: {strict: true}}}
"""


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    return subprocess.run(
        [sys.executable, "-m", "guardrails_plugin.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_imports_register_custom_kinds_and_the_policy_uses_them(tmp_path: Path) -> None:
    policy = Policy.from_yaml(write(tmp_path, CUSTOM))
    assert "even" in SCOPE_KINDS
    assert policy.imports == ("custom_scope_kinds",)
    assert policy.evaluate(ToolCall("pick", {"n": 4})).allowed
    assert policy.evaluate(ToolCall("pick", {"n": 3})).denied
    assert policy.evaluate(ToolCall("drop", {"n": 3})).rule == "odd-never"
    # an unreadable value is not "not even": the deny fails closed
    assert policy.evaluate(ToolCall("drop", {"n": "3"})).reason.startswith("fail closed")
    assert Policy.from_dict(policy.to_dict()) == policy


def test_lint_without_import_runs_nothing_and_prints_the_file_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, CUSTOM)
    plain = _cli("lint", path)
    assert plain.returncode == 0, plain.stderr
    imported = _cli("lint", "--import", path)
    assert imported.returncode == 0, imported.stderr
    assert plain.stdout == imported.stdout  # same policy printed, imported or not
    assert "even:" in plain.stdout
    assert "strict: true" in plain.stdout
    # without imports the unknown kind holds nothing: every call it guards is denied
    probe = (
        "import sys; from guardrails_plugin import Policy, ToolCall;"
        f"p = Policy.from_yaml({path!r}, imports=False);"
        "assert 'custom_scope_kinds' not in sys.modules;"
        "print(p.evaluate(ToolCall('pick', {'n': 4})).effect,"
        " p.evaluate(ToolCall('drop', {'n': 3})).effect)"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["deny", "deny"], out.stderr


def test_lint_import_module_names_a_module_the_file_does_not(tmp_path: Path) -> None:
    text = "rules: [{allow: pick, args: {n: {even: {}}}}]\n"
    path = write(tmp_path, text)
    missing = _cli("lint", path)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error:")
    assert "unknown scope kind 'even'" in missing.stderr
    found = _cli("lint", "--import", "custom_scope_kinds", path)
    assert found.returncode == 0, found.stderr
    schema = _cli("schema", "--import", "custom_scope_kinds")
    assert '"even"' in schema.stdout


@pytest.mark.parametrize(
    ("imports", "problem"),
    [
        ("[no_such_module_here]", "cannot import 'no_such_module_here'"),
        ("[os.path; rm]", "expected a module name"),
        ("[3]", "expected a module name"),
        ("{a: b}", "expected a list"),
    ],
)
def test_bad_imports_are_file_errors(tmp_path: Path, imports: str, problem: str) -> None:
    with pytest.raises(PolicyFileError, match=problem):
        Policy.from_yaml(write(tmp_path, f"imports: {imports}\nrules: []\n"))


# -- not ---------------------------------------------------------------------------------------

INNER: list[Scope] = [
    Emails(domains=["example.com"]),
    Number(ge=0, le=10, integer=True),
    OneOf(["a", "b", 1]),
    Paths(["/srv/data"]),
    Pattern(r"[a-z]+"),
    Shell(["ls", "cat"]),
    Sql(["tickets"]),
    Urls(["example.com"]),
]

_odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True),
    st.text(max_size=40),
    st.binary(max_size=10),
    st.lists(st.one_of(st.text(max_size=10), st.integers(), st.none()), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.sampled_from(
        [
            "a@example.com",
            "a@other.org",
            "a@example.com, b@other.org",
            "/srv/data/x",
            "/srv/data/../../etc/passwd",
            "https://example.com/x",
            "https://evil.test@example.com",
            "ls; rm -rf /",
            "cat $(whoami)",
            "SELECT * FROM tickets",
            "DROP TABLE tickets",
            "ab",
            "AB",
            Decimal("5"),
            float("nan"),
            5,
            11,
            -1,
        ]
    ),
)


def _verdict(scope: Scope, value: object) -> str:
    """'in', 'out' (read and refused) or 'unreadable' (refused unread, or crashed)."""
    try:
        scope.check(value)
    except ScopeViolation as exc:
        return "unreadable" if exc.unreadable else "out"
    except Exception:
        return "unreadable"
    return "in"


@settings(max_examples=400, deadline=None)
@given(inner=st.sampled_from(INNER), value=_odd_values)
def test_not_accepts_exactly_what_the_inner_scope_reads_and_refuses(
    inner: Scope, value: object
) -> None:
    inner_says = _verdict(inner, value)
    not_says = _verdict(Not(inner), value)
    expected = {"in": "out", "out": "in", "unreadable": "unreadable"}[inner_says]
    assert not_says == expected, (inner, value)


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.from_regex(r"[A-Z][a-z]{3,8}", fullmatch=True), min_size=1, max_size=5),
    value=st.from_regex(r"[A-Z][a-z]{3,8}", fullmatch=True),
)
def test_the_model_never_reads_what_a_not_scope_excludes(names: list[str], value: str) -> None:
    """A call that misses an ``ask`` rule written with ``not:`` (its value is one of the
    excluded ones) and every allow rule is denied; the operator reads the excluded values,
    the model only that the value is inside what the rule excludes."""
    members = OneOf(names)
    policy = Policy(
        [
            allow("dm", args={"to": members, "body": Pattern("ok")}),
            ask("dm", args={"to": Not(members)}),
        ]
    )
    decision = Guard(policy).check(ToolCall("dm", {"to": value, "body": "not ok"}))
    if value in names:
        assert decision.denied
        model = decision.for_model()
        assert not any(repr(n) in model for n in names if n != value), model
        assert all(repr(n) in decision.message() for n in names)
    else:
        assert decision.effect is Effect.ASK


class _Crashing(Scope):
    kind = ""

    def check(self, value: object) -> None:
        raise RuntimeError("parser exploded")

    def spec(self) -> dict[str, Any]:
        return {}


class _Lying(Scope):
    """A scope that refuses everything 'readably': Not cannot do better than trust it."""

    kind = ""

    def check(self, value: object) -> None:
        raise ScopeViolation("no")

    def spec(self) -> dict[str, Any]:
        return {}


@settings(max_examples=100, deadline=None)
@given(inner=st.sampled_from(INNER), value=_odd_values)
def test_a_deny_written_with_not_fires_on_values_the_inner_scope_cannot_read(
    inner: Scope, value: object
) -> None:
    policy = Policy([allow("send", id="open"), deny("send", args={"v": Not(inner)}, id="not-in")])
    decision = policy.evaluate(ToolCall("send", {"v": value}))
    if _verdict(inner, value) == "in":
        assert decision.allowed
    else:  # outside the inner scope, or unreadable by it: the deny holds (fail closed)
        assert decision.denied
        assert decision.rule == "not-in"
    # and an allow written with not never lets an unreadable value through
    permit = Policy([allow("send", args={"v": Not(inner)})]).evaluate(
        ToolCall("send", {"v": value})
    )
    if _verdict(inner, value) != "out":
        assert permit.denied


def test_not_fails_closed_when_the_inner_scope_crashes() -> None:
    scope = Not(_Crashing())
    with pytest.raises(ScopeViolation) as info:
        scope.check("anything")
    assert info.value.unreadable
    assert "parser exploded" in str(info.value)
    assert Not(_Lying()).contains("anything")  # a readable refusal is trusted as one


def test_not_round_trips_and_nests() -> None:
    spec = {"not": {"not": {"number": {"ge": 1, "integer": True}}}}
    scope = scope_from_spec("not", spec["not"])
    assert scope == Not(Not(Number(ge=1, integer=True)))
    assert scope.spec() == {"not": {"number": {"ge": 1, "integer": True}}}
    assert scope.contains(3)
    assert not scope.contains(0)
    assert not scope.contains("3")
    policy = Policy.from_dict({"rules": [{"id": "r", "allow": "t", "args": {"v": spec}}]})
    assert policy.to_dict()["rules"][0]["args"]["v"] == spec
    assert Not(Number(ge=1)).within(Not(Number(ge=1)))
    # not (x >= 1) holds 0.5, which an integer-only scope cannot read: never "within"
    narrower = Number(ge=1, integer=True)
    assert narrower.within(Number(ge=1))
    assert Not(Number(ge=1)).contains(0.5)
    assert not Not(narrower).contains(0.5)
    assert not Not(Number(ge=1)).within(Not(narrower))
    assert not Not(Number(ge=1)).within(Number(ge=1))


@pytest.mark.parametrize(
    "spec",
    [{}, {"email": {}, "number": {}}, {"nope": {}}, {"number": [1]}, {"number": {"zz": 1}}],
)
def test_bad_not_settings_are_file_errors(spec: dict[str, Any]) -> None:
    data = {"rules": [{"allow": "t", "args": {"v": {"not": spec}}}]}
    with pytest.raises(PolicyFileError):
        Policy.from_dict(data)
