"""Behaviour baselines: what each agent habitually does, learned from recorded traffic, and an
anomaly signal for the cascade breaker when an agent leaves its habits.

``learn(source)`` reads recorded calls (the replay readers: ``replay.from_audit``,
``from_jsonl``, ``from_checkpoints``) into a ``Baseline``: per agent, the tools it calls,
the destinations and values of their arguments (hosts of URLs, e-mail domains, path roots,
short values), its calls per run and its tool-to-tool transitions, in bounded counts,
saved and loaded as versioned JSON. ``Anomaly(baseline)`` is a cascade signal: given to a
``CascadeMonitor``, it scores each tool call against its agent's baseline, and the guard's
``Breaker`` pauses the run (or quarantines the agent) when several novelties pile up in
one run. ``docs/baselines.md`` says what it learns, what it scores and what it cannot see::

    guardrails-plugin baseline learn --from audit.db --out baseline.json
    guardrails-plugin baseline show baseline.json

    anomaly = Anomaly(Baseline.load("baseline.json"))
    guard = Guard(policy, cascade=CascadeMonitor([*default_signals(), anomaly]))
"""

from ._anomaly import Anomaly, Novelty
from ._baseline import FORMAT, VERSION, AgentProfile, Baseline, BaselineError, Counts
from ._habits import Evaluation, Population, evaluate
from ._learn import learn
from ._values import keys

__all__ = [
    "FORMAT",
    "VERSION",
    "AgentProfile",
    "Anomaly",
    "Baseline",
    "BaselineError",
    "Counts",
    "Evaluation",
    "Novelty",
    "Population",
    "evaluate",
    "keys",
    "learn",
]
