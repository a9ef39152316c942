"""The generated cascade scenarios through real LangGraph graphs and the adapters.

Each kind and benign pattern of ``cascade_scenarios``, in each of its shapes (direct, star,
chain, noisy, nested teams of the story), is run as a graph (``cascade_graph_scenarios``):
``guard_node`` with ``Send`` packets from nodes (``send``) or from a routing function
(``router``), plain nodes watched by ``CascadeWatcher`` (``watcher``), and the team as a
subgraph of an outer graph (``nested``). Seeds ``GRAPH_SEEDS`` were not looked at while the
adapters and the runner were fixed (``DEV_SEEDS`` were). Every cascade must be flagged in
time by the signal its kind expects, its harmful side effect (a tool body) never runs under
the default breaker, and no benign run trips. ``tests/conftest.py`` prints the table.
"""

from __future__ import annotations

import pytest
from cascade_graph_scenarios import WIRINGS, play_graph
from cascade_scenarios import CASCADES, EXPECTED, KINDS, SHAPES, generate

DEV_SEEDS = range(3000, 3004)  # used while fixing the adapters and the runner
GRAPH_SEEDS = range(4000, 4002)  # held out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("wiring", WIRINGS)
@pytest.mark.parametrize("kind", KINDS)
def test_held_out_scenarios_through_graphs(kind: str, wiring: str) -> None:
    bad = []
    w = WIRINGS.index(wiring)
    for j, seed in enumerate(GRAPH_SEEDS):
        # two shapes per wiring (each seed one), every shape in two wirings per kind
        shape = SHAPES[(2 * w + j) % len(SHAPES)]
        outcome, sent, _, _ = play_graph(generate(kind, shape, seed), wiring)
        assert sent, outcome  # the story ran and the monitor saw it
        if outcome.verdict != "ok":
            bad.append((outcome.scenario, outcome.verdict, outcome.onset, outcome.flagged))
        if kind in CASCADES:
            assert outcome.signal == EXPECTED[kind], outcome
            assert outcome.harm == [], outcome
    assert bad == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("kind", KINDS)
def test_held_out_scenarios_through_graphs_async(kind: str) -> None:
    outcome, sent, _, _ = play_graph(
        generate(kind, "star", GRAPH_SEEDS[0] + 10), "send", mode="async"
    )
    assert sent
    assert outcome.verdict == "ok", outcome
    assert outcome.harm == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("kind", ["infection", "infection_long", "deputy"])
@pytest.mark.parametrize("wiring", WIRINGS)
def test_without_the_monitor_the_harm_happens(kind: str, wiring: str) -> None:
    """The oracle for containment: the same graph with no cascade monitor lets the story's
    harmful call run, so its absence above is the monitor's doing."""
    scenario = generate(kind, "chain", GRAPH_SEEDS[0])
    outcome, _, _, _ = play_graph(scenario, wiring, monitor=False, record=False)
    assert outcome.harm, outcome


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_run_is_the_same_story_every_time() -> None:
    scenario = lambda: generate("fanout_storm", "noisy", GRAPH_SEEDS[0])  # noqa: E731
    first, sent1, _, _ = play_graph(scenario(), "watcher", record=False)
    again, sent2, _, _ = play_graph(scenario(), "watcher", record=False)
    assert [s.message.content for s in sent1] == [s.message.content for s in sent2]
    assert (first.flagged, first.verdict) == (again.flagged, again.verdict)
