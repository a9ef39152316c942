"""Simulation: a digital twin of an agent system, run through the guard at scale.

A scenario (``Scenario.from_yaml``; the format is in ``docs/simulation.md``) describes a
population of agents (roles, tools, policies, who hands work to whom, call rates, argument
distributions given or drawn from recorded traffic) and the faults to inject (a share of
compromised agents, injected instructions in tool results, a store outage, slow
approvers). ``simulate(scenario)`` runs every interaction through ``Guard`` (tool calls,
results, hand-offs: budgets, the cascade monitor and the breaker all act) in simulated
time, and reports honest calls stopped, harmful calls let through, time and messages to
containment, blast radius, budget exhaustion, decisions by outcome and throughput. The
same seed gives the same report, on one process, many (``workers=``) or Ray (``ray=``).
The command line::

    guardrails-plugin simulate scenario.yaml --seed 7 --interactions 1000000 --workers 2
    guardrails-plugin simulate scenario.yaml --json report.json --html report.html
    guardrails-plugin simulate scenario.yaml --ray local --store redis://127.0.0.1:6379/0
"""

from ._html import render_html
from ._report import Containment, SimulationReport
from ._run import progress_bar, simulate
from ._scenario import (
    AnomalySettings,
    Approvers,
    Attack,
    Compromise,
    Dist,
    Injection,
    Outage,
    Role,
    Scenario,
    ScenarioError,
    ToolSpec,
)

__all__ = [
    "AnomalySettings",
    "Approvers",
    "Attack",
    "Compromise",
    "Containment",
    "Dist",
    "Injection",
    "Outage",
    "Role",
    "Scenario",
    "ScenarioError",
    "SimulationReport",
    "ToolSpec",
    "progress_bar",
    "render_html",
    "simulate",
]
