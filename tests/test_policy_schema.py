"""The JSON Schema ``guardrails-plugin schema`` prints: valid, in step with the reference
page, accepting every policy file in the repository, rejecting what the loader rejects."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails_plugin import Policy, PolicyError
from guardrails_plugin.cli import main
from guardrails_plugin.policy._schema import policy_schema, reference_markdown

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "policy-reference.md"
VALIDATOR = jsonschema.Draft202012Validator(policy_schema(builtin_only=True))


def test_the_schema_is_a_valid_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(policy_schema())


def test_the_cli_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == policy_schema()


def test_the_reference_page_is_generated_from_the_schema() -> None:
    expected = reference_markdown()
    assert REFERENCE.read_text() == expected, (
        "docs/policy-reference.md is stale: run "
        "`guardrails-plugin schema --markdown > docs/policy-reference.md`"
    )


def test_the_reference_names_every_key_the_loader_knows() -> None:
    from guardrails_plugin.policy import _files, _sections

    text = REFERENCE.read_text()
    keys = _files._TOP_KEYS | _files._RULE_KEYS | _files._BUDGET_KEYS | _files._FLOW_KEYS
    keys |= _sections._ROLE_KEYS
    for key in sorted(keys):
        assert f"`{key}`" in text, key
    schema = policy_schema()["$defs"]
    assert set(schema["policy"]["properties"]) == _files._TOP_KEYS
    assert set(schema["rule"]["properties"]) == _files._RULE_KEYS
    assert set(schema["budget"]["properties"]) == _files._BUDGET_KEYS
    assert set(schema["flow"]["properties"]) == _files._FLOW_KEYS


def _policy_files() -> list[Path]:
    found = []
    for folder in ("cookbook", "integrations", "tests"):
        for pattern in ("*.yaml", "*.yml", "*.json"):
            found += sorted((ROOT / folder).rglob(pattern))
    return [p for p in found if "node_modules" not in p.parts and not _is_scenario(p)]


def _is_scenario(path: Path) -> bool:
    """A simulation scenario (``guardrails-plugin simulate``), not a policy: it holds a
    policy under its ``policy`` key and faults to inject."""
    data = yaml.safe_load(path.read_text())
    return isinstance(data, dict) and "faults" in data and "policy" in data


def test_there_are_policy_files_to_check() -> None:
    names = {p.name for p in _policy_files()}
    assert {"policy.yaml", "org.yaml", "team.yaml", "agent.yaml"} <= names


@pytest.mark.parametrize("path", _policy_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_policy_file_in_the_repository_fits_the_schema(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    errors = [e.message for e in VALIDATOR.iter_errors(data)]
    assert errors == []
    Policy.from_yaml(str(path))  # and the loader agrees


def test_printed_policies_fit_the_schema() -> None:
    for path in _policy_files():
        printed = Policy.from_yaml(str(path)).to_dict()
        assert list(VALIDATOR.iter_errors(json.loads(json.dumps(printed)))) == [], path


# -- generated files: valid ones, and one mutation away ------------------------------------

_name = st.sampled_from(["read", "send", "web_*", "x"])
_scope = st.sampled_from(
    [
        {"path": {"roots": ["/srv"]}},
        {"number": {"ge": 0, "le": 5}},
        {"one_of": {"values": ["a", 1]}},
        {"email": {"domains": ["example.com"]}},
        {"url": {"hosts": ["example.com"]}},
        {"not": {"number": {"ge": 3}}},
        {"pattern": {"regex": "[a-z]+"}},
    ]
)


@st.composite
def valid_policies(draw: st.DrawFn) -> dict[str, Any]:
    rules = []
    for i in range(draw(st.integers(1, 4))):
        effect = draw(st.sampled_from(["allow", "ask", "deny"]))
        rule: dict[str, Any] = {"id": f"r{i}", effect: draw(_name)}
        if draw(st.booleans()):
            rule["args"] = {"v": draw(_scope)}
        if draw(st.booleans()):
            rule["agents"] = draw(st.sampled_from(["a", ["a", "b"]]))
        if draw(st.booleans()):
            rule["roles"] = "staff"
        if effect != "deny" and draw(st.booleans()):
            rule["widen"] = draw(st.booleans())
        rules.append(rule)
    data: dict[str, Any] = {"name": "p", "rules": rules, "roles": {"staff": {"agents": ["a"]}}}
    budgets = draw(
        st.lists(
            st.sampled_from(
                [
                    {"calls": 3, "tools": "read"},
                    {"rate": 2, "window": 60},
                    {"sum": {"arg": "n", "limit": 10}},
                    {"distinct": {"arg": "to", "limit": 2, "items": "email"}},
                    {"tokens": {"limit": 100, "of": "results"}},
                ]
            ),
            max_size=3,
        )
    )
    if budgets:
        data["budgets"] = [{**b, "id": f"b{i}"} for i, b in enumerate(budgets)]
    if draw(st.booleans()):
        data["flows"] = [{"sources": ["web_*"], "sinks": "send", "effect": "deny"}]
    if draw(st.booleans()):
        data["lists"] = {"hosts": ["example.com"]}
        data["rules"].append(
            {"id": "listed", "allow": "fetch", "args": {"u": {"url": {"hosts": {"list": "hosts"}}}}}
        )
    return data


def _places(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every mapping of the policy's own structure a mutation may target."""
    out: list[dict[str, Any]] = [data, data["roles"]["staff"]]
    out += data["rules"] + data.get("budgets", []) + data.get("flows", [])
    out += [r["args"]["v" if "v" in r["args"] else "u"] for r in data["rules"] if "args" in r]
    return out


_junk = st.one_of(
    st.integers(), st.booleans(), st.none(), st.just([1, 2]), st.just({"k": 1}), st.just("")
)


@st.composite
def mutations(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(draw(valid_policies()))
    kind = draw(
        st.sampled_from(
            ["unknown key", "wrong type", "two effects", "no effect", "bad scope", "bad budget"]
        )
    )
    if kind == "unknown key":
        place = draw(st.sampled_from(_places(data)))
        if len(place) == 1 and next(iter(place)) in (
            "not",
            "path",
            "number",
            "one_of",
            "email",
            "url",
            "pattern",
        ):
            (settings_,) = place.values()
            settings_["surprise"] = 1  # an unknown setting of a scope
        else:
            place[draw(st.sampled_from(["surprise", "Rules", "allows", "arg"]))] = 1
    elif kind == "wrong type":
        rule = draw(st.sampled_from(data["rules"]))
        key = draw(st.sampled_from(["args", "agents", "effect", "roles", "widen"]))
        if key == "effect":
            key = next(k for k in ("allow", "ask", "deny") if k in rule)
        rule[key] = draw(
            _junk.filter(lambda v: v is not None and v != "" and v != [] and v is not False)
        )
        if key == "widen" and isinstance(rule[key], bool):
            rule[key] = 5
    elif kind == "two effects":
        rule = draw(st.sampled_from(data["rules"]))
        other = next(k for k in ("allow", "ask", "deny") if k not in rule)
        rule[other] = "x"
    elif kind == "no effect":
        rule = draw(st.sampled_from(data["rules"]))
        for k in ("allow", "ask", "deny"):
            rule.pop(k, None)
    elif kind == "bad scope":
        rule = draw(st.sampled_from(data["rules"]))
        rule["args"] = {
            "v": draw(
                st.sampled_from(
                    [{"nope": {}}, {"path": {}, "url": {}}, "path", {"path": [1]}, {"not": {}}]
                )
            )
        }
    else:
        data["budgets"] = [
            draw(
                st.sampled_from(
                    [
                        {"rate": 2},
                        {"calls": 1, "rate": 2, "window": 1},
                        {"sum": {"limit": 3}},
                        {"calls": -1},
                        {"calls": 1, "per": "week"},
                        {"distinct": {"arg": "a", "limit": 1}, "window": 5},
                        {"calls": 1, "window": 0},
                        {"tokens": {"limit": 1, "of": "everything"}},
                        {},
                    ]
                )
            )
        ]
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=valid_policies())
def test_generated_valid_policies_fit_the_schema_and_load(data: dict[str, Any]) -> None:
    assert list(VALIDATOR.iter_errors(data)) == []
    policy = Policy.from_dict(data)
    assert list(VALIDATOR.iter_errors(json.loads(json.dumps(policy.to_dict())))) == []


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutations())
def test_the_schema_rejects_what_the_loader_rejects(data: dict[str, Any]) -> None:
    try:
        Policy.from_dict(data)
    except PolicyError:
        assert list(VALIDATOR.iter_errors(data)) != [], json.dumps(data)
