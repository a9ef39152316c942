"""The scope package as a whole: registration, specs as plain data, runnable examples."""

from __future__ import annotations

import doctest
import importlib
import json

import pytest

from guardrails_plugin.scopes import (
    SCOPE_KINDS,
    Emails,
    Number,
    OneOf,
    Paths,
    Pattern,
    Predicate,
    Scope,
    ScopeError,
    Shell,
    Sql,
    Urls,
    scope_from_spec,
)

EXAMPLES: list[Scope] = [
    Paths(["/srv/data"], resolve_symlinks=False),
    Urls(["api.example.com", "*.cdn.example.com"], ports=[443, 8443]),
    Emails(addresses=["ceo@partner.org"], domains=["example.com"]),
    Shell(["ls", "grep"], allow_pipes=True),
    Sql(["orders", "analytics.*"], dialect="postgres"),
    Number(gt=0, le=500),
    OneOf(["draft", "final"]),
    Pattern(r"[A-Z]+-\d+"),
    Predicate("math:isfinite", "a finite number"),
]


def test_every_kind_is_registered() -> None:
    assert set(SCOPE_KINDS) >= {
        "path", "url", "email", "shell", "sql", "number", "one_of", "pattern", "predicate"
    }  # fmt: skip
    for scope in EXAMPLES:
        assert SCOPE_KINDS[scope.kind] is type(scope)


@pytest.mark.parametrize("scope", EXAMPLES, ids=lambda s: s.kind)
def test_spec_is_plain_json_and_rebuilds_an_equal_scope(scope: Scope) -> None:
    data = json.loads(json.dumps(scope.spec()))
    rebuilt = scope_from_spec(scope.kind, data)
    assert rebuilt == scope
    assert hash(rebuilt) == hash(scope)
    assert rebuilt.within(scope)
    assert scope.within(rebuilt)


@pytest.mark.parametrize("scope", EXAMPLES, ids=lambda s: s.kind)
def test_scopes_of_different_kinds_are_never_within_each_other(scope: Scope) -> None:
    other = OneOf(["x"]) if not isinstance(scope, OneOf) else Number()
    assert not scope.within(other)
    assert scope != other


def test_unknown_kind_and_bad_settings_raise_scope_error() -> None:
    with pytest.raises(ScopeError, match="unknown scope kind 'nope'"):
        scope_from_spec("nope", {})
    with pytest.raises(ScopeError, match="bad settings for scope 'url'"):
        scope_from_spec("url", {"hostz": ["a.com"]})


@pytest.mark.parametrize("module", ["paths", "urls", "emails", "shell", "sql", "values", ""])
def test_docstring_examples_run(module: str) -> None:
    name = "guardrails_plugin.scopes" + (f".{module}" if module else "")
    result = doctest.testmod(importlib.import_module(name), raise_on_error=False)
    assert result.attempted > 0
    assert result.failed == 0
