"""The live stream: one reader of the store and the decision feed for every open page.

Each poll reads the new decisions and the state once, however many pages are open, and no
poll runs while none is. Each page is sent what changed, as Server-Sent Events. A page that
stops reading is dropped (its browser reconnects and starts afresh), never buffered without
end; a failed read is sent to the pages as a ``problem`` and the next poll tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._feed import Feed

logger = logging.getLogger("guardrails_plugin.dashboard")

RECENT = 300
"""Decisions a page gets when it connects (it keeps up to this many)."""
BATCH = 500
"""Decisions read from the feed per poll at most (the rest come with the next polls)."""
BACKLOG = 64
"""Messages a page may leave unread before it is dropped."""
ARGS_SHOWN = 4000
"""Characters of a decision's arguments sent to the page (the rest is cut)."""


class Page:
    """One open page: the messages waiting to be sent to it, filled by the poller's thread
    and read on the page's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.messages: deque[str] = deque()
        self.primed = False
        """Whether the page got the first batch of decisions and the state."""
        self.dropped = False
        """The page fell too far behind, or the dashboard closed: its stream ends."""
        self._lock = threading.Lock()
        self._ready = asyncio.Event()

    def put(self, text: str, backlog: int) -> bool:
        """Queue ``text``; False when the page is (now) dropped."""
        with self._lock:
            if self.dropped:
                return False
            if len(self.messages) >= backlog:
                self.dropped = True
                self.messages.clear()
            else:
                self.messages.append(text)
        try:
            self.loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the page's loop is gone
            self.drop()
        return not self.dropped

    def drop(self) -> None:
        with self._lock:
            self.dropped = True
            self.messages.clear()
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            self.loop.call_soon_threadsafe(self._ready.set)

    async def next(self, timeout: float) -> str | None:
        """The next message; ``""`` once the stream must end; None after ``timeout``
        seconds without any (time for a keep-alive)."""
        while True:
            with self._lock:
                if self.dropped:
                    return ""
                if self.messages:
                    return self.messages.popleft()
                self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None


class Live:
    """Polls ``feed`` and ``read_state`` every ``poll`` seconds while pages are open and
    sends each page what changed.

    ``read_state(recent)`` gives the state document (blocking reads; ``recent`` are the last
    decisions, for the agents and threads they name).
    """

    def __init__(
        self,
        read_state: Callable[[list[dict[str, Any]]], Mapping[str, Any]],
        feed: Feed,
        *,
        poll: float,
        backlog: int = BACKLOG,
    ) -> None:
        self.read_state = read_state
        self.feed = feed
        self.poll = poll
        self.backlog = backlog
        self.pages: set[Page] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._recent: deque[dict[str, Any]] | None = None
        self._last_seq = 0
        self._state = ""

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> Page:
        """A new page on ``loop``: it gets the recent decisions and the state at the next
        poll, which comes at once."""
        page = Page(loop)
        with self._lock:
            if self._closed:
                page.dropped = True
                return page
            self.pages.add(page)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="guardrails-dashboard-live", daemon=True
                )
                self._thread.start()
        self._wake.set()
        return page

    def unsubscribe(self, page: Page) -> None:
        with self._lock:
            self.pages.discard(page)

    def wake(self) -> None:
        """Poll now (an operator acted: show its effect without waiting)."""
        self._wake.set()

    def publish(self, name: str, data: str) -> None:
        """Send the event ``name`` with JSON ``data`` to every open page."""
        with self._lock:
            self._send(list(self.pages), event_text(name, data))

    def close(self) -> None:
        """End every stream and the polling."""
        with self._lock:
            self._closed = True
            pages, self.pages = list(self.pages), set()
        for page in pages:
            page.drop()
        self._wake.set()

    # -- the poller's thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed or not self.pages:
                    # Nobody watches: stop, and start afresh (a new tail) with the next page.
                    self._thread = None
                    self._recent, self._last_seq, self._state = None, 0, ""
                    return
            try:
                self._poll()
            except Exception as exc:  # shown on the pages; the next poll tries again
                logger.exception("dashboard: reading the store or the decisions failed")
                self.publish("problem", dumps({"error": f"{type(exc).__name__}: {exc}"}))
            self._wake.wait(self.poll)
            self._wake.clear()

    def _poll(self) -> None:
        fresh: list[dict[str, Any]] = []
        if self._recent is None:
            recent = deque(self.feed.tail(RECENT), maxlen=RECENT)
            last_seq = max((_seq(d) for d in recent), default=0)
        else:
            recent, last_seq = self._recent, self._last_seq
            fresh = self.feed.since(last_seq, BATCH)
            recent.extend(fresh)
            last_seq = max([last_seq, *(_seq(d) for d in fresh)])
        state = dumps(self.read_state(list(recent)))
        with self._lock:
            self._recent, self._last_seq = recent, last_seq
            changed, self._state = state != self._state, state
            first = [p for p in self.pages if not p.primed]
            others = [p for p in self.pages if p.primed]
            if first:
                reset = event_text("decisions", dumps({"reset": True, "items": slim(recent)}))
                self._send(first, reset, event_text("state", state))
                for page in first:
                    page.primed = True
            if fresh:
                batch = dumps({"reset": False, "items": slim(fresh)})
                self._send(others, event_text("decisions", batch))
            if changed:
                self._send(others, event_text("state", state))

    def _send(self, pages: Iterable[Page], *texts: str) -> None:
        """Queue ``texts`` for ``pages`` (the lock held); drop the pages too far behind."""
        for page in pages:
            for text in texts:
                if not page.put(text, self.backlog):
                    self.pages.discard(page)
                    break


# -- what goes over the wire --------------------------------------------------------------------


def dumps(value: Any) -> str:
    """Compact JSON; NaN and infinities (JSON has none) as strings."""
    try:
        return json.dumps(value, default=str, allow_nan=False, separators=(",", ":"))
    except ValueError:  # NaN or infinity somewhere in an agent's arguments
        return json.dumps(_finite(value), default=str, separators=(",", ":"))


def event_text(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


def slim(docs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Decision documents as the page needs them (no hash chain; huge arguments cut)."""
    out = []
    for d in docs:
        doc = {k: d.get(k) for k in DECISION_FIELDS}
        args = doc.get("args")
        if args is not None:
            text = dumps(args)
            if len(text) > ARGS_SHOWN:
                doc["args"] = text[:ARGS_SHOWN] + "…"
        out.append(doc)
    return out


DECISION_FIELDS = (
    "seq",
    "at",
    "kind",
    "outcome",
    "agent",
    "tool",
    "args",
    "rule",
    "reason",
    "run_id",
    "thread_id",
    "approver",
    "detail",
)


def _seq(doc: Mapping[str, Any]) -> int:
    return int(doc.get("seq") or 0)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
