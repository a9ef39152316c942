"""Storms: too many messages, too many recipients, or too much text in a time window."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from ._signals import Alarm, Evidence, Observed, Tracker, distinct


class Storms:
    """Trip when, within any ``window`` seconds of one scope:

    - more than ``rate`` messages are sent (a runaway loop, agents spawning agents);
    - one sender writes to more than ``fan_out`` distinct recipients (a broadcast storm);
    - more than ``volume`` characters are sent (a few agents pasting ever larger context).

    Defaults are for LLM agents, where a message costs at least a model call: 100 messages
    in 10 s (10 a second, sustained), 20 distinct recipients per sender (a supervisor with
    a large team dispatching once), 400,000 characters (about 100k tokens). A bounded
    map-reduce (one supervisor, 5 workers, 5 answers) is far below each; heartbeats at a
    steady period only count in the window they fall in.

    ``clock`` returns seconds (``time.monotonic`` by default); inject one in tests or to
    measure in another unit (steps, for instance). Each condition reports once and stays
    quiet for one ``window`` after it (the breaker has been told). Windows are sliding,
    kept as bounded deques: at most ``rate + 1`` messages and, per sender, ``fan_out + 1``
    recipients, so the volume is summed over the last ``rate + 1`` messages at most.
    """

    name = "storms"

    def __init__(
        self,
        rate: int = 100,
        window: float = 10.0,
        fan_out: int = 20,
        volume: int = 400_000,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 1 or window <= 0 or fan_out < 1 or volume < 1:
            raise ValueError(
                "Storms: expected rate, fan_out and volume >= 1 and window > 0, got "
                f"rate={rate}, window={window}, fan_out={fan_out}, volume={volume}"
            )
        self.rate = rate
        self.window = window
        self.fan_out = fan_out
        self.volume = volume
        self.clock = clock

    def track(self) -> Tracker:
        return _StormTracker(self)


class _Sender:
    __slots__ = ("last", "quiet_until", "recipients")

    def __init__(self) -> None:
        self.recipients: OrderedDict[str, tuple[float, Evidence]] = OrderedDict()
        self.last = 0.0
        self.quiet_until = float("-inf")


class _StormTracker:
    __slots__ = ("_chars", "_rate_quiet", "_recent", "_senders", "_signal", "_volume_quiet")

    def __init__(self, signal: Storms) -> None:
        self._signal = signal
        self._recent: deque[tuple[float, int, Evidence]] = deque()
        self._chars = 0
        self._senders: OrderedDict[str, _Sender] = OrderedDict()
        self._rate_quiet = float("-inf")
        self._volume_quiet = float("-inf")

    def observe(self, seen: Observed) -> Alarm | None:
        signal = self._signal
        now = signal.clock()
        since = now - signal.window
        message = seen.message

        # Rate and volume: the scope's messages in the window.
        recent = self._recent
        size = len(message.content)
        recent.append((now, size, seen.evidence))
        self._chars += size
        while recent and (recent[0][0] <= since or len(recent) > signal.rate + 1):
            self._chars -= recent.popleft()[1]

        # Fan-out: each sender's distinct recipients in the window. Senders silent for a
        # whole window are dropped, so the map holds only the window's senders.
        senders = self._senders
        while senders and next(iter(senders.values())).last <= since:
            senders.popitem(last=False)
        sender = senders.pop(message.sender, None) or _Sender()
        senders[message.sender] = sender
        sender.last = now
        recipients = sender.recipients
        recipients.pop(message.recipient, None)
        recipients[message.recipient] = (now, seen.evidence)
        while recipients and next(iter(recipients.values()))[0] <= since:
            recipients.popitem(last=False)
        if len(recipients) > signal.fan_out + 1:
            recipients.popitem(last=False)

        if len(recipients) > signal.fan_out and now >= sender.quiet_until:
            sender.quiet_until = now + signal.window
            return Alarm(
                signal=self.name,
                scope=seen.scope,
                agents=(message.sender, *recipients),
                reason=(
                    f"fan-out storm: {message.sender} sent to more than {signal.fan_out} "
                    f"distinct agents within {signal.window:g} s (limit {signal.fan_out})"
                ),
                evidence=tuple(e for _, e in recipients.values()),
                at_message=seen.index,
            )
        if len(recent) > signal.rate and now >= self._rate_quiet:
            self._rate_quiet = now + signal.window
            return self._alarm(
                seen,
                f"message storm: more than {signal.rate} messages within "
                f"{signal.window:g} s (limit {signal.rate})",
            )
        if self._chars > signal.volume and now >= self._volume_quiet:
            self._volume_quiet = now + signal.window
            return self._alarm(
                seen,
                f"volume storm: {self._chars:,} characters sent within {signal.window:g} s "
                f"(limit {signal.volume:,})",
            )
        return None

    def _alarm(self, seen: Observed, reason: str) -> Alarm:
        evidence = tuple(e for _, _, e in self._recent)
        senders = distinct(e.message.sender for e in evidence)
        return Alarm(
            signal=self.name,
            scope=seen.scope,
            agents=senders,
            reason=f"{reason}; senders: {', '.join(senders)}",
            evidence=evidence,
            at_message=seen.index,
        )

    @property
    def name(self) -> str:
        return self._signal.name
