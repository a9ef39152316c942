"""Cycles: hand-offs going round the same loop while the content stops changing."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from ._signals import Alarm, Evidence, Observed, Tracker, chain, distinct
from ._sketch import Sketcher


class Cycles:
    """Trip when a scope's hand-offs repeat a cycle of up to ``max_length`` agents
    ``repeats`` times in a row and every round after the first brings little new.

    A hand-off is a message whose sender is the previous message's recipient (control passed
    on); a message that is not one breaks every cycle in progress. The message one cycle
    earlier is the one ``L`` messages back, for each cycle length ``L``; a message echoes it
    when both have the same sender and recipient and its *novelty*, ``1 - MinHash Jaccard
    similarity`` of the two texts, is at most ``max_novelty``. Cycle ``L`` trips when
    ``(repeats - 1) * L`` messages in a row echo: a ping-pong A -> B -> A (``L = 2``) with
    ``repeats=3`` trips at its 6th message, a loop A -> B -> C -> A at its 9th.

    Benign traffic left alone, and why:

    - **A review that converges** changes its draft a lot each round (novelty well above
      0.3), then stops; one near-identical closing round ("LGTM", the final draft resent)
      is far from ``repeats - 1`` stale rounds.
    - **Heartbeats and acknowledgements** ("status: ok, step 12") are near-identical by
      nature. Messages shorter than ``min_chars`` (64) carry no payload to loop on, so
      they never count as an echo (and break a run of echoes). Short stuck loops are left
      to ``Storms``, which sees their rate.

    After tripping, the cycle has to go stale ``repeats - 1`` rounds again to trip again.
    Cost per message: at most ``max_length`` sketch comparisons (64 integers each).
    """

    name = "cycles"

    def __init__(
        self,
        max_length: int = 6,
        repeats: int = 3,
        max_novelty: float = 0.3,
        *,
        min_chars: int = 64,
        sketcher: Sketcher | None = None,
    ) -> None:
        if max_length < 1 or repeats < 2 or not 0.0 <= max_novelty <= 1.0:
            raise ValueError(
                "Cycles: expected max_length >= 1, repeats >= 2 and 0 <= max_novelty <= 1, "
                f"got max_length={max_length}, repeats={repeats}, max_novelty={max_novelty}"
            )
        self.max_length = max_length
        self.repeats = repeats
        self.max_novelty = max_novelty
        self.min_chars = min_chars
        self.sketcher = sketcher or Sketcher()

    def track(self) -> Tracker:
        return _CycleTracker(self)


@dataclass(slots=True)
class _Seen:
    sender: str
    recipient: str
    sketch: Any  # MinHash, or None when the message is too short to count
    evidence: Evidence


class _CycleTracker:
    __slots__ = ("_history", "_novelty", "_runs", "_signal")

    def __init__(self, signal: Cycles) -> None:
        self._signal = signal
        # Enough history for the evidence of the longest cycle; comparisons look back at
        # most max_length messages.
        self._history: deque[_Seen] = deque(maxlen=signal.max_length * signal.repeats)
        self._runs = [0] * (signal.max_length + 1)  # echoes in a row, per cycle length
        self._novelty = [0.0] * (signal.max_length + 1)  # the most novel echo of the run

    def observe(self, seen: Observed) -> Alarm | None:
        signal, history, runs = self._signal, self._history, self._runs
        message = seen.message
        long_enough = len(message.content) >= signal.min_chars
        sketch = seen.sketch(signal.sketcher) if long_enough else None
        handoff = not history or history[-1].recipient == message.sender
        tripped = 0
        for length in range(1, min(signal.max_length, len(history)) + 1):
            before = history[-length]
            novelty = 1.0
            if (
                handoff
                and sketch is not None
                and before.sketch is not None
                and before.sender == message.sender
                and before.recipient == message.recipient
            ):
                novelty = 1.0 - float(sketch.jaccard(before.sketch))
            if novelty <= signal.max_novelty:
                self._novelty[length] = (
                    max(self._novelty[length], novelty) if runs[length] else novelty
                )
                runs[length] += 1
                if not tripped and runs[length] >= (signal.repeats - 1) * length:
                    tripped = length
            else:
                runs[length] = 0
        if not handoff:
            # A message that does not continue the chain breaks every cycle (its own
            # comparisons above all failed), including lengths beyond the history so far.
            runs[:] = [0] * len(runs)
        history.append(_Seen(message.sender, message.recipient, sketch, seen.evidence))
        if not tripped:
            return None
        worst = self._novelty[tripped]
        runs[:] = [0] * len(runs)
        rounds = list(history)[-signal.repeats * tripped :]
        loop = [s.sender for s in rounds[-tripped:]]
        return Alarm(
            signal=self.name,
            scope=seen.scope,
            agents=distinct(loop),
            reason=(
                f"hand-offs went round the loop {chain([*loop, loop[0]])} {signal.repeats} "
                f"times in a row, each round after the first at most {worst:.0%} new "
                f"(limit {signal.max_novelty:.0%}): the agents are repeating each other"
            ),
            evidence=tuple(s.evidence for s in rounds),
            at_message=seen.index,
        )

    @property
    def name(self) -> str:
        return self._signal.name
