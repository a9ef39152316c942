"""The JSON Lines audit sink: one record per line, numbered segments, plain files.

Why this file is long: locking, torn-line repair, rotation, pruning and reading all work on
the same segment files under the same lock; split apart, each would re-derive the layout.

Appends from any number of threads and processes take an exclusive ``flock`` on
``PATH.lock``, read the last complete record, write the next line with one ``O_APPEND``
write and, with ``durable=True``, ``fdatasync`` it before letting go. The chain therefore stays
linear, and a process killed mid-write leaves at most a last line without its newline: the
verifier reports it as *truncated* (not counted), and the next append cuts it off and
chains to the last complete record.

An append that raises leaves no record behind (what it wrote is cut off): the guard turns
it into a deny, and the log must not say the decision stood.

``PATH`` is the active segment. An append that finds it ``rotate_bytes`` large or more
first renames it ``PATH.000001`` (then ``.000002``...: the higher the number, the newer) and
starts a new ``PATH`` with its record. ``prune`` deletes the oldest whole segments and
writes the link the remaining chain starts from to ``PATH.anchor`` first (so a crash in
between leaves extra old records, which must chain into the anchor, never a gap).

Readers need only read access: without write access to ``PATH.lock`` they lock it through
a read-only descriptor. POSIX only (``flock``, ``pread``): on Windows use a SQLite log.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import threading
import time
import weakref
from collections.abc import Iterator
from typing import IO

from ._base import (
    START,
    AuditError,
    AuditSink,
    Entry,
    Link,
    Snapshot,
    check_prune_args,
    matches,
    prune_draft,
)
from ._records import AuditRecord, Draft

try:
    import fcntl
except ImportError:  # Windows: no flock (SQLite logs work there; these do not)
    fcntl = None  # type: ignore[assignment]

__all__ = ["JSONLAuditSink"]

DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024
_BLOCK = 64 * 1024
_sync = getattr(os, "fdatasync", os.fsync)


class JSONLAuditSink(AuditSink):
    """Audit records as JSON Lines in ``path`` and its rotated segments.

    ``rotate_bytes``: start a new segment once the active one is this large (``None``: never).
    ``durable``: ``fdatasync`` after every record (survives power loss; costs a disk flush).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durable: bool = False,
        rotate_bytes: int | None = DEFAULT_ROTATE_BYTES,
    ) -> None:
        if rotate_bytes is not None and (not isinstance(rotate_bytes, int) or rotate_bytes <= 0):
            raise ValueError(
                f"rotate_bytes must be a positive integer or None, found {rotate_bytes!r}"
            )
        self.path = os.fspath(path)
        if fcntl is None or not hasattr(os, "pread"):
            raise AuditError(
                f"audit log {self.path!r}: JSON Lines logs need flock and pread, which this "
                "system lacks (Windows); use a SQLite log (a path not ending in .jsonl, such "
                "as 'audit.db')"
            )
        self.durable = durable
        self.rotate_bytes = rotate_bytes
        self.lock_path = self.path + ".lock"
        self.anchor_path = self.path + ".anchor"
        folder, self._base = os.path.split(self.path)
        self._folder = folder or "."
        self._prefix = folder
        self._segment_name = re.compile(re.escape(self._base) + r"\.(\d+)")
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._tail: tuple[int, int, int, str] | None = None  # (inode, size, seq, hash)
        self._bounds: dict[str, tuple[tuple[int, int], Link | None]] = {}
        self._resume: dict[tuple[int, int], tuple[int, int, str]] = {}
        self._closed = False
        with self._locked("open"):
            pass  # creates the lock file: a bad path fails here, not at the first decision
        at_fork = getattr(os, "register_at_fork", None)  # not on Windows
        if at_fork is not None:
            at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))

    def __repr__(self) -> str:
        flags = ", durable=True" if self.durable else ""
        state = " (closed)" if self._closed else ""
        return f"JSONLAuditSink({self.path!r}, rotate_bytes={self.rotate_bytes!r}{flags}){state}"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for fd in (self._fd, self._lock_fd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._lock_fd = None

    # -- writing --------------------------------------------------------------------------

    def append(self, draft: Draft) -> AuditRecord:
        with self._locked("append a record"):
            return self._append_locked(draft)

    def _append_locked(self, draft: Draft) -> AuditRecord:
        """Append ``draft``; call holding the log's lock."""
        try:
            fd, inode, size = self._active()
            if self._tail is not None and self._tail[:2] == (inode, size):
                seq, prev = self._tail[2], self._tail[3]
            else:
                size = self._cut_torn(fd, size)
                seq, prev = self._head_locked(fd, size)
            if self.rotate_bytes is not None and size >= self.rotate_bytes:
                # Before writing, not after: a rotation that fails must fail the append
                # with nothing written.
                self._rotate()
                fd, inode, size = self._active()
            record, text = draft.seal(seq + 1, prev)
            line = f'{text[:-1]},"hash":"{record.hash}"}}\n'.encode()
            self._tail = None
            try:
                self._write(fd, line)
                if self.durable:
                    _sync(fd)
            except BaseException as exc:
                self._take_back(fd, size, exc)
                raise
            self._tail = (inode, size + len(line), record.seq, record.hash)
            return record
        except OSError as exc:
            raise AuditError(f"audit log {self.path!r}: cannot append a record: {exc}") from exc

    def _take_back(self, fd: int, size: int, exc: BaseException) -> None:
        """Cut off what a failed append wrote: its caller is told the record is not stored
        (the guard denies the decision), so the log must not hold it."""
        try:
            os.ftruncate(fd, size)
        except OSError as cut:
            raise AuditError(
                f"audit log {self.path!r}: cannot append a record ({exc}), nor cut off what it "
                f"wrote ({cut}): the log may hold it; run `guardrails-plugin audit verify`"
            ) from exc

    def _write(self, fd: int, data: bytes) -> None:
        """Write ``data`` whole (one ``write`` call unless the kernel takes less)."""
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def _active(self) -> tuple[int, int, int]:
        """The active segment open for appending (reopened if another process rotated it):
        ``(fd, inode, size)``."""
        if self._fd is not None:
            st = os.fstat(self._fd)
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
                return self._fd, st.st_ino, st.st_size
            os.close(self._fd)
            self._fd = None
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags, 0o640)
        self._fd = fd
        if self.durable:
            self._sync_folder()
        st = os.fstat(fd)
        return fd, st.st_ino, st.st_size

    def _cut_torn(self, fd: int, size: int) -> int:
        """Cut off a last line left without its newline by a crash; the new size."""
        if not size or os.pread(fd, 1, size - 1) == b"\n":
            return size
        end = size
        while end > 0:
            start = max(0, end - _BLOCK)
            found = os.pread(fd, end - start, start).rfind(b"\n")
            if found >= 0:
                end = start + found + 1
                break
            end = start
        os.ftruncate(fd, end)
        if self.durable:
            _sync(fd)
        return end

    def _head_locked(self, fd: int, size: int) -> Link:
        if size:
            return self._link_of(_last_line(fd, size), self.path)
        for path in reversed(self._rotated()):
            with open(path, "rb") as f:
                end = os.fstat(f.fileno()).st_size
                if end:
                    return self._link_of(_last_line(f.fileno(), end), path)
        return self._read_anchor()

    def _link_of(self, line: bytes, path: str) -> Link:
        try:
            doc = json.loads(line)
            seq, digest = doc["seq"], doc["hash"]
            if type(seq) is int and isinstance(digest, str):
                return seq, digest
            problem = f"seq {seq!r} / hash {digest!r}"
        except (ValueError, TypeError, KeyError) as exc:
            problem = str(exc)
        raise AuditError(
            f"audit log {self.path!r}: cannot chain the next record: the last record in "
            f"{path} is unreadable ({problem}); run `guardrails-plugin audit verify`"
        )

    def _rotate(self) -> None:
        numbers = [n for n, _ in self._numbered()]
        target = self._join(f"{self._base}.{max(numbers, default=0) + 1:06d}")
        os.rename(self.path, target)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.durable:
            self._sync_folder()

    def prune(self, *, keep_last: int | None = None, before: float | None = None) -> int:
        """Delete the oldest rotated segments: while the rest still holds ``keep_last``
        records, or while every record in the segment is older than ``before``. Whole
        segments only (the active one is never deleted), so more may be kept."""
        check_prune_args(keep_last, before)
        with self._locked("prune"):
            try:
                return self._prune_locked(keep_last, before)
            except OSError as exc:
                raise AuditError(f"audit log {self.path!r}: cannot prune: {exc}") from exc

    def _prune_locked(self, keep_last: int | None, before: float | None) -> int:
        anchor = self._read_anchor()
        segments = [(path, _summary(path)) for path in self._rotated()]
        total = sum(count for _, (count, _, _) in segments)
        if keep_last is not None:
            with contextlib.suppress(FileNotFoundError), open(self.path, "rb") as f:
                total += sum(1 for line in f if line.endswith(b"\n"))
        doomed: list[str] = []
        removed, link = 0, anchor
        for path, (count, last, newest) in segments:
            if keep_last is not None:
                if total - removed - count < keep_last:
                    break
            elif before is not None and newest is not None and not newest < before:
                break
            doomed.append(path)
            removed += count
            if last is not None and last[0] > link[0]:
                link = last
        if not doomed:
            return 0
        if link != anchor:
            # The chain says where it will start before anything is removed.
            self._append_locked(prune_draft(link, time.time()))
            tmp = self.anchor_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"seq": link[0], "hash": link[1]}, f)
                f.flush()
                if self.durable:
                    os.fsync(f.fileno())
            os.replace(tmp, self.anchor_path)
            if self.durable:
                self._sync_folder()
        for path in doomed:
            os.unlink(path)
        self._bounds.clear()
        self._resume.clear()
        return removed

    # -- reading --------------------------------------------------------------------------

    def head(self) -> Link:
        with self._locked("read the head"):
            try:
                fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                return self._head_locked(-1, 0)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn line: not a record
                    size = _complete(fd, size)
                return self._head_locked(fd, size)
            finally:
                os.close(fd)

    def records(
        self,
        since_seq: int | None = None,
        *,
        kind: str | None = None,
        thread: str | None = None,
        agent: str | None = None,
    ) -> Iterator[AuditRecord]:
        after = -1 if since_seq is None else since_seq
        opened = self._open_segments(after)
        try:
            yield from self._records_in(opened, after, kind, thread, agent)
        finally:
            for _, f in opened:
                f.close()

    def _records_in(
        self,
        opened: list[tuple[str, IO[bytes]]],
        after: int,
        kind: str | None,
        thread: str | None,
        agent: str | None,
    ) -> Iterator[AuditRecord]:
        for path, f in opened:
            st = os.fstat(f.fileno())
            key = (st.st_dev, st.st_ino)
            offset, lineno = self._resume_at(f, key, after)
            f.seek(offset)
            for line in f:
                if not line.endswith(b"\n"):
                    break  # being written, or torn by a crash: not a record
                offset += len(line)
                lineno += 1
                record = _parse(line, f"{path}:{lineno}")
                if record.seq <= after:
                    continue
                after = record.seq
                if len(self._resume) > 64:
                    self._resume.clear()
                self._resume[key] = (offset, lineno, record.hash)
                if matches(record, kind, thread, agent):
                    yield record

    def _resume_at(self, f: IO[bytes], key: tuple[int, int], after: int) -> tuple[int, int]:
        """Where to start reading a segment: past the records a previous read already saw
        (checked: the line before that offset must still be the record remembered)."""
        found = self._resume.get(key)
        if found is None:
            return 0, 0
        offset, lineno, digest = found
        f.seek(max(0, offset - _BLOCK))
        before = f.read(min(offset, _BLOCK))
        lines = before.rstrip(b"\n").rsplit(b"\n", 1)
        try:
            doc = json.loads(lines[-1])
            ok = doc.get("hash") == digest and type(doc.get("seq")) is int and doc["seq"] <= after
        except (ValueError, TypeError, AttributeError):
            ok = False
        return (offset, lineno) if ok and before.endswith(b"\n") else (0, 0)

    def last(
        self,
        n: int,
        *,
        kind: str | None = None,
        thread: str | None = None,
        agent: str | None = None,
    ) -> list[AuditRecord]:
        found: list[AuditRecord] = []
        if n <= 0:
            return found
        opened = self._open_segments(-1)
        try:
            for path, f in reversed(opened):
                for line, offset in _reverse_lines(f):
                    record = _parse(line, f"{path} at byte {offset}")
                    if matches(record, kind, thread, agent):
                        found.append(record)
                        if len(found) == n:
                            return found[::-1]
            return found[::-1]
        finally:
            for _, f in opened:
                f.close()

    def snapshot(self) -> Snapshot:
        return _JSONLSnapshot(self)

    def _open_segments(self, after: int) -> list[tuple[str, IO[bytes]]]:
        """Open the segments that may hold records after ``after``, under the lock, so that
        a rotation cannot slip between listing and opening them."""
        opened: list[tuple[str, IO[bytes]]] = []
        with self._locked("read records"):
            try:
                for path in [*self._rotated(), self.path]:
                    try:
                        f = open(path, "rb")  # noqa: SIM115 - returned to the caller
                    except FileNotFoundError:
                        continue
                    if path != self.path and after >= 0:
                        last = self._last_link(path, f)
                        if last is not None and last[0] <= after:
                            f.close()
                            continue
                    opened.append((path, f))
            except BaseException:
                for _, done in opened:
                    done.close()
                raise
        return opened

    def _last_link(self, path: str, f: IO[bytes]) -> Link | None:
        """The last record of a rotated (no longer written) segment, cached."""
        st = os.fstat(f.fileno())
        key = (st.st_ino, st.st_size)
        cached = self._bounds.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        link = self._link_of(_last_line(f.fileno(), st.st_size), path) if st.st_size else None
        self._bounds[path] = (key, link)
        return link

    # -- files ----------------------------------------------------------------------------

    def _join(self, name: str) -> str:
        return os.path.join(self._prefix, name) if self._prefix else name

    def _numbered(self) -> list[tuple[int, str]]:
        try:
            names = os.listdir(self._folder)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            m = self._segment_name.fullmatch(name)
            if m is not None:
                found.append((int(m.group(1)), self._join(name)))
        return sorted(found)

    def _rotated(self) -> list[str]:
        """The rotated segments, oldest first."""
        return [path for _, path in self._numbered()]

    def _read_anchor(self) -> Link:
        try:
            with open(self.anchor_path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return START
        except (OSError, ValueError) as exc:
            raise AuditError(f"audit log anchor {self.anchor_path!r} is unreadable: {exc}") from exc
        seq = doc.get("seq") if isinstance(doc, dict) else None
        digest = doc.get("hash") if isinstance(doc, dict) else None
        if type(seq) is not int or not isinstance(digest, str):
            raise AuditError(f"audit log anchor {self.anchor_path!r} is unreadable: {doc!r}")
        return seq, digest

    def _sync_folder(self) -> None:
        fd = os.open(self._folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _locked(self, operation: str) -> Iterator[None]:
        """This object's thread lock, then the exclusive ``flock`` every process takes."""
        with self._lock:
            if self._closed:
                raise AuditError(f"{self!r}: cannot {operation}: the log is closed")
            try:
                if self._lock_fd is None:
                    self._lock_fd = self._open_lock()
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise AuditError(
                    f"audit log {self.path!r}: cannot {operation}: cannot lock "
                    f"{self.lock_path!r}: {exc}"
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _open_lock(self) -> int:
        cloexec = getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT | cloexec, 0o640)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            try:  # read access only (an auditor, a read-only mount): flock works all the same
                return os.open(self.lock_path, os.O_RDONLY | cloexec)
            except OSError:
                raise exc from None

    def _forget_files(self) -> None:
        """In a forked child: the parent's descriptors share its lock; open our own."""
        self._lock = threading.Lock()
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = None
        self._tail = None


class _JSONLSnapshot(Snapshot):
    """Every segment opened, and its size noted, under the lock: later appends and rotations
    do not change what the verifier reads."""

    def __init__(self, sink: JSONLAuditSink) -> None:
        self.name = sink.path
        self.head = None
        self._files: list[tuple[str, IO[bytes], int]] = []
        with sink._locked("verify"):
            self.anchor = sink._read_anchor()
            for path in [*sink._rotated(), sink.path]:
                try:
                    f = open(path, "rb")  # noqa: SIM115 - closed by close()
                except FileNotFoundError:
                    continue
                self._files.append((path, f, os.fstat(f.fileno()).st_size))

    def entries(self) -> Iterator[Entry]:
        for i, (path, f, size) in enumerate(self._files):
            f.seek(0)
            offset = 0
            for lineno, whole in enumerate(f, 1):
                if offset >= size:
                    break
                line = whole[: size - offset]
                offset += len(line)
                where = f"{path}:{lineno}"
                if not line.endswith(b"\n"):
                    if i == len(self._files) - 1:
                        yield Entry(where, torn=True)
                    else:
                        yield Entry(where, problem="the line has no newline", seq=None)
                    break
                yield _entry(line, where)

    def close(self) -> None:
        for _, f, _ in self._files:
            f.close()


def _entry(line: bytes, where: str) -> Entry:
    try:
        doc = json.loads(line)
    except ValueError as exc:
        return Entry(where, problem=f"not JSON: {exc}")
    try:
        return Entry(where, AuditRecord.from_doc(doc))
    except ValueError as exc:
        seq = doc.get("seq") if isinstance(doc, dict) else None
        return Entry(where, problem=str(exc), seq=seq if type(seq) is int else None)


def _parse(line: bytes, where: str) -> AuditRecord:
    entry = _entry(line, where)
    if entry.record is None:
        raise AuditError(
            f"{where}: unreadable record ({entry.problem}); run `guardrails-plugin audit verify`"
        )
    return entry.record


def _summary(path: str) -> tuple[int, Link | None, float | None]:
    """How many records a rotated segment holds, the last one's link and the newest time
    (for ``prune``: a summary, as a log may not fit in memory)."""
    count, last, newest = 0, None, None
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.endswith(b"\n"):
                r = _parse(line, f"{path}:{lineno}")
                count += 1
                last = (r.seq, r.hash)
                newest = r.at if newest is None else max(newest, r.at)
    return count, last, newest


def _last_line(fd: int, size: int) -> bytes:
    """The last complete line of the first ``size`` bytes (which end with a newline)."""
    end = size - 1  # the final newline
    start = end
    while start > 0:
        lo = max(0, start - _BLOCK)
        found = os.pread(fd, start - lo, lo).rfind(b"\n")
        if found >= 0:
            start = lo + found + 1
            break
        start = lo
    return os.pread(fd, end - start, start)


def _complete(fd: int, size: int) -> int:
    """The size of the complete lines of a file whose last line is torn."""
    end = size
    while end > 0:
        lo = max(0, end - _BLOCK)
        found = os.pread(fd, end - lo, lo).rfind(b"\n")
        if found >= 0:
            return lo + found + 1
        end = lo
    return 0


def _reverse_lines(f: IO[bytes]) -> Iterator[tuple[bytes, int]]:
    """Complete lines of ``f``, last first, with their byte offsets (a torn last line
    skipped)."""
    fd = f.fileno()
    end = os.fstat(fd).st_size
    if end and os.pread(fd, 1, end - 1) != b"\n":
        end = _complete(fd, end)
    pending = b""
    pos = end
    while pos > 0:
        lo = max(0, pos - _BLOCK)
        pending = os.pread(fd, pos - lo, lo) + pending
        pos = lo
        parts = pending.split(b"\n")
        pending = parts[0]
        offset = pos + len(pending) + 1
        tail: list[tuple[bytes, int]] = []
        for part in parts[1:]:
            tail.append((part, offset))
            offset += len(part) + 1
        for part, at in reversed(tail):
            if part:
                yield part + b"\n", at
    if pending:
        yield pending + b"\n", 0


def _after_fork(sink: weakref.ref[JSONLAuditSink]) -> None:
    alive = sink()
    if alive is not None:
        alive._forget_files()
