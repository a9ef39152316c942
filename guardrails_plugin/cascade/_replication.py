"""Replication: one payload, lightly reworded, forwarded from agent to agent."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ._signals import Alarm, Evidence, Observed, Tracker, chain
from ._sketch import Sketcher


class Replication:
    """Trip when a near-duplicate of a message has been forwarded by ``hops`` distinct
    senders in a chain: A -> B, then B -> C with nearly the same text, then C -> D.

    "Nearly the same" is an estimated Jaccard similarity of at least ``threshold`` between
    the texts' ``shingle``-byte shingles (lowercased, whitespace collapsed), so a payload
    survives small rewordings, added greetings or re-wrapping. Each scope keeps its last
    ``memory`` messages of at least ``min_chars`` characters in a locality-sensitive hash
    index (MinHash LSH: the sketch cut into bands, one bucket table per band); a new message from S continues the longest chain among its near-duplicates that
    were *sent to S* (S received it, S passes it on). A chain reports once; its later hops
    do not report again.

    Defaults: ``num_perm=64`` (estimates within about ±0.06 of the true similarity, at a
    sketch cost of ~50-70 µs for a 1 kB message; 128 doubles the permutation work for
    little gain at this threshold), ``shingle=5`` bytes, ``threshold=0.7``. Status pings
    ("status: ok, step 12") are shorter than ``min_chars`` (40) and ignored: near-identical
    by nature, they carry no instruction to spread; and two agents exchanging anything can
    never make three distinct senders. A relay of an unchanged document through three agents
    does trip: to the detector it *is* a payload travelling hop to hop; raise ``hops`` for
    pipelines built that way.
    """

    name = "replication"

    def __init__(
        self,
        threshold: float = 0.7,
        hops: int = 3,
        num_perm: int = 64,
        shingle: int = 5,
        *,
        min_chars: int = 40,
        memory: int = 256,
        sketcher: Sketcher | None = None,
    ) -> None:
        if not 0.0 < threshold < 1.0 or hops < 2 or memory < 1:
            raise ValueError(
                "Replication: expected 0 < threshold < 1, hops >= 2 and memory >= 1, got "
                f"threshold={threshold}, hops={hops}, memory={memory}"
            )
        self.threshold = threshold
        self.hops = hops
        self.min_chars = min_chars
        self.memory = memory
        self.sketcher = sketcher or Sketcher(num_perm, shingle)
        if self.sketcher.num_perm != num_perm or self.sketcher.shingle != shingle:
            num_perm, shingle = self.sketcher.num_perm, self.sketcher.shingle
        self.num_perm = num_perm
        self.shingle = shingle
        # Banding: rows of 4 (num_perm // 4 bands). datasketch's own choice for 0.7 and 64
        # permutations (8 x 8) minimises false positives and negatives together, and finds
        # a pair at J = 0.70 only 38% of the time (57% at 0.75): an injected instruction
        # reworded a little more than usual slipped through. With 16 x 4 a pair at
        # J = 0.7 is a candidate 98.8% of the time; candidates are checked against the
        # exact threshold anyway, so the looser banding costs a few more comparisons only.
        rows = 4 if num_perm % 4 == 0 else 2
        self._bands: tuple[int, int] = (num_perm // rows, rows)

    def track(self) -> Tracker:
        """A fresh tracker of this signal's per-run state."""
        return _ReplicationTracker(self)

    def band_keys(self, sketch: Any) -> tuple[bytes, ...]:
        """The sketch's LSH keys: its min-hashes cut into ``bands`` runs of ``rows``."""
        bands, rows = self._bands
        values = sketch.hashvalues[: bands * rows].reshape(bands, rows)
        return tuple(band.tobytes() for band in values)


@dataclass(slots=True)
class _Entry:
    recipient: str
    sketch: Any
    chain: tuple[Evidence, ...]  # one message per distinct sender, oldest first
    reported: bool
    keys: tuple[bytes, ...] = ()  # its LSH band keys, to take it out of the buckets


class _ReplicationTracker:
    """The scope's last ``memory`` messages and an LSH index over them: per band, a table
    from band key to the entries sharing it. (datasketch's ``MinHashLSH`` does the same,
    but computes every key twice per message, for query and insert: half this signal's
    cost.)"""

    __slots__ = ("_buckets", "_entries", "_next", "_signal")

    def __init__(self, signal: Replication) -> None:
        self._signal = signal
        self._buckets: list[dict[bytes, set[int]]] = [{} for _ in range(signal._bands[0])]
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next = 0

    def _candidates(self, keys: tuple[bytes, ...]) -> set[int]:
        found: set[int] = set()
        for table, key in zip(self._buckets, keys, strict=True):
            hit = table.get(key)
            if hit:
                found |= hit
        return found

    def _insert(self, at: int, keys: tuple[bytes, ...]) -> None:
        for table, key in zip(self._buckets, keys, strict=True):
            hit = table.get(key)
            if hit is None:
                table[key] = {at}
            else:
                hit.add(at)

    def _remove(self, at: int, keys: tuple[bytes, ...]) -> None:
        for table, key in zip(self._buckets, keys, strict=True):
            hit = table.get(key)
            if hit is not None:
                hit.discard(at)
                if not hit:
                    del table[key]

    def observe(self, seen: Observed) -> Alarm | None:
        signal = self._signal
        message = seen.message
        if len(message.content) < signal.min_chars:
            return None
        sketch = seen.sketch(signal.sketcher)
        keys = signal.band_keys(sketch)
        best: _Entry | None = None
        best_similarity = 0.0
        resent = -1  # an entry of this very hop (same sender, same recipient)
        for key in sorted(self._candidates(keys)):
            entry = self._entries[key]
            if (
                entry.recipient == message.recipient
                and entry.chain[-1].message.sender == message.sender
            ):
                resent = key
            if entry.recipient != message.sender:
                continue
            similarity = float(sketch.jaccard(entry.sketch))
            if similarity < signal.threshold:
                continue
            if best is None or len(entry.chain) > len(best.chain):
                best, best_similarity = entry, similarity

        if best is None:
            links: tuple[Evidence, ...] = (seen.evidence,)
            reported = False
        elif any(e.message.sender == message.sender for e in best.chain):
            links, reported = best.chain, best.reported  # back to an agent that sent it
        else:
            links, reported = (*best.chain, seen.evidence), best.reported
        alarm = None
        if len(links) >= signal.hops and not reported:
            reported = True
            agents = (*(e.message.sender for e in links), message.recipient)
            alarm = Alarm(
                signal=self.name,
                scope=seen.scope,
                agents=agents,
                reason=(
                    f"the same payload travelled {chain(agents)}: forwarded by "
                    f"{len(links)} agents in a row, lightly reworded (similarity "
                    f"{best_similarity:.0%} at the last hop, threshold "
                    f"{signal.threshold:.0%}); possible self-replicating instruction"
                ),
                evidence=links,
                at_message=seen.index,
            )

        entry = _Entry(message.recipient, sketch, links, reported, keys)
        if resent >= 0 and _senders(self._entries[resent].chain) == _senders(links):
            # The same hop again (a resend): refresh it instead of filling memory with copies.
            self._remove(resent, self._entries[resent].keys)
            self._insert(resent, keys)
            self._entries[resent] = entry
            self._entries.move_to_end(resent)
        else:
            at = self._next
            self._next += 1
            self._insert(at, keys)
            self._entries[at] = entry
            if len(self._entries) > signal.memory:
                old, gone = self._entries.popitem(last=False)
                self._remove(old, gone.keys)
        return alarm

    @property
    def name(self) -> str:
        return self._signal.name


def _senders(links: tuple[Evidence, ...]) -> tuple[str, ...]:
    return tuple(e.message.sender for e in links)
