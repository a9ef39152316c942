"""``CascadeWatcher``'s bookkeeping: the per-graph step lists against the plain version (prune
every other step, rebuild the list on every add) on generated task sequences, and the run-id
keys against the run ids' own equality."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin.langgraph._watch import _Graph, _key, _Task


def reference_add(steps: dict[int, list[_Task]], task: _Task) -> list[_Task]:
    """The step lists as first written: prune and rebuild on every add, return a copy."""
    for old in [s for s in steps if s < task.step - 1 or s > task.step]:
        del steps[old]
    here = steps.setdefault(task.step, [])
    here[:] = [t for t in here if t.id != task.id]
    here.append(task)
    return list(steps.get(task.step - 1, ()))


tasks = st.lists(
    st.tuples(st.sampled_from("abcde"), st.integers(min_value=-1, max_value=6)), max_size=40
)


@settings(max_examples=300, deadline=None)
@given(tasks)
def test_step_lists_match_the_plain_version(sequence: list[tuple[str, int]]) -> None:
    graph = _Graph()
    steps: dict[int, list[_Task]] = {}
    for tid, step in sequence:
        task = _Task(tid, "n", "", step, True)
        before = graph.add(task)
        assert list(before) == reference_add(steps, task)
        assert {s: list(ts) for s, ts in graph.steps.items()} == steps


others: st.SearchStrategy[Any] = st.one_of(
    st.integers(min_value=0, max_value=2**128 - 1), st.text(max_size=8), st.none()
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.uuids(), others), min_size=2, max_size=6), st.data())
def test_run_keys_are_equal_exactly_when_the_run_ids_are(ids: list[Any], data: Any) -> None:
    # an integer equal to a UUID's own integer is another run id, and stays apart
    extra = data.draw(st.sampled_from(ids))
    if isinstance(extra, UUID):
        ids.append(extra.int)
        ids.append(UUID(int=extra.int))  # an equal UUID, another object
    for a in ids:
        for b in ids:
            same = a == b and isinstance(a, UUID) == isinstance(b, UUID)
            assert (_key(a) == _key(b)) == same
            if same:
                assert hash(_key(a)) == hash(_key(b))
