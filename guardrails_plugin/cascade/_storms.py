"""Storms: messages multiplying generation after generation (and, optionally, in a time window)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from ._signals import Alarm, Evidence, Observed, Tracker, distinct

_PERIODS = 4  # growth every generation, every 2nd, 3rd or 4th
_GENERATIONS = 2 * _PERIODS + 1  # generation counters kept per tree
_NTH = {2: "second", 3: "third", 4: "fourth"}
_ACTS = 256  # activations of unknown parent whose deliveries a tree counts


class Storms:
    """Trip when messages multiply: a storm of hand-offs, fan-outs or agents spawning agents.

    **Logical time by default.** What is counted is deliveries (``packets``: every ``Send``
    of a fan-out counts) per *generation* of the run's causal tree (``generation``: depth
    from the run's input), per tree (the root its ``parent`` chain leads to). When the
    reporter does not know generations, deliveries per superstep (``step``) stand in for
    them. No wall clock: a fast team (cached nodes, tool-only agents, scripted tests) is
    not a storm, and a slow storm is one.

    - **Growth**: generation ``g`` holds at least ``growth`` times the deliveries of
      generation ``g - p``, which itself held ``growth`` times those of ``g - 2p``, for a
      period ``p`` of 1 to 4, and at least ``min_packets`` (8); ``g`` is also ``growth``
      times wider than any generation since the frontier last *collapsed*, and it did not
      collapse between ``g - 2p`` and ``g``. A generation collapses when it holds less than
      1/``growth``**2 of the widest before it (a reduce, a merge, a planner
      collecting every answer before its next batch), or when, after the first
      multiplication, it falls back to the width of ``g - 2p`` (a split gathered back).
      Fan-outs whose workers fan out again, or agents spawning agents, multiply every
      generation (``p = 1``); a coordinator re-fanning each worker's answer every second
      (out, back); a worker handing to a sub-worker, or answers passing a reviewer, before
      the coordinator re-fans, every third or fourth. A storm whose deliveries hold their
      width between multiplications (every branch carries on) matches a shorter period
      too, so periods up to 7 are caught. Bounded teams stay quiet: a map-reduce of any
      width (one multiplication, then a reduce), phases of different widths (each funnelled
      before the next), heartbeats and busy teams (under 8 deliveries a generation), a
      pipeline whose stages split and merge (scatter, gather).
    - **Self-reinforcing**: the growth must also repeat itself. A fan-out is an activation
      sending 2 deliveries or more. Either one sender fanned out in ``(g - p, g]``, in
      ``(g - 2p, g - p]`` and as far before that again, ``growth`` times wider each time (a
      coordinator collecting the answers to its own fan-out and fanning out wider, every
      round of its cycle), or 2 fan-outs of ``(g - 2p, g - p]`` were each followed, in
      ``(g - p, g]``, by a fan-out in their own branch (the nearest fan-out among their
      descendants: workers fanning out to workers, agents spawning agents, a coordinator
      re-fanning each answer). A finite pipeline is neither: a planner that collects 3
      answers and sends 8 items, each split in 2 (3 -> 8 -> 16), multiplied twice, but by
      two stages each fanning out once (the planner's batch follows one branch of the stage
      before; the splitting stage never fanned out before).
    - **In time**: a storm trips in the generation of its 3rd multiplying fan-out, when
      that generation's deliveries reach ``growth`` times the 2nd's (and 8): before any
      recipient of the 3rd fan-out acts, when the reporter tells a step's deliveries before
      its recipients run (a harness checking a step's messages before it delivers them;
      ``guard_node`` and ``CascadeWatcher``, whose recipients of one step tell its packets
      and pass their holds in turn).
    - **Width**: one generation of one tree holds more than ``max_packets`` deliveries
      (1,000: a fan-out no team means).

    A tree is what one activation started by the run's input sent (its sender and
    ``step``), and everything caused by it; a message whose tree is unknown (no parent
    known, generation above 0) counts in a shared tree. Each tree reports once per
    condition. State: the last ``memory`` trees (each at most ``9`` generation counters)
    and, for the last ``4 * memory`` message ids, the tree and what the activations the
    message started sent (a few counters and the nearest fan-out above them, no chain);
    per tree, the fan-outs of its last 18 generations (the widest per sender, and how many
    a fan-out in their branch followed): O(1) per message (the growth test reads the 9
    counters only once a generation holds ``min_packets``, the fan-outs only for a growth).

    **What it cannot see.** A planner whose batches climb ``growth`` times twice, at
    equal distances in generations, looks like a coordinator collecting its answers and
    re-fanning wider, and trips; so do two stages in a row whose every item splits again
    (a split of a split: agents spawning agents). A storm whose multiplications are made
    by collecting agents taking turns (one collects and fans out, the next collects those
    answers and fans out, then the first again) is seen only at the first agent's 3rd
    fan-out, not the storm's 3rd. By supersteps (no parents known), branches cannot be
    told apart: 2 fan-outs in each period count as fan-outs of fan-outs, so a planner's
    batch relayed through desks and then split trips there. A storm whose frontier falls back to its
    starting width between multiplications (half its branches dying after a fan-out of
    two), or below 1/``growth``**2 of its widest, looks bounded and is seen only
    at ``max_packets``; so are storms whose period is above 4 and whose width does not hold
    between multiplications, or above 7, and storms multiplying by less than ``growth``
    per period. Generations come from the reporter: without them (supersteps stand in)
    every tree of the run shares the counts.

    **Wall-clock window** (optional: ``window=10.0`` seconds, the previous behaviour):
    also trip when, within any ``window`` seconds, more than ``rate`` messages are sent
    (default 100), one sender writes to more than ``fan_out`` distinct recipients (20), or
    more than ``volume`` characters are sent (400,000). ``clock`` returns seconds.
    """

    name = "storms"

    def __init__(
        self,
        growth: float = 1.5,
        min_packets: int = 8,
        max_packets: int = 1_000,
        *,
        memory: int = 64,
        window: float | None = None,
        rate: int = 100,
        fan_out: int = 20,
        volume: int = 400_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if growth <= 1.0 or min_packets < 1 or max_packets < 1 or memory < 1:
            raise ValueError(
                "Storms: expected growth > 1 and min_packets, max_packets, memory >= 1, got "
                f"growth={growth}, min_packets={min_packets}, max_packets={max_packets}, "
                f"memory={memory}"
            )
        if (window is not None and not window > 0) or rate < 1 or fan_out < 1 or volume < 1:
            raise ValueError(
                "Storms: expected rate, fan_out and volume >= 1 and window > 0, got "
                f"rate={rate}, window={window}, fan_out={fan_out}, volume={volume}"
            )
        self.growth = growth
        self.min_packets = min_packets
        self.max_packets = max_packets
        self.memory = memory
        self.window = window
        self.rate = rate
        self.fan_out = fan_out
        self.volume = volume
        self.clock = clock

    def __repr__(self) -> str:
        more = "" if self.window is None else f", window={self.window:g}"
        return f"Storms(growth={self.growth:g}, min_packets={self.min_packets}{more})"

    def track(self) -> Tracker:
        """A fresh tracker of this signal's per-run state."""
        return _StormTracker(self)


class _Tree:
    __slots__ = ("acts", "counts", "evidence", "fanout", "fans", "repeated", "reported")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.evidence: deque[Evidence] = deque(maxlen=16)
        self.reported: set[str] = set()
        # Fan-outs (activations that sent 2 deliveries or more), per generation of the
        # deliveries they sent: ``fanout``, the widest per sender;
        # ``repeated``, per generation and the generation of the one that followed, how many
        # of them a fan-out in their own branch followed (the nearest among their
        # descendants).
        self.fanout: dict[int, dict[str, int]] = {}
        self.fans: dict[int, int] = {}  # how many, per generation (or superstep)
        self.repeated: dict[tuple[int, int], int] = {}
        # the activations of unknown parent: their sender and generation stand for them
        self.acts: dict[tuple[str, int], list[Any]] = {}

    def fanned(self, entry: list[Any], sender: str, level: int) -> None:
        """An activation of ``sender`` (one that ``entry``'s delivery started) has just
        sent its second delivery, of generation ``level``: a fan-out. The nearest fan-out
        above it in its branch is followed by one more (credited at most once per
        activation that fan-out's delivery started)."""
        fans = self.fans
        fans[level] = fans.get(level, 0) + 1
        if len(fans) > 2 * _GENERATIONS:
            del fans[min(fans)]
        if entry[_FAN] is None:  # (else: another activation the same packets started)
            entry[_FAN] = [level, 0, entry[_PACKETS]]
        up = entry[_UP]
        if up is not None and up[1] < up[2]:
            up[1] += 1
            repeated = self.repeated
            key = (up[0], level)
            repeated[key] = repeated.get(key, 0) + 1
            if len(repeated) > 4 * _GENERATIONS:
                del repeated[min(repeated)]


# A delivery's entry: [its tree, deliveries the activations it started sent, its packets,
# their fan-out (None, or [generation, fan-outs that followed it, packets]), the nearest
# fan-out above it, the entry of its parent until read].
_ROOT, _SENT, _PACKETS, _FAN, _UP, _SRC = range(6)


class _StormTracker:
    __slots__ = (
        "_max_packets",
        "_min_packets",
        "_newest",
        "_roots",
        "_signal",
        "_trees",
        "_window",
    )

    def __init__(self, signal: Storms) -> None:
        self._signal = signal
        self._min_packets = signal.min_packets
        self._max_packets = signal.max_packets
        self._trees: OrderedDict[str, _Tree] = OrderedDict()
        self._newest: str | None = None  # the key of the last tree of ``_trees``
        # message id -> its entry (below ``_Tree``)
        self._roots: OrderedDict[str, list[Any]] = OrderedDict()
        self._window = _WindowTracker(signal) if signal.window is not None else None

    @property
    def name(self) -> str:
        return self._signal.name

    def observe(self, seen: Observed) -> Alarm | None:
        # The logical conditions first, then (when none tripped) the wall-clock window's.
        m = seen.message
        level = m.generation
        if level is not None:
            parent = m.parent
            # the activation that sends this message: the one ``parent`` started
            entry = self._roots.get(parent) if parent is not None else None
            if entry is not None:
                root = entry[_ROOT]
                src = entry[_SRC]
                if src is not None:
                    # the first message of that activation: its sender's fan-out is known
                    entry[_UP] = src[_FAN] or src[_UP]
                    entry[_SRC] = None
            elif parent is None and level == 0:
                # a new tree: what one activation started by the run's input sends (its
                # sender at its step), else this message
                root = f"{m.sender}@{m.step}" if m.step is not None else m.id or "-"
            else:
                root = "-"
        elif m.step is not None:
            level, root, entry = m.step, "-", None
        else:
            return None if self._window is None else self._window.observe(seen)
        trees = self._trees
        tree = trees.get(root)
        if tree is None:
            tree = trees[root] = _Tree()
            if len(trees) > self._signal.memory:
                trees.popitem(last=False)
            self._newest = root
        elif root != self._newest:
            trees.move_to_end(root)
            self._newest = root
        counts = tree.counts
        packets = m.packets
        n = packets if packets > 1 else 1
        count = counts[level] = counts.get(level, 0) + n
        if entry is None:
            acts = tree.acts
            key = (m.sender, level)
            entry = acts.get(key)
            if entry is None:
                entry = acts[key] = [root, 0, 1, None, None, None]
                if len(acts) > _ACTS:
                    del acts[next(iter(acts))]
        # a fan-out: an activation sending its 2nd delivery (a delivery of ``c`` packets
        # started ``c`` activations: those that sent more than one)
        sent = entry[_SENT]
        entry[_SENT] = sent + n
        c = entry[_PACKETS]
        if sent < 2 * c:
            # (each of them assumed to send one delivery at least)
            for _ in range(max(0, min(c, sent - c)), min(c, sent + n - c)):
                tree.fanned(entry, m.sender, level)
        if entry[_FAN] is not None:
            # the widest fan-out per generation and sender (packets: per activation)
            fanout = tree.fanout
            senders = fanout.get(level)
            if senders is None:
                senders = fanout[level] = {}
                if len(fanout) > 2 * _GENERATIONS:
                    del fanout[min(fanout)]
            wide = -(-(sent + n) // c)
            if wide > senders.get(m.sender, 0):
                senders[m.sender] = wide
        if m.id is not None and m.generation is not None:
            roots = self._roots
            roots[m.id] = [root, 0, n, None, None, entry]
            if len(roots) > 4 * self._signal.memory:
                roots.popitem(last=False)
        if len(counts) > _GENERATIONS:
            del counts[min(counts)]
        tree.evidence.append(seen.evidence)
        if count < self._min_packets and count <= self._max_packets:
            # neither condition can hold (the common case: a quiet generation)
            return None if self._window is None else self._window.observe(seen)
        alarm = self._logical(seen, tree, level, count)
        if alarm is None and self._window is not None:
            alarm = self._window.observe(seen)
        return alarm

    def _logical(self, seen: Observed, tree: _Tree, level: int, count: int) -> Alarm | None:
        """The logical conditions, for a generation (or superstep) ``level`` of ``tree``
        that holds ``count`` deliveries now."""
        signal = self._signal
        counts = tree.counts
        unit = "generation" if seen.message.generation is not None else "superstep"
        if count > signal.max_packets and "width" not in tree.reported:
            tree.reported.add("width")
            return self._alarm(
                seen,
                tree,
                f"message storm: {count} deliveries in one {unit} ({unit} {level}) of one "
                f"causal tree (limit {signal.max_packets})",
            )
        if count < signal.min_packets or "growth" in tree.reported:
            return None
        # Generation ``level`` multiplies ``level - every``, which multiplied
        # ``level - 2 * every``, for a period ``every`` of 1 to _PERIODS (three counters: the
        # common case ends here), is wider than ``growth`` times the widest generation since
        # the frontier last collapsed (one below 1/growth**2 of the widest before it: a
        # reduce, a merge, a planner collecting its answers), and no generation between
        # collapsed or, after the first multiplication, fell back to where it started (a
        # split gathered back).
        growth = signal.growth
        collapse = growth * growth
        widest = -1  # not computed yet
        for every in range(1, _PERIODS + 1):
            start, rise = level - 2 * every, level - every
            earlier = counts.get(start, 0)
            if not earlier:
                continue
            before = counts.get(rise, 0)
            if before < growth * earlier or count < growth * before:
                continue
            if widest < 0:
                widest = 0
                for g in range(level - _GENERATIONS + 1, level):
                    x = counts.get(g, 0)
                    if x * collapse < widest or x > widest:
                        widest = x
                if count < growth * widest:
                    return None
            high = earlier
            for g in range(start + 1, level):
                x = counts.get(g, 0)
                if x * collapse < high or (g > rise and x <= earlier):
                    break
                if x > high:
                    high = x
            else:
                if not _reinforced(tree, growth, start, rise, level, unit == "superstep"):
                    continue
                tree.reported.add("growth")
                step = unit if every == 1 else f"{_NTH[every]} {unit}"
                return self._alarm(
                    seen,
                    tree,
                    f"message storm: deliveries multiply every {step}, {earlier} -> {before} "
                    f"-> {count} so far ({unit}s {start}-{level}; limit x{growth:g} twice in "
                    "a row, no fall in between): agents fan out to agents that fan out again",
                )
        return None

    def _alarm(self, seen: Observed, tree: _Tree, reason: str) -> Alarm:
        evidence = tuple(tree.evidence)
        senders = distinct(e.message.sender for e in evidence)
        return Alarm(
            signal=self.name,
            scope=seen.scope,
            agents=senders,
            reason=f"{reason}; senders: {', '.join(senders)}",
            evidence=evidence,
            at_message=seen.index,
        )


def _reinforced(
    tree: _Tree, growth: float, start: int, rise: int, level: int, superstep: bool
) -> bool:
    """Whether the multiplication from generation ``rise`` to ``level`` repeats the one
    from ``start`` to ``rise``: one sender fanned out in the second, in the first and as
    far before that again, ``growth`` times wider each time (a coordinator collecting the
    answers to its own fan-out and fanning out wider, every round of its own cycle), or 2 fan-outs of the first were each
    followed, in the second, by a fan-out in their own branch (agents spawning agents:
    every branch multiplies again). A finite pipeline's stages each fan out once: a planner collecting
    every answer before its next batch, then that batch's recipients splitting each item,
    is neither (the planner's batch follows one branch of the stage before, and the
    splitting stage never fanned out before). By supersteps (no parents known), a sender's
    activations of one superstep count as one, and 2 fan-outs in each period do."""
    fanout = tree.fanout
    for x2 in range(rise + 1, level + 1):
        for sender, w2 in fanout.get(x2, {}).items():
            for x1 in range(start + 1, rise + 1):
                w1 = fanout.get(x1, {}).get(sender, 0)
                x0 = 2 * x1 - x2
                if w1 and w2 >= growth * w1:
                    w0 = fanout.get(x0, {}).get(sender, 0)
                    if w0 and w1 >= growth * w0:
                        return True
    if superstep:
        # no branches known: 2 fan-outs (senders, per superstep) in each period
        fans = tree.fans
        return (
            sum(fans.get(g, 0) for g in range(start + 1, rise + 1)) >= 2
            and sum(fans.get(g, 0) for g in range(rise + 1, level + 1)) >= 2
        )
    followed = 0
    for (g, then), n in tree.repeated.items():
        if start < g <= rise < then <= level:
            followed += n
    return followed >= 2


class _Sender:
    __slots__ = ("last", "quiet_until", "recipients")

    def __init__(self) -> None:
        self.recipients: OrderedDict[str, tuple[float, Evidence]] = OrderedDict()
        self.last = 0.0
        self.quiet_until = float("-inf")


class _WindowTracker:
    """The wall-clock conditions (``Storms(window=...)``)."""

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
        window = signal.window or 0.0
        now = signal.clock()
        since = now - window
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
            sender.quiet_until = now + window
            return Alarm(
                signal=self._signal.name,
                scope=seen.scope,
                agents=(message.sender, *recipients),
                reason=(
                    f"fan-out storm: {message.sender} sent to more than {signal.fan_out} "
                    f"distinct agents within {window:g} s (limit {signal.fan_out})"
                ),
                evidence=tuple(e for _, e in recipients.values()),
                at_message=seen.index,
            )
        if len(recent) > signal.rate and now >= self._rate_quiet:
            self._rate_quiet = now + window
            return self._alarm(
                seen,
                f"message storm: more than {signal.rate} messages within "
                f"{window:g} s (limit {signal.rate})",
            )
        if self._chars > signal.volume and now >= self._volume_quiet:
            self._volume_quiet = now + window
            return self._alarm(
                seen,
                f"volume storm: {self._chars:,} characters sent within {window:g} s "
                f"(limit {signal.volume:,})",
            )
        return None

    def _alarm(self, seen: Observed, reason: str) -> Alarm:
        evidence = tuple(e for _, _, e in self._recent)
        senders = distinct(e.message.sender for e in evidence)
        return Alarm(
            signal=self._signal.name,
            scope=seen.scope,
            agents=senders,
            reason=f"{reason}; senders: {', '.join(senders)}",
            evidence=evidence,
            at_message=seen.index,
        )
