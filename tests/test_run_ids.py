"""Run ids per root invocation (``root_run``): the most recent run is answered without the
lock, which must never hand one invocation's id to another, whatever the interleaving."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest
from langgraph.runtime import RunControl

from guardrails_plugin.langgraph._where import root_run


def _runtime(control: RunControl, run_id: str | None = None) -> Any:
    return SimpleNamespace(control=control, execution_info=SimpleNamespace(run_id=run_id))


@pytest.mark.parametrize("seed", range(5))
def test_interleaved_invocations_keep_their_own_run_ids(seed: int) -> None:
    rng = random.Random(seed)
    controls = [RunControl() for _ in range(rng.randint(2, 6))]
    ids: dict[int, str] = {}
    for _ in range(300):
        i = rng.randrange(len(controls))
        for _ in range(rng.randint(1, 3)):  # a run asks again while it is the most recent
            got = root_run({}, _runtime(controls[i]))
            assert got is not None
            assert ids.setdefault(i, got) == got
    assert len(set(ids.values())) == len(ids)  # never one id for two invocations


def test_the_callers_run_id_wins_and_stays_for_its_subgraphs() -> None:
    mine, other = RunControl(), RunControl()
    first = root_run({}, _runtime(other))
    assert root_run({}, _runtime(mine, "caller-1")) == "caller-1"
    assert root_run({}, _runtime(mine)) == "caller-1"  # (a subgraph: no run id shown)
    assert root_run({}, _runtime(other)) == first
    assert root_run({}, _runtime(mine)) == "caller-1"
