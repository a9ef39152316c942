"""The verifier: does the stored chain hold, and if not, what was done to it and where.

Why this file is long: the diagnosis (edited, removed, inserted, reordered, pruned, a witness
outside the checked range) is one algorithm over one summary of the chain; split up, each
part would need the whole summary's invariants restated.

Pure logic over a sink's ``Snapshot`` (entries in storage order, the anchor, the head the
sink keeps). A first pass streams the entries in constant memory and accepts the common
case: every record follows its predecessor (``seq`` + 1, ``prev`` = its hash) and matches
its own hash. Only when that fails does a second pass hold a small summary of every record
(its number, links and where it is stored; the record itself only when its fields do not
give its hash) and work out what happened:

- it follows the ``prev`` links from the anchor: the order the writer chained the records
  in, whatever order they are stored in;
- a record on that chain whose fields do not give its hash was **edited** (or, when
  renumbering it alone restores its hash, **reordered**: its ``seq`` was changed);
- where the links stop and resume at the next record number, the record before the break
  was **edited** and its hash recomputed; where they resume further on, the records in
  between were **removed**;
- records the chain never reaches were **inserted** (forged, or copies);
- records on the chain stored out of order (outside the longest run stored in chain
  order) were **reordered**;
- records that cannot be parsed, or hold a field a record does not have, are
  **unreadable**; a last line cut short by a crash is **truncated** (reported, not counted,
  and not a sign of tampering: ``ok`` stays true);
- records stored before the anchor (a JSON Lines prune cut short leaves them) are listed
  by ``iter`` like any other, so they must chain, the last into the anchor: one that does
  not was **inserted**, or **edited** if it sits where a pruned record should.

A chain that starts after an anchor (older records pruned) must say so itself: every prune
appends, before it removes anything, a ``prune`` record naming the anchor it cuts at. An
anchor that no prune record on the chain reaches (at or past it) means records were
**removed** and the anchor moved behind the log's back; one that differs from the hash its
prune record names was **edited**. A witness older than the anchor can only be checked when
the records it names are still stored (a prune cut short) or a prune record names it;
otherwise it is **unchecked**, which is not ``ok`` either: the caller asked for a check that
could not be made.

What it cannot see: a chain rewritten consistently from some record to the end (recompute
every later hash), records removed from the end (for JSON Lines; SQLite keeps the head in
its meta table, which the remover would have to rewrite too), or a log that was replaced
whole. Keep ``AuditLog.head()`` somewhere else (a ticket, another machine) and pass it to
``verify(witness=...)`` to close those gaps up to that record.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ._base import Entry, Link, Snapshot, pruned_to
from ._records import AuditRecord, record_hash

__all__ = ["Problem", "ProblemKind", "VerifyReport", "verify_snapshot"]

ProblemKind = Literal[
    "edited", "removed", "inserted", "reordered", "unreadable", "truncated", "unchecked"
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the log: which record (``seq``, when known), where it is stored
    (``file:line`` for JSON Lines, ``file, seq N`` for SQLite), what kind, and the evidence."""

    seq: int | None
    where: str
    kind: ProblemKind
    detail: str

    def __str__(self) -> str:
        seq = "seq ?" if self.seq is None else f"seq {self.seq}"
        return f"{seq}: {self.kind} at {self.where}: {self.detail}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What ``AuditLog.verify`` found. ``ok`` is true when nothing was tampered with (a
    truncated last line, left by a crash, is reported but does not count against it)."""

    name: str
    records: int
    problems: list[Problem] = field(default_factory=list)
    anchor: Link = (0, "")
    last: Link | None = None
    """The last record of the chain: ``(seq, hash)``."""
    skipped: int = 0
    """Records stored before the anchor (pruned, not yet deleted): checked only to chain
    into it, not counted in ``records``."""

    @property
    def ok(self) -> bool:
        """Whether the log verified: no problem but a truncated tail (a crash mid-write)."""
        return all(p.kind == "truncated" for p in self.problems)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        span = ""
        if self.last is not None and self.records:
            span = f" (seq {self.anchor[0] + 1} to {self.last[0]})"
        start = (
            "chained from the start"
            if self.anchor[0] == 0
            else f"chained from the anchor after seq {self.anchor[0]} (older records pruned)"
        )
        lines: list[str] = []
        if self.ok:
            lines.append(f"{self.name}: ok, {_records(self.records)}{span}, {start}")
        else:
            bad = [p for p in self.problems if p.kind != "truncated"]
            lines.append(
                f"{self.name}: NOT OK, {len(bad)} problem{'s' * (len(bad) != 1)} "
                f"in {_records(self.records)}{span}, {start}"
            )
        for p in self.problems:
            lines.append(f"  {p}")
        if self.skipped:
            lines.append(
                f"  ({_records(self.skipped)} stored before the anchor: pruned, not yet deleted)"
            )
        return "\n".join(lines)


def verify_snapshot(snapshot: Snapshot, witness: Link | None = None) -> VerifyReport:
    """Verify the chain in ``snapshot``; ``witness``: a ``(seq, hash)`` recorded earlier
    elsewhere, which the chain must still contain."""
    fast = _stream(snapshot, witness)
    if fast.report is not None:
        report = fast.report
    else:
        report = _diagnose(snapshot, snapshot.entries(), witness, fast.prunes)
        if report.ok:  # fail closed: the fast pass saw something the diagnosis could not name
            problem = Problem(fast.seq, fast.where, "edited", fast.why)
            report = VerifyReport(
                report.name,
                report.records,
                [*report.problems, problem],
                report.anchor,
                report.last,
                report.skipped,
            )
    found = _attest(snapshot.name, snapshot.anchor, fast.prunes, witness)
    if not found:
        return report
    torn = [p for p in report.problems if p.kind == "truncated"]
    rest = [p for p in report.problems if p.kind != "truncated"]
    return VerifyReport(
        report.name,
        report.records,
        [*rest, *found, *torn],
        report.anchor,
        report.last,
        report.skipped,
    )


@dataclass(slots=True)
class _Prunes:
    """What the prune records in a log say: the anchors they name, by where they are."""

    after: dict[int, str] = field(default_factory=dict)
    """Anchors named by prune records stored after the log's anchor (on the chain)."""
    before: dict[int, str] = field(default_factory=dict)
    """... by prune records stored before it (pruned, not yet deleted)."""
    stored: set[int] = field(default_factory=set)
    """Numbers of the records stored before the anchor (a witness among them is checked)."""

    def note(self, record: AuditRecord, early: bool) -> None:
        link = pruned_to(record)
        if early:
            self.stored.add(record.seq)
        if link is not None:
            (self.before if early else self.after)[link[0]] = link[1]


def _attest(name: str, anchor: Link, prunes: _Prunes, witness: Link | None) -> list[Problem]:
    """Problems with the anchor (not set by a prune the chain records) and with a witness
    older than the anchor (which nothing left can check)."""
    found: list[Problem] = []
    seq, digest = anchor
    if seq > 0:
        if not any(at >= seq for at in prunes.after):
            found.append(
                Problem(
                    seq,
                    f"{name}: the anchor",
                    "removed",
                    f"the chain starts after seq {seq} (the anchor), but no prune record on "
                    "it names that anchor or a later one: records were removed and the anchor "
                    "moved behind the log's back (or pruned by a version that did not record "
                    "prunes)",
                )
            )
        elif prunes.after.get(seq, digest) != digest:
            found.append(
                Problem(
                    seq,
                    f"{name}: the anchor",
                    "edited",
                    f"the anchor's hash {_short(digest)} is not the one its prune record "
                    f"names ({_short(prunes.after[seq])}): the anchor was changed",
                )
            )
    if witness is not None and 0 < witness[0] < seq and witness[0] not in prunes.stored:
        named = prunes.after.get(witness[0], prunes.before.get(witness[0]))
        if named is None:
            found.append(
                Problem(
                    witness[0],
                    f"{name}: the witness",
                    "unchecked",
                    f"the witnessed seq {witness[0]} is older than the anchor (the chain "
                    f"starts after seq {seq}): its records were pruned, so it cannot be "
                    "checked; pass a witness taken after the anchor",
                )
            )
        elif named != witness[1]:
            found.append(
                Problem(
                    witness[0],
                    f"{name}: the witness",
                    "edited",
                    f"the prune record that cut at seq {witness[0]} names hash "
                    f"{_short(named)}, not the witnessed {_short(witness[1])}: the chain was "
                    "rewritten up to there",
                )
            )
    return found


@dataclass(slots=True)
class _Fast:
    report: VerifyReport | None = None
    seq: int | None = None
    where: str = ""
    why: str = ""
    prunes: _Prunes = field(default_factory=_Prunes)


def _stream(snapshot: Snapshot, witness: Link | None) -> _Fast:
    name, anchor = snapshot.name, snapshot.anchor
    seq, digest = anchor
    count = skipped = 0
    started = False
    before: Link | None = None  # the last record stored before the anchor
    torn: list[Problem] = []
    prunes = _Prunes()
    for entry in snapshot.entries():
        if torn:
            return _Fast(None, seq + 1, entry.where, "a line follows a truncated line", prunes)
        if entry.torn:
            torn.append(_truncated(entry))
            continue
        record = entry.record
        if record is None:
            return _Fast(None, entry.seq, entry.where, entry.problem, prunes)
        early = not started and record.seq <= anchor[0]
        if record.kind == "prune" or early:
            prunes.note(record, early)
        if early:
            # Pruned, not yet deleted: listed like any record, so it must chain as one.
            if (
                record_hash(record) != record.hash
                or (before is not None and (record.seq, record.prev) != (before[0] + 1, before[1]))
                or (witness is not None and record.seq == witness[0] and record.hash != witness[1])
            ):
                return _Fast(
                    None, record.seq, entry.where, "does not chain into the anchor", prunes
                )
            before = (record.seq, record.hash)
            skipped += 1
            continue
        if not started and before is not None and before != anchor:
            return _Fast(None, before[0], entry.where, "does not chain into the anchor", prunes)
        started = True
        if record.seq != seq + 1 or record.prev != digest or record_hash(record) != record.hash:
            return _Fast(None, record.seq, entry.where, "the chain breaks here", prunes)
        if witness is not None and record.seq == witness[0] and record.hash != witness[1]:
            return _Fast(None, record.seq, entry.where, "differs from the witnessed head", prunes)
        seq, digest = record.seq, record.hash
        count += 1
    if not started and before is not None and before != anchor:
        return _Fast(None, before[0], name, "does not chain into the anchor", prunes)
    if witness is not None and 0 < witness[0] == anchor[0] and witness[1] != anchor[1]:
        return _Fast(None, anchor[0], name, "the anchor differs from the witnessed head", prunes)
    if snapshot.head is not None and (seq, digest) != snapshot.head:
        return _Fast(None, seq, name, "the chain does not end at the head the log keeps", prunes)
    if witness is not None and witness[0] > seq:
        return _Fast(None, witness[0], name, "the witnessed head is missing", prunes)
    last = (seq, digest) if count else None
    return _Fast(VerifyReport(name, count, torn, snapshot.anchor, last, skipped), prunes=prunes)


@dataclass(slots=True)
class _Node:
    """What the diagnosis keeps of a stored record (a log may not fit in memory)."""

    pos: int
    where: str
    seq: int
    prev: str
    hash: str
    intact: bool
    record: AuditRecord | None
    """Kept only when its fields do not give its hash: renumbering may explain it."""


def _node(pos: int, where: str, r: AuditRecord) -> _Node:
    intact = record_hash(r) == r.hash
    # interned: each hash is also the next record's prev, one string serves both
    prev, digest = sys.intern(r.prev), sys.intern(r.hash)
    return _Node(pos, where, r.seq, prev, digest, intact, None if intact else r)


def _diagnose(
    snapshot: Snapshot, entries: Iterable[Entry], witness: Link | None, prunes: _Prunes
) -> VerifyReport:
    anchor, head, name = snapshot.anchor, snapshot.head, snapshot.name
    nodes: list[_Node] = []
    before: list[_Node] = []  # stored before the anchor
    lost_at: list[int] = []  # positions of unreadable records
    lost_before: list[int] = []  # ... of those stored before the anchor
    problems: dict[int, Problem] = {}  # one per stored record, by position
    ranges: list[Problem] = []  # records missing between or after stored ones
    torn: list[Problem] = []
    started = False
    prunes.after.clear()
    prunes.before.clear()
    prunes.stored.clear()
    for pos, entry in enumerate(entries):
        record = entry.record
        if record is not None and not entry.torn:
            early = not started and record.seq <= anchor[0]
            if record.kind == "prune" or early:
                prunes.note(record, early)
        if entry.torn:
            torn.append(_truncated(entry))
        elif record is None:
            problems[pos] = Problem(entry.seq, entry.where, "unreadable", entry.problem)
            early = not started and entry.seq is not None and entry.seq <= anchor[0]
            (lost_before if early else lost_at).append(pos)
        elif not started and record.seq <= anchor[0]:
            before.append(_node(pos, entry.where, record))
        else:
            started = True
            nodes.append(_node(pos, entry.where, record))
    _check_before_anchor(before, lost_before, anchor, witness, name, problems, ranges)

    def lost_between(a: int, b: int) -> int:
        return bisect.bisect_left(lost_at, b) - bisect.bisect_right(lost_at, a)

    by_prev: dict[str, list[_Node]] = {}
    for n in nodes:
        by_prev.setdefault(n.prev, []).append(n)
    hashes = {n.hash for n in nodes}
    heads = sorted((n for n in nodes if n.prev not in hashes), key=lambda n: (n.seq, n.pos))
    head_seqs = [n.seq for n in heads]
    limit = head[0] if head is not None else None

    visited: set[int] = set()
    chain: list[tuple[_Node, int]] = []
    seq, digest = anchor
    last: _Node | None = None
    while True:
        following = [n for n in by_prev.get(digest, ()) if n.pos not in visited]
        if following:
            n = min(following, key=lambda n: _rank(n, seq + 1, by_prev, visited))
        else:
            after = -1 if last is None else last.pos
            found = _next_head(heads, head_seqs, seq, after, visited, limit)
            if found is None:
                break
            n = found
            gap = n.seq - seq - 1
            lost = lost_between(-1 if last is None else last.pos, n.pos)
            if gap == 0 and last is None:
                problems[n.pos] = Problem(
                    n.seq,
                    n.where,
                    "edited",
                    f"the first record does not chain to the "
                    f"{'start' if anchor[0] == 0 else 'anchor'} ({_short(anchor[1])}): "
                    "it was changed and its hash recomputed, or the anchor was changed",
                )
            elif gap == 0 and last is not None and not lost:
                problems.setdefault(
                    last.pos,
                    Problem(
                        last.seq,
                        last.where,
                        "edited",
                        f"seq {n.seq} ({n.where}) chains to {_short(n.prev)}, not "
                        f"to this record's hash {_short(last.hash)}: this record was "
                        "changed and its hash recomputed",
                    ),
                )
            elif gap > lost:
                first, final = seq + 1, n.seq - 1
                ranges.append(
                    Problem(
                        first,
                        n.where,
                        "removed",
                        f"{_records(gap)} missing before this one "
                        f"({_span(first, final)}): seq {n.seq} chains to "
                        f"{_short(n.prev)}, which no stored record has",
                    )
                )
        visited.add(n.pos)
        seq = seq + 1 if following else n.seq
        chain.append((n, seq))
        digest, last = n.hash, n

    if head is not None:
        if seq < head[0]:
            gap = head[0] - seq
            if gap > lost_between(-1 if last is None else last.pos, 1 << 62):
                where = f"after {last.where}" if last is not None else "at the start"
                ranges.append(
                    Problem(
                        seq + 1,
                        f"{name}: {where}",
                        "removed",
                        f"{_records(gap)} missing at the end ({_span(seq + 1, head[0])}): "
                        f"the log's head says seq {head[0]}",
                    )
                )
        elif seq == head[0] and digest != head[1] and last is not None:
            problems.setdefault(
                last.pos,
                Problem(
                    seq,
                    last.where,
                    "edited",
                    f"its hash {_short(digest)} is not the head the log keeps "
                    f"({_short(head[1])}): it was changed and its hash recomputed",
                ),
            )

    positions: list[int] = []
    for n, expected in chain:
        positions.append(n.pos)
        if limit is not None and expected > limit:
            problems.setdefault(
                n.pos,
                Problem(
                    n.seq,
                    n.where,
                    "inserted",
                    f"written behind the log's back: the head the log keeps is seq {limit}",
                ),
            )
        elif not n.intact:
            r = n.record
            if r is not None and n.seq != expected and record_hash(r, seq=expected) == n.hash:
                problems.setdefault(
                    n.pos,
                    Problem(
                        n.seq,
                        n.where,
                        "reordered",
                        f"renumbered: stored as seq {n.seq}, but its hash and links make it "
                        f"seq {expected}",
                    ),
                )
            else:
                problems.setdefault(n.pos, Problem(n.seq, n.where, "edited", _not_its_hash(n)))
        elif n.seq != expected:
            problems.setdefault(
                n.pos,
                Problem(
                    n.seq, n.where, "edited", f"numbered {n.seq} but chained as seq {expected}"
                ),
            )
        if witness is not None and expected == witness[0] and n.hash != witness[1]:
            problems.setdefault(n.pos, _unwitnessed(n, witness))
    if witness is not None and witness[0] > seq:
        ranges.append(
            Problem(
                seq + 1,
                name,
                "removed",
                f"the witnessed head seq {witness[0]} is gone: the chain ends at seq {seq}",
            )
        )
    in_order = set(_longest_increasing(positions))
    for (n, expected), pos in zip(chain, positions, strict=True):
        if pos not in in_order:
            problems.setdefault(
                n.pos,
                Problem(
                    n.seq,
                    n.where,
                    "reordered",
                    f"stored out of order: by its links it belongs "
                    f"{'first' if expected == anchor[0] + 1 else f'after seq {expected - 1}'}",
                ),
            )
    stored = {n.hash: n for n, _ in chain}
    for n in nodes:
        if n.pos in visited:
            continue
        twin = stored.get(n.hash)
        why = (
            f"a copy of seq {twin.seq} ({twin.where})"
            if twin is not None
            else f"not part of the chain: it chains to {_short(n.prev)}, and no record chains to it"
        )
        problems.setdefault(n.pos, Problem(n.seq, n.where, "inserted", why))

    listed = sorted(
        [*problems.values(), *ranges],
        key=lambda p: (p.seq if p.seq is not None else 1 << 62, p.kind),
    )
    end = (last.seq, last.hash) if last is not None else None
    return VerifyReport(name, len(nodes), [*listed, *torn], anchor, end, len(before))


def _check_before_anchor(
    before: list[_Node],
    lost: list[int],
    anchor: Link,
    witness: Link | None,
    name: str,
    problems: dict[int, Problem],
    ranges: list[Problem],
) -> None:
    """Records stored before the anchor must be the pruned records not yet deleted: walking
    back from the anchor, each is the one the record after it chains to."""
    seq, digest = anchor
    after: _Node | None = None
    for n in reversed(before):
        later = "the anchor" if after is None else f"seq {after.seq} ({after.where})"
        if n.seq == seq and seq > 0:
            if n.hash != digest and n.intact:
                why = (
                    f"{later} chains to {_short(digest)}, not to this record's hash "
                    f"{_short(n.hash)}: this record was changed and its hash recomputed"
                )
                problems.setdefault(n.pos, Problem(n.seq, n.where, "edited", why))
            elif not n.intact:
                problems.setdefault(n.pos, Problem(n.seq, n.where, "edited", _not_its_hash(n)))
        elif 0 < n.seq < seq and seq - n.seq <= _between(lost, n.pos, after):
            if not n.intact:  # unreadable records in between: its link cannot be checked
                problems.setdefault(n.pos, Problem(n.seq, n.where, "edited", _not_its_hash(n)))
        else:
            problems.setdefault(
                n.pos,
                Problem(
                    n.seq,
                    n.where,
                    "inserted",
                    f"stored before the anchor (seq {anchor[0]}), where only pruned records "
                    f"not yet deleted may be, but it does not chain into {later}",
                ),
            )
            continue
        if witness is not None and n.seq == witness[0] and n.hash != witness[1]:
            problems.setdefault(n.pos, _unwitnessed(n, witness))
        seq, digest, after = n.seq - 1, n.prev, n
    if witness is not None and 0 < witness[0] == anchor[0] and witness[1] != anchor[1]:
        ranges.append(
            Problem(
                anchor[0],
                f"{name}: the anchor",
                "edited",
                f"the anchor's hash {_short(anchor[1])} differs from the witnessed head "
                f"{_short(witness[1])}: the chain was rewritten up to here, or the anchor "
                "changed",
            )
        )


def _between(lost: list[int], pos: int, after: _Node | None) -> int:
    """How many unreadable records are stored between ``pos`` and ``after``."""
    end = (1 << 62) if after is None else after.pos
    return bisect.bisect_left(lost, end) - bisect.bisect_right(lost, pos)


def _not_its_hash(n: _Node) -> str:
    given = "" if n.record is None else f" (they give {_short(record_hash(n.record))})"
    return f"its fields do not give its hash {_short(n.hash)}{given}"


def _unwitnessed(n: _Node, witness: Link) -> Problem:
    return Problem(
        n.seq,
        n.where,
        "edited",
        f"its hash {_short(n.hash)} differs from the witnessed head "
        f"{_short(witness[1])}: the chain was rewritten up to here",
    )


def _rank(
    n: _Node, expected: int, by_prev: dict[str, list[_Node]], visited: set[int]
) -> tuple[bool, bool, bool, int]:
    """Of several records chaining to the same hash (a fork: one of them inserted), follow
    the one the chain goes on from, then an intact one, then the one numbered right."""
    goes_on = any(m.pos not in visited and m is not n for m in by_prev.get(n.hash, ()))
    return (not goes_on, not n.intact, n.seq != expected, n.pos)


def _next_head(
    heads: list[_Node],
    seqs: list[int],
    seq: int,
    pos: int,
    visited: set[int],
    limit: int | None,
) -> _Node | None:
    """Where the links resume after a break at ``seq`` (stored at ``pos``): the first record
    numbered after it, stored after it, that chains to no stored record."""
    i = bisect.bisect_right(seqs, seq)
    while i < len(heads):
        n = heads[i]
        if limit is not None and n.seq > limit:
            return None
        if n.pos > pos and n.pos not in visited:
            return n
        i += 1
    return None


def _longest_increasing(values: Iterable[int]) -> list[int]:
    """One longest strictly increasing subsequence (patience sorting, O(n log n))."""
    vals = list(values)
    tails: list[int] = []  # smallest tail value of an increasing run of each length
    tail_at: list[int] = []  # its index in vals
    back: list[int] = [-1] * len(vals)
    for i, v in enumerate(vals):
        k = bisect.bisect_left(tails, v)
        if k == len(tails):
            tails.append(v)
            tail_at.append(i)
        else:
            tails[k] = v
            tail_at[k] = i
        back[i] = tail_at[k - 1] if k else -1
    out: list[int] = []
    i = tail_at[-1] if tail_at else -1
    while i >= 0:
        out.append(vals[i])
        i = back[i]
    return out[::-1]


def _truncated(entry: Entry) -> Problem:
    return Problem(
        None,
        entry.where,
        "truncated",
        "the last line has no newline: a write was cut short (a crash); it is not counted, "
        "and the next append replaces it",
    )


def _short(digest: str) -> str:
    return digest[:12] + "..." if len(digest) > 12 else repr(digest)


def _records(n: int) -> str:
    return f"{n} record{'s' * (n != 1)}"


def _span(first: int, final: int) -> str:
    return f"seq {first}" if first == final else f"seq {first} to {final}"
