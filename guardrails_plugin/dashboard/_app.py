"""The operator dashboard: a Starlette app over the guard's Store (and audit log, and graph).

from guardrails_plugin import SQLiteStore
from guardrails_plugin.dashboard import Dashboard, serve

serve(Dashboard(SQLiteStore("guard.db"), audit=AuditLog("audit.db"), graph=graph))
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from importlib import resources
from typing import Any

try:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import RedirectResponse, Response, StreamingResponse
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the dashboard needs Starlette and uvicorn: pip install 'guardrails-plugin[dashboard]'"
    ) from exc

from .._errors import GuardrailsError
from ..guard import Guard
from ..policy import Policy
from ..store import Store
from . import _plots, _state
from ._feed import AuditFeed, AuditSource, Feed, GuardFeed, NoFeed
from ._live import RECENT, Live, dumps, event_text, slim
from ._operator import NO_GRAPH, Job, Operator, Refused, parse_answer
from ._security import LOOPBACK_NAMES, Protect, Tokens, cookie_name

logger = logging.getLogger("guardrails_plugin.dashboard")

MAX_BODY = 64 * 1024
HEARTBEAT = 15.0
"""Seconds of silence after which a stream sends a keep-alive comment."""
RECONNECT_MS = 1000
"""How soon a page reconnects once its stream ended."""
_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


class Dashboard:
    """A local web page for operators: live decisions, agents and grants, cascade alarms,
    approvals to answer, pause / resume / kill.

    ``source``: the guard's ``Store`` (e.g. ``SQLiteStore("guard.db")``, shared with the
    agents' processes), or a ``Guard`` in this process (its store; its decisions are
    streamed live even without an audit log). ``audit``: an ``AuditLog`` to stream
    decisions from; control actions taken on the page are recorded in it too. ``graph``:
    the compiled LangGraph graph (with its checkpointer) that waits for approvals; without
    it the page shows approvals but cannot answer them. ``token``: what opens the dashboard,
    a string or a mapping of tokens to operator names (actions are recorded as that name,
    else as ``by``); needed to serve beyond loopback. ``hosts``: names besides the loopback
    ones that requests may address the dashboard by (reverse proxies). ``poll``: seconds
    between reads of the store and the audit log for the live stream (one reader, however
    many pages are open; none while no page is). ``policy``: what the budget plot reads the
    thread budgets of (default: the guard's, for a ``Guard`` source; without one the page
    plots no budgets).

    ``.app`` is the ASGI app; :func:`serve` runs it, :func:`serving` runs it in a thread.
    """

    def __init__(
        self,
        source: Store | Guard,
        *,
        audit: AuditSource | None = None,
        graph: Any = None,
        token: str | Mapping[str, str] | None = None,
        by: str = "dashboard",
        hosts: Iterable[str] = (),
        poll: float = 0.5,
        clock: Callable[[], float] = time.time,
        policy: Policy | None = None,
    ) -> None:
        if not isinstance(source, Guard | Store):
            raise TypeError(f"Dashboard needs a Store or a Guard, found {type(source).__name__}")
        guard = source if isinstance(source, Guard) else None
        self.store: Store = source.store if isinstance(source, Guard) else source
        if policy is not None and not isinstance(policy, Policy):
            raise TypeError(f"policy must be a Policy, found {type(policy).__name__}")
        self.policy = policy if policy is not None or guard is None else guard.policy
        self._listening: tuple[Guard, GuardFeed] | None = None
        self.feed: Feed
        if audit is not None:
            self.feed = AuditFeed(audit)
        elif guard is not None:
            feed = GuardFeed(clock=clock)
            guard.listeners.append(feed)
            self._listening = (guard, feed)
            self.feed = feed
        else:
            self.feed = NoFeed()
        self.graph = graph
        self.tokens = Tokens(token, by)
        self.poll = poll
        self.clock = clock
        self.live = Live(self.state, self.feed, poll=poll)
        self.operator = Operator(
            self.store, graph, audit=audit, clock=clock, on_change=self.live.wake
        )
        self._protect = Protect(self._routes(), hosts={*LOOPBACK_NAMES, *hosts}, tokens=self.tokens)
        self.app = self._protect

    def __repr__(self) -> str:
        return f"Dashboard({self.store!r}, feed={self.feed.name!r}, graph={self.graph is not None})"

    def allow_host(self, host: str) -> None:
        """Accept requests naming ``host`` (``"*"``: any) in their Host header."""
        self._protect.allow_host(host)

    def close(self) -> None:
        """End the live streams (so a server can stop at once), the resume workers, and the
        listening to a guard's decisions."""
        self.live.close()
        self.operator.close()
        if self._listening is not None:
            guard, feed = self._listening
            with contextlib.suppress(ValueError):
                guard.listeners.remove(feed)
            self._listening = None

    # -- what the page reads ----------------------------------------------------------------

    def info(self, who: str) -> dict[str, Any]:
        """What the dashboard serves (store, feed, who is signed in) for its info endpoint."""
        return {
            "store": _describe(self.store),
            "feed": self.feed.name,
            "answering": self.operator.answering,
            "answering_off": None if self.operator.answering else NO_GRAPH,
            "by": who,
            "token": self.tokens.required,
        }

    def state(self, recent: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """Everything but the decisions, as the page shows it (blocking store reads), with
        the numbers its plots draw (``plots``, from ``recent`` and the store)."""
        now = self.clock()
        recent = list(recent)
        state = _state.snapshot(self.store, now, recent)
        state["jobs"] = self.operator.jobs()
        state["activity"] = self.operator.activity()
        state["plots"] = _plots.plots(self.store, self.policy, recent, state["trips"], now)
        return state

    # -- routes -------------------------------------------------------------------------------

    def _routes(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self._page),
                Route("/static/{name}", self._asset),
                Route("/api/state", self._api_state),
                Route("/api/decisions", self._api_decisions),
                Route("/api/stream", self._api_stream),
                Route("/api/jobs/{job_id}", self._api_job),
                Route("/api/answer", self._api_answer, methods=["POST"]),
                Route("/api/pause", self._api_control, methods=["POST"]),
                Route("/api/kill", self._api_control, methods=["POST"]),
                Route("/api/quarantine", self._api_control, methods=["POST"]),
                Route("/api/resume", self._api_control, methods=["POST"]),
                Route("/api/revoke", self._api_revoke, methods=["POST"]),
            ]
        )

    async def _page(self, request: Request) -> Response:
        token = request.query_params.get("token")
        if token is not None:
            if self.tokens.name(token) is None:
                return _asset_response("denied.html", "text/html; charset=utf-8", status=401)
            # Move the token out of the URL (history, screenshots) into an HttpOnly cookie,
            # named for this dashboard's port (a host's cookies are shared by all its ports)
            # and holding a value derived from the token, never the token itself.
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(
                cookie_name(request.scope),
                self.tokens.session(token),
                httponly=True,
                samesite="strict",
                path="/",
            )
            return response
        if self.tokens.who(request.scope) is None:
            return _asset_response("denied.html", "text/html; charset=utf-8", status=401)
        return _asset_response("index.html", "text/html; charset=utf-8")

    async def _asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        kind = _ASSETS.get(name)
        if kind is None:
            return _error(404, "no such file")
        return _asset_response(name, kind)

    def _who(self, request: Request) -> str:
        who = self.tokens.who(request.scope)
        if who is None:
            raise Refused(401, "a token is required: Authorization: Bearer <token>")
        return who

    async def _api_state(self, request: Request) -> Response:
        try:
            who = self._who(request)
        except Refused as exc:
            return _error(exc.status, exc.message)
        recent = await run_in_threadpool(self.feed.tail, RECENT)
        state = await run_in_threadpool(self.state, recent)
        return _json({"info": self.info(who), "state": state, "decisions": slim(recent)})

    async def _api_decisions(self, request: Request) -> Response:
        try:
            self._who(request)
            since = int(request.query_params.get("since", "0"))
            limit = int(request.query_params.get("limit", str(RECENT)))
        except Refused as exc:
            return _error(exc.status, exc.message)
        except ValueError:
            return _error(400, "since and limit must be integers")
        if not 0 < limit <= 1000:
            return _error(400, f"limit must be between 1 and 1000, found {limit}")
        found = await run_in_threadpool(self.feed.since, since, limit)
        return _json({"decisions": slim(found)})

    async def _api_job(self, request: Request) -> Response:
        try:
            self._who(request)
        except Refused as exc:
            return _error(exc.status, exc.message)
        job = self.operator.job(request.path_params["job_id"])
        if job is None:
            return _error(404, "no such job (only the last 50 are kept)")
        return _json(job.to_doc())

    async def _api_stream(self, request: Request) -> Response:
        try:
            who = self._who(request)
        except Refused as exc:
            return _error(exc.status, exc.message)
        return StreamingResponse(
            self._events(who),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def _events(self, who: str) -> AsyncIterator[str]:
        """Server-Sent Events: ``hello`` (who, what the dashboard can do), ``decisions`` (new
        ones, oldest first; the first batch has ``reset``), ``state`` (only when it changed),
        ``problem`` (reading the store or the decisions failed; the next poll tries again).
        One poller (``Live``) reads for every open page, every ``poll`` seconds."""
        page = self.live.subscribe(asyncio.get_running_loop())
        try:
            # A page whose stream ends (the server restarts, the page fell behind) comes
            # back after a second, not the browser's default three.
            yield f"retry: {RECONNECT_MS}\n" + event_text("hello", dumps(self.info(who)))
            while True:
                text = await page.next(HEARTBEAT)
                if text is None:
                    yield ": keep-alive\n\n"
                elif not text:  # dropped (too far behind) or closing: the page reconnects
                    return
                else:
                    yield text
        finally:
            self.live.unsubscribe(page)

    # -- actions --------------------------------------------------------------------------------

    async def _api_answer(self, request: Request) -> Response:
        thread = ""
        try:
            who = self._who(request)
            body = await _body(request)
            thread, call = _text(body, "thread"), _text(body, "call")
            approval = parse_answer(body, who)
            job = await run_in_threadpool(self.operator.answer, thread, call, approval, by=who)
        except Refused as exc:
            return _error(exc.status, exc.message)
        except Exception as exc:  # reading the graph's state failed: tell the operator
            logger.exception("dashboard: answering on thread %r failed", thread)
            return _error(500, f"could not read what thread {thread!r} waits for: {exc}")
        return _json({"job": job.to_doc()}, status=202)

    async def _api_control(self, request: Request) -> Response:
        verb = request.url.path.rsplit("/", 1)[1]
        op = self.operator
        try:
            who = self._who(request)
            body = await _body(request)
            thread, agent = _target(body)
            reason = _optional(body, "reason") or ""
            jobs: list[Job] = []
            if verb == "resume":
                lifted, jobs = await run_in_threadpool(
                    lambda: op.resume(thread=thread, agent=agent, by=who)
                )
                out: dict[str, Any] = {"lifted": lifted}
            elif verb == "quarantine":
                if agent is None:
                    raise Refused(400, "quarantine needs an agent")
                flag = await run_in_threadpool(lambda: op.quarantine(agent, reason=reason, by=who))
                out = {"flag": {**flag.to_doc(), "grants": len(flag.grants or {})}}
            else:
                act = op.pause if verb == "pause" else op.kill
                flag = await run_in_threadpool(
                    lambda: act(thread=thread, agent=agent, reason=reason, by=who)
                )
                out = {"flag": {**flag.to_doc(), "grants": None}}
        except Refused as exc:
            return _error(exc.status, exc.message)
        except ValueError as exc:
            return _error(400, str(exc))
        except GuardrailsError as exc:  # the store or the audit log failed: say so
            return _error(500, f"{verb}: {exc}")
        out["jobs"] = [j.to_doc() for j in jobs]
        return _json(out)

    async def _api_revoke(self, request: Request) -> Response:
        try:
            who = self._who(request)
            body = await _body(request)
            grant = _text(body, "grant")
            removed = await run_in_threadpool(lambda: self.operator.revoke(grant, by=who))
        except Refused as exc:
            return _error(exc.status, exc.message)
        except GuardrailsError as exc:
            return _error(500, f"revoke: {exc}")
        return _json({"revoked": removed})


# -- helpers ------------------------------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise Refused(413, f"request body over {MAX_BODY} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise Refused(400, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Refused(400, "the body must be a JSON object")
    return body


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise Refused(400, f"{name} must be a non-empty string, found {value!r}")
    return value


def _optional(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Refused(400, f"{name} must be a string, found {value!r}")
    return value


def _target(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    thread, agent = _optional(body, "thread") or None, _optional(body, "agent") or None
    if thread is not None and agent is not None:
        raise Refused(400, "name a thread or an agent (or neither, for everything), not both")
    return thread, agent


def _describe(store: Store) -> str:
    path = getattr(store, "path", None)
    name = type(store).__name__
    return f"{name} {path}" if isinstance(path, str) else name


def _json(value: Any, status: int = 200) -> Response:
    return Response(
        dumps(value),
        status_code=status,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status=status)


def _asset_response(name: str, media_type: str, status: int = 200) -> Response:
    return Response(
        _read_asset(name),
        status_code=status,
        media_type=media_type,
        headers={"cache-control": "no-cache"},
    )


@functools.cache
def _read_asset(name: str) -> bytes:
    return resources.files("guardrails_plugin.dashboard").joinpath("static", name).read_bytes()
