"""``Turns``: one holder at a time among threads and event-loop tasks, never blocking a loop.

Generated: how many threads and tasks, how often each takes its turn, where holders
suspend (``await``) or sleep while holding, tasks cancelled while they wait. The oracle is a
counter of holders inside, checked at every step of a holder: it must never exceed one;
every turn taken is given back (no waiter left behind, the lock free at the end).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin.langgraph._causal import Turns


@given(
    threads=st.integers(0, 3),
    tasks=st.integers(1, 6),
    rounds=st.integers(1, 4),
    cancel=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None)
def test_threads_and_tasks_take_turns_one_at_a_time(
    threads: int, tasks: int, rounds: int, cancel: int, seed: int
) -> None:
    turns = Turns()
    inside = [0]
    worst = [0]
    guard = threading.Lock()
    taken = [0]

    def enter() -> None:
        with guard:
            inside[0] += 1
            worst[0] = max(worst[0], inside[0])
            taken[0] += 1

    def leave() -> None:
        with guard:
            inside[0] -= 1

    def thread_body(k: int) -> None:
        rng = random.Random(seed * 31 + k)
        for _ in range(rounds):
            with turns:
                enter()
                with turns:  # re-entrant for its holder
                    time.sleep(rng.random() / 2000)
                leave()

    async def task_body(k: int) -> None:
        rng = random.Random(seed * 17 + k)
        for _ in range(rounds):
            async with turns:
                enter()
                try:
                    for _ in range(rng.randrange(3)):
                        await asyncio.sleep(0)  # holds its turn across awaits
                    async with turns:
                        await asyncio.sleep(rng.random() / 2000)
                finally:  # (cancelled while holding: the turn is given back too)
                    leave()

    async def main() -> None:
        running = [asyncio.ensure_future(task_body(k)) for k in range(tasks)]
        await asyncio.sleep(0)
        for t in running[:cancel]:
            t.cancel()  # a task cancelled, maybe while it waits for its turn
        await asyncio.gather(*running, return_exceptions=True)

    workers = [threading.Thread(target=thread_body, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    asyncio.run(main())
    for w in workers:
        w.join(timeout=30)
    assert worst[0] == 1
    assert inside[0] == 0
    assert taken[0] >= threads * rounds
    assert "held=False, waiting=0" in repr(turns)  # nothing left holding or waiting
    with turns:  # and it can be taken again
        pass


def test_a_waiting_task_does_not_block_its_loop() -> None:
    # a thread holds the turn; a task waiting for it leaves the loop free to run others
    turns = Turns()
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with turns:
            held.set()
            release.wait(10)

    async def main() -> list[str]:
        order: list[str] = []

        async def waiter() -> None:
            async with turns:
                order.append("waiter")

        async def other() -> None:
            for _ in range(5):
                await asyncio.sleep(0.001)
            order.append("other")
            release.set()

        await asyncio.gather(waiter(), other())
        return order

    t = threading.Thread(target=holder)
    t.start()
    held.wait(10)
    assert asyncio.run(main()) == ["other", "waiter"]
    t.join(10)
