"""The Guard: the one object a user builds. ``check`` an event, get a ``Decision``.

Why this file is long: each public verb has a sync and an async twin driving the same flows,
and the flows share the guard's cached grant rules (docs/architecture.md maps the flows).

The decision logic is written once, as generators that *yield* the store operations they
need and receive the results (the httpx auth-flow pattern). ``check`` drives them against the
store's sync verbs, ``acheck`` against the async twins: sync and async cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._approvals import (
    ALL_ANSWERS,
    Answer,
    Approval,
    ApprovalRequest,
    EditedArgs,
    EditReader,
)
from ._context import CHECKPOINT
from ._decision import Charge, Decision, Effect
from ._errors import PolicyError, StoreError
from ._events import AgentMessage, Event, ModelCall, ModelUsage, ToolCall, ToolResult
from ._grants import (
    EPOCH_KEY,
    GRANT_PREFIX,
    ROLE_GRANTS,
    Grant,
    active_rules,
    check_delegation,
    delegation_chains,
    rules_for,
)
from .cascade import Alarm, Breaker, CascadeMonitor, Trip
from .cascade._breaker import TRIP_PREFIX, trips_in
from .controls import Controls
from .listeners import hears_usage, tell_usage
from .policy import Policy, Rule
from .policy._budgets import Budget, Measure, MeasureError
from .policy._explain import Explanation, Trace
from .policy._rules import LOST
from .scopes import Provenance, Scope
from .scopes.returned import fingerprints, returned_prints, value_prints
from .store import MemoryStore, Store, Watch, open_store

if TYPE_CHECKING:
    from .audit import AuditLog

Listener = Callable[[Event, Decision], None]

ENV_POLICY = "GUARDRAILS_POLICY"
"""The environment variable naming the policy file (``Guard.from_env``, the CLI)."""
ENV_STORE = "GUARDRAILS_STORE"
"""The environment variable naming the store: a URL or a SQLite file path."""
ENV_AUDIT = "GUARDRAILS_AUDIT"
"""The environment variable naming the audit log file."""


def store_url(where: str) -> str:
    """A store URL for ``where``: itself if it is one, else a SQLite file path as a URL."""
    return where if "://" in where else f"sqlite:///{where}"


"""Called with every decision the guard makes (audit logs, metrics, demos)."""

_Op = tuple[str, tuple[Any, ...], dict[str, Any]]
_Flow = Generator[_Op, Any, Decision]
_INF = math.inf
_ALLOW_MODEL = Decision(Effect.ALLOW, "no-rule", "not stopped by the kill switch")
_ALLOW_MESSAGE = Decision(Effect.ALLOW, "no-rule", "no cascade detected", kind="cascade")


def _op(name: str, *args: Any, **kwargs: Any) -> _Op:
    return (name, args, kwargs)


class Guard:
    """Checks every tool call against a policy, keeps budgets, grants and taint in a store, and
    asks a person when the policy says so.

    >>> from guardrails_plugin import Guard, Policy, ToolCall, allow
    >>> guard = Guard(Policy([allow("search")]))
    >>> guard.check(ToolCall("search", {"q": "llamas"})).effect
    <Effect.ALLOW: 'allow'>
    >>> print(guard.check(ToolCall("rm", {"path": "/"})).reason)
    no rule allows tool 'rm' for agent 'agent'

    ``store`` holds shared state (default: in memory; a ``SQLiteStore`` shares budgets
    between processes). ``approver`` is called for ``ask`` decisions outside a LangGraph
    interrupt (sync or async callable taking an ``ApprovalRequest``); without one, ``ask``
    denies. ``listeners`` see every decision.

    ``cascade`` (a ``CascadeMonitor``) watches the messages agents pass each other (the
    LangGraph adapters report every hand-off; ``check(AgentMessage(...))`` reports one by
    hand) and the calls the policy denies; when a signal trips, ``breaker`` (default
    ``Breaker()``) pauses the run, quarantines an agent or stops the run, and records the
    trip (``trips()``).

    ``audit`` (an ``AuditLog``) records every decision (allowed model calls aside: the
    kill-switch checks before each model turn), approval, operator action on
    ``guard.controls`` and breaker trip, with the policy's version and digest and the
    checkpoint the step started from. A decision the log cannot record is not allowed:
    it becomes a deny (``audit-error``), its budget given back.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        store: Store | None = None,
        approver: Callable[[ApprovalRequest], Any] | None = None,
        listeners: Iterable[Listener] = (),
        cascade: CascadeMonitor | None = None,
        breaker: Breaker | None = None,
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.time,
        mode: Literal["enforce", "shadow"] = "enforce",
    ) -> None:
        if mode not in ("enforce", "shadow"):
            raise ValueError(f"mode must be 'enforce' or 'shadow', found {mode!r}")
        if not isinstance(policy, Policy):
            raise TypeError(f"Guard needs a Policy, found {type(policy).__name__}")
        if cascade is not None and not isinstance(cascade, CascadeMonitor):
            raise TypeError(f"cascade must be a CascadeMonitor, found {type(cascade).__name__}")
        if breaker is not None and not isinstance(breaker, Breaker):
            raise TypeError(f"breaker must be a Breaker, found {type(breaker).__name__}")
        self.cascade = cascade
        self.breaker = breaker if breaker is not None else Breaker()
        self.policy = policy
        self.store: Store = store if store is not None else MemoryStore()
        self.approver = approver
        self.listeners: list[Listener] = list(listeners)
        self.clock = clock
        self.audit = audit
        self.mode = mode
        """``"enforce"``, or ``"shadow"``: decide and record as usual, let every call run."""
        self._shadow = mode == "shadow"
        self.policy_id = f"{policy.version}:{policy.digest[:12]}"
        """What audit records name as the policy: its version and the start of its digest."""
        self.controls = Controls(self.store, clock=clock, audit=audit)
        """The kill switch: ``guard.controls.pause(thread=...)``, ``.kill(agent=...)``."""
        self._grant_epoch: float | None = None
        # Grants change rarely: on a store that pushes, the epoch is read only when notified.
        self._grant_watch = Watch(self.store, EPOCH_KEY, on_change=self._forget_grant_epoch)
        self._grant_rules: dict[str, tuple[Rule, ...]] = {}
        self._grants: tuple[Grant, ...] = ()
        self._chains: dict[str, tuple[str, ...]] = {}
        self._delegated_cache: dict[tuple[str, str], tuple[Any, ...]] = {}
        # call id -> the delegators of a call made under a delegated grant, so that its
        # result's tokens count against their result-token budgets too (``record``)
        self._delegated_calls: dict[str, tuple[str, ...]] = {}
        self._delegated_lock = threading.Lock()
        self._grants_at = -_INF
        self._visible_cache: dict[
            tuple[str, tuple[str, ...]], tuple[dict[str, tuple[Rule, ...]], tuple[str, ...]]
        ] = {}
        self._held = _Held()

    def __repr__(self) -> str:
        more = "" if self.cascade is None else f", cascade={self.cascade!r}"
        return f"Guard({self.policy!r}, store={self.store!r}{more})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Guard:
        """A guard configured from the environment (twelve-factor style):

        - ``GUARDRAILS_POLICY``: the policy file (YAML; required unless ``policy=`` is
          given);
        - ``GUARDRAILS_STORE``: the store, a URL (``sqlite:///guard.db``, ``memory://``) or a
          SQLite file path (default: in memory, this process only);
        - ``GUARDRAILS_AUDIT``: the audit log file (``*.jsonl`` for JSON Lines, else SQLite;
          default: none).

        ``options`` are passed to ``Guard`` and win over the environment (``store=``,
        ``approver=``, ``listeners=``, ...). ``environ`` defaults to ``os.environ``.
        """
        env = os.environ if environ is None else environ
        policy = options.pop("policy", None)
        if policy is None:
            path = env.get(ENV_POLICY)
            if not path:
                raise PolicyError(
                    f"{ENV_POLICY} is not set: name the policy file there, or pass policy="
                )
            policy = Policy.from_yaml(path)
        if "store" not in options and env.get(ENV_STORE):
            options["store"] = open_store(store_url(env[ENV_STORE]))
        if "audit" not in options and env.get(ENV_AUDIT):
            from .audit import AuditLog

            options["audit"] = AuditLog(env[ENV_AUDIT])
        return cls(policy, **options)

    # -- checking -------------------------------------------------------------------------

    def check(self, event: Event) -> Decision:
        """Decide one event. ``ask`` is returned as is: see :meth:`decide` for approvals."""
        decision = self._run(self._flow(event))
        if self._shadow:
            decision = _shadowed(event, decision)
        return self._emit(event, decision)

    async def acheck(self, event: Event) -> Decision:
        decision = await self._arun(self._flow(event))
        if self._shadow:
            decision = _shadowed(event, decision)
        return await self._aemit(event, decision)

    def explain(self, call: ToolCall) -> Explanation:
        """Why ``check(call)`` would decide as it does: the kill switch, every rule, grant,
        data-flow gate, layer and budget considered, in order, with what each said, and the
        decision. Runs the same decision code as :meth:`check`, with a trace, as a dry run:
        budgets are read, never charged; listeners and the audit log are not told; the
        cascade monitor (which remembers what it sees) is not consulted."""
        trace = Trace()
        decision = self._run_dry(self._call_flow(call, trace))
        return Explanation(decision, tuple(trace.steps))

    async def aexplain(self, call: ToolCall) -> Explanation:
        """:meth:`explain` against the store's async verbs (``acheck``'s twin)."""
        trace = Trace()
        decision = await self._arun_dry(self._call_flow(call, trace))
        return Explanation(decision, tuple(trace.steps))

    def decide(
        self,
        call: ToolCall,
        *,
        answers: Sequence[Answer] = ALL_ANSWERS,
        limited_because: str = "",
        edits: EditReader | None = None,
    ) -> Decision:
        """Check ``call`` and, when a person must approve, ask the configured approver.

        Returns a final decision: allow, modify (an approved edit), respond, or deny.
        ``answers`` limits what the person may answer (a hook that can only let a tool run
        or stop it passes approve and reject); any other answer denies, giving back the
        budget, with ``limited_because`` in the reason. ``edits`` (from an adapter that sees
        the tool's schema) applies an edit to the call's arguments; see :meth:`resolve`.
        """
        decision = self.check(call)
        if decision.effect is not Effect.ASK or decision.kind == "control":
            return decision
        limits = _Limits(tuple(answers), limited_because)
        answer = self._ask(call, decision, limits)
        if inspect.isawaitable(answer):
            _close(answer)
            answer = _fail(decision, "the approver is async; run the agent with ainvoke/astream")
        flow = self._resolve_flow(call, decision, answer, limits, edits)
        return self._emit(call, self._run(flow))

    async def adecide(
        self,
        call: ToolCall,
        *,
        answers: Sequence[Answer] = ALL_ANSWERS,
        limited_because: str = "",
        edits: EditReader | None = None,
    ) -> Decision:
        """The async twin of :meth:`decide` (async approvers are awaited)."""
        decision = await self.acheck(call)
        if decision.effect is not Effect.ASK or decision.kind == "control":
            return decision
        limits = _Limits(tuple(answers), limited_because)
        answer = self._ask(call, decision, limits)
        if inspect.isawaitable(answer):
            try:
                answer = _parse(await answer, decision)
            except Exception as exc:
                answer = _fail(decision, f"the approver failed: {type(exc).__name__}: {exc}")
        flow = self._resolve_flow(call, decision, answer, limits, edits)
        return await self._aemit(call, await self._arun(flow))

    def resolve(
        self,
        call: ToolCall,
        decision: Decision,
        approval: Any,
        *,
        edits: EditReader | None = None,
    ) -> Decision:
        """Apply a person's answer (an ``Approval``, bool or dict: see ``Approval.parse``)
        to an ``ask`` decision. An unreadable answer denies, saying so.

        An edit is merged into the call's arguments (``Approval.edit``); ``edits``, from an
        adapter that sees the tool's schema, does that by field and parses the result as
        the tool will, so that the edited call is checked on what the tool receives."""
        answer = _parse(approval, decision)
        return self._emit(call, self._run(self._resolve_flow(call, decision, answer, None, edits)))

    async def aresolve(
        self,
        call: ToolCall,
        decision: Decision,
        approval: Any,
        *,
        edits: EditReader | None = None,
    ) -> Decision:
        """The async twin of :meth:`resolve`."""
        answer = _parse(approval, decision)
        flow = self._resolve_flow(call, decision, answer, None, edits)
        return await self._aemit(call, await self._arun(flow))

    def expire(self, call: ToolCall, decision: Decision, why: str) -> Decision:
        """Deny an ``ask`` nobody answered in time, giving back the budget it took."""
        return self._emit(call, self._run(self._resolve_flow(call, decision, _fail(decision, why))))

    async def aexpire(self, call: ToolCall, decision: Decision, why: str) -> Decision:
        flow = self._resolve_flow(call, decision, _fail(decision, why))
        return await self._aemit(call, await self._arun(flow))

    def refuse(
        self,
        call: ToolCall,
        rule: str,
        reason: str,
        *,
        kind: str = "guard",
        response: str | None = None,
        refund: Decision | None = None,
    ) -> Decision:
        """Deny ``call`` for a reason an adapter established and cannot decide on its own:
        a person refused a held call, the call is in doubt (it may have run already), the
        call changed after its decision. The deny is a decision like any other: recorded in
        the audit log and told to the listeners. ``refund`` is the earlier decision whose
        call will now not run: what it charged is given back (a store failure there is
        said in the reason; the deny stands)."""
        denial = _denial(call, rule, reason, kind, response)
        return self._emit(call, self._settle(denial, self._run(self._refuse_flow(denial, refund))))

    async def arefuse(
        self,
        call: ToolCall,
        rule: str,
        reason: str,
        *,
        kind: str = "guard",
        response: str | None = None,
        refund: Decision | None = None,
    ) -> Decision:
        denial = _denial(call, rule, reason, kind, response)
        settled = self._settle(denial, await self._arun(self._refuse_flow(denial, refund)))
        return await self._aemit(call, settled)

    def wants_results(self, agent: str, tool: str) -> bool:
        """Whether :meth:`record` of a result of ``tool`` does anything: the tool is a data-flow
        source, a result-token budget counts it, the cascade monitor reads results (facts
        that make a round news, untrusted content to follow), or listeners (an audit log)
        want to see it.
        Adapters skip reading results when it does not."""
        policy = self.policy
        return bool(
            self.listeners
            or self.cascade is not None
            or policy.is_source(tool)
            or policy.result_budgets(agent, tool)
            or self._tracked(tool)
            or bool(self._delegated_calls)  # a delegator's result-token budget counts it
        )

    def wants_usage(self, agent: str) -> bool:
        """Whether :meth:`record_usage` for ``agent`` does anything: a model budget counts
        it, or a listener asked for model usage (a ``Shadow`` candidate's budgets). Adapters
        skip counting a model answer's tokens when it does not."""
        return bool(self.policy.model_budgets(agent)) or any(map(hears_usage, self.listeners))

    def _tracked(self, tool: str) -> bool:
        """Whether results of ``tool`` are fingerprinted for ``Returned`` scopes (of the
        policy's rules or of grants in force)."""
        if tool in self.policy.tracked:
            return True
        return any(tool in r.returned_tools for rs in self._grant_rules.values() for r in rs)

    def record(self, result: ToolResult) -> Decision:
        """Record a tool's result: taint from untrusted sources, result-token budgets.

        Fail closed: what the store fails to take (a ``store-error`` decision) is held in
        this guard's memory, counted by the calls it decides next (taint reaches the sinks,
        tokens the budget) and written with the next check that needs it."""
        return self.check(result)

    async def arecord(self, result: ToolResult) -> Decision:
        return await self.acheck(result)

    def record_usage(self, usage: ModelUsage) -> Decision:
        """Count what a model answer used against the model budgets (``of="model"``: tokens,
        cost). The tokens are spent: this never stops the answer, it makes the next checks
        deny once a budget is used up. A cost budget with no price for the model counts as
        used up (fail closed), said in the returned decision. Held in memory when the store
        fails, like result tokens. Listeners that ask for model usage (``"model_usage"``,
        see ``listeners.py``) hear it; others do not."""
        recorded: Decision = self._run(self._usage_flow(usage))
        tell_usage(self.listeners, usage, recorded)
        return recorded

    async def arecord_usage(self, usage: ModelUsage) -> Decision:
        recorded: Decision = await self._arun(self._usage_flow(usage))
        tell_usage(self.listeners, usage, recorded)
        return recorded

    @property
    def unwritten(self) -> int:
        """How many recorded effects (taint, result tokens) the store has not taken yet:
        held in memory and counted until a later write succeeds."""
        return self._held.count()

    def release(self, decision: Decision) -> None:
        """Give back the budget an allowed decision took, when its call did not run."""
        self._run(self._refund_flow(decision.charges))

    async def arelease(self, decision: Decision) -> None:
        await self._arun(self._refund_flow(decision.charges))

    async def avisible_tools(self, agent: str, tools: Iterable[str]) -> list[str]:
        await self._arun(self._grants_flow())
        return self._visible(agent, tuple(tools))

    def _visible(self, agent: str, tools: tuple[str, ...]) -> list[str]:
        # Cached per tool list until the grants in force change (a new _grant_rules dict).
        key = (agent, tools)
        hit = self._visible_cache.get(key)
        if hit is not None and hit[0] is self._grant_rules:
            return list(hit[1])
        extra = rules_for(self._grant_rules, agent)
        shown = tuple(t for t in tools if self.policy.visible(agent, t, extra))
        if len(self._visible_cache) >= 1024:
            self._visible_cache.clear()
        self._visible_cache[key] = (self._grant_rules, shown)
        return list(shown)

    def visible_tools(self, agent: str, tools: Iterable[str]) -> list[str]:
        """The tools ``agent`` may ever call, in order: the others are hidden from its model."""
        self._run(self._grants_flow())
        return self._visible(agent, tuple(tools))

    # -- cascades and taint ------------------------------------------------------------------

    def labels(self, scope: str) -> frozenset[str]:
        """The data-flow labels of a run (thread id, else run id): the untrusted sources
        whose content entered it, directly or in messages from other runs."""
        key = _taint_key(scope)
        return frozenset(self.store.members(key)) | self._held.labels(key)

    async def alabels(self, scope: str) -> frozenset[str]:
        key = _taint_key(scope)
        return frozenset(await self.store.amembers(key)) | self._held.labels(key)

    def trips(self, scope: str | None = None) -> list[Trip]:
        """The cascade breaker's recorded trips, oldest first (one run's with ``scope``)."""
        prefix = TRIP_PREFIX if scope is None else f"{TRIP_PREFIX}{scope}/"
        return trips_in(self.store.scan(prefix))

    async def atrips(self, scope: str | None = None) -> list[Trip]:
        prefix = TRIP_PREFIX if scope is None else f"{TRIP_PREFIX}{scope}/"
        return trips_in(await self.store.ascan(prefix))

    # -- grants ---------------------------------------------------------------------------

    def grant(
        self,
        agent: str,
        tools: str | Sequence[str],
        *,
        args: Mapping[str, Scope] | None = None,
        ttl: float | None = None,
        effect: Literal["allow", "ask"] = "allow",
    ) -> Grant:
        """Give ``agent`` a permission at run time (``ttl`` seconds, or until revoked).

        A grant that scopes a recipient (``to``) but leaves ``cc``/``bcc`` open under a
        policy with ``unscoped_args="any"`` raises a ``UserWarning`` saying so."""
        g = Grant(
            agent=agent,
            tools=(tools,) if isinstance(tools, str) else tuple(tools),
            args=dict(args or {}),
            effect=effect,
            expires_at=None if ttl is None else self.clock() + ttl,
        )
        for warning in self.policy.open_arguments([g.rule()]):
            warnings.warn(warning, UserWarning, stacklevel=2)
        self._save(g)
        return g

    def grant_role(
        self,
        role: str,
        tools: str | Sequence[str],
        *,
        args: Mapping[str, Scope] | None = None,
        ttl: float | None = None,
        effect: Literal["allow", "ask"] = "allow",
    ) -> Grant:
        """Give every agent holding ``role`` (a role of the policy, inherited roles too) a
        permission at run time; ``PolicyError`` when the policy defines no such role."""
        g = Grant(
            agent="*",
            role=role,
            tools=(tools,) if isinstance(tools, str) else tuple(tools),
            args=dict(args or {}),
            effect=effect,
            expires_at=None if ttl is None else self.clock() + ttl,
        )
        self.policy.bind(g.rule())  # the role must exist
        self._save(g)
        return g

    def delegate(
        self,
        delegator: str,
        agent: str,
        tools: str | Sequence[str],
        *,
        args: Mapping[str, Scope] | None = None,
        ttl: float | None = None,
        effect: Literal["allow", "ask"] = "allow",
    ) -> Grant:
        """Let ``delegator`` hand ``agent`` part of what it holds; more raises ``DelegationError``.

        A call ``agent`` makes under the grant (one its own authority does not permit) is
        charged to its own budgets and to every budget that would charge the same call by
        ``delegator``, and by each delegator up the chain: together they never do more than
        ``delegator`` could (docs/budgets-and-grants.md)."""
        child = Grant(
            agent=agent,
            tools=(tools,) if isinstance(tools, str) else tuple(tools),
            args=dict(args or {}),
            effect=effect,
            expires_at=None if ttl is None else self.clock() + ttl,
            granted_by=delegator,
        )
        held = list(self.grants(delegator))
        parent = check_delegation(self.policy, held, child, delegator)
        child = Grant(**{**_fields(child), "parent": parent})
        self._save(child)
        return child

    def revoke(self, grant: Grant | str) -> bool:
        """Revoke a grant (and, through their chain, everything delegated from it)."""
        gid = grant.id if isinstance(grant, Grant) else grant
        removed = self.store.delete(GRANT_PREFIX + gid)
        self.store.charge(EPOCH_KEY, 1, _INF)
        self._grant_watch.changed()
        return removed

    def grants(self, agent: str | None = None) -> list[Grant]:
        """Grants in force (unexpired, chain intact), optionally for one agent."""
        self._run(self._grants_flow())
        now = self.clock()
        rules = active_rules(self._grants, self.policy, now)
        live = {r.id[len("grant:") :] for rs in rules.values() for r in rs}
        shared = {r.id: r for r in rules.get(ROLE_GRANTS, ())}

        def held_by_agent(g: Grant) -> bool:
            if agent is None:
                return True
            if g.role is None:
                return g.agent == agent
            bound = shared.get(f"grant:{g.id}")
            return bound is not None and bound.for_agent(agent)

        return [g for g in self._grants if g.id in live and held_by_agent(g)]

    def _save(self, g: Grant) -> None:
        self.store.put(GRANT_PREFIX + g.id, g.to_doc())
        self.store.charge(EPOCH_KEY, 1, _INF)
        self._grant_watch.changed()

    def _forget_grant_epoch(self) -> None:
        self._grant_epoch = None

    # -- the flows (pure logic; store I/O yielded) ----------------------------------------

    def _flow(self, event: Event) -> _Flow:
        if isinstance(event, ToolCall):
            return self._call_flow(event)
        if isinstance(event, ToolResult):
            return self._result_flow(event)
        if isinstance(event, ModelCall):
            return self._model_flow(event)
        if isinstance(event, AgentMessage):
            return self._message_flow(event)
        return _const(
            Decision(
                Effect.DENY,
                "unknown-event",
                f"the guard cannot read a {type(event).__name__}; expected a ToolCall, "
                "ToolResult, AgentMessage or ModelCall",
                kind="guard",
            )
        )

    def _grants_flow(self) -> Generator[_Op, Any, None]:
        watch = self._grant_watch
        if not watch.current():
            generation = watch.reading()
            epoch = yield _op("total", EPOCH_KEY)
            if epoch != self._grant_epoch:
                docs = yield _op("scan", GRANT_PREFIX)
                self._grants = tuple(Grant.from_doc(d) for d in docs.values())
                self._chains = delegation_chains(self._grants)
                self._grant_epoch = epoch
                self._grants_at = -_INF
            watch.read(generation)
        now = self.clock()
        if now - self._grants_at >= 1.0 or any(
            g.expires_at is not None and g.expires_at <= now for g in self._grants
        ):
            self._grant_rules = active_rules(self._grants, self.policy, now)
            self._grants_at = now

    def _model_flow(self, call: ModelCall) -> _Flow:
        stop = yield from self.controls.flow(call.agent, call.thread_id, tools=False)
        if stop is not None:
            return stop
        budgets = self.policy.model_budgets(call.agent)
        if budgets:
            now = self.clock()
            for b in budgets:
                spent = yield from self._spent_flow(b, b.key(call), now)
                if spent is not None:
                    reason = f"budget {b.id!r} exhausted: {spent}"
                    return Decision(Effect.DENY, b.id, reason, agent=call.agent, kind="budget")
        return _ALLOW_MODEL

    def _spent_flow(self, b: Budget, key: str, now: float) -> Generator[_Op, Any, str | None]:
        """A budget charged after the fact (result tokens, model use): what was used, once
        its total has reached the limit (held charges written, and counted, first)."""
        yield from self._flush_charges_flow(key)
        used = yield _op("total", key, window=b.window, now=now)
        used += self._held.tokens(key, b.window, now)
        if used < b.limit:
            return None
        if b.of == "results":
            what = "result tokens"
        elif b.measure is Measure.COST:
            what = "dollars of model use"
        else:
            what = "model tokens"
        return f"{used:g} of {b.limit:g} {what} used"

    def _usage_flow(self, usage: ModelUsage) -> _Flow:
        notes: list[str] = []
        now = self.clock()
        effect = Effect.ALLOW
        for b in self.policy.model_budgets(usage.agent):
            try:
                amount = b.used_by(usage)
            except MeasureError as exc:
                amount, effect = b.limit, Effect.DENY
                notes.append(f"fail closed: {exc}; {b.id!r} counted as used up")
            else:
                notes.append(f"{amount:g} counted against {b.id!r}")
            yield from self._charge_flow(b.key(usage), amount, b.window, now)
        return Decision(
            effect, "usage", "; ".join(notes) or "no model budget", agent=usage.agent, kind="budget"
        )

    def _message_flow(self, msg: AgentMessage, *, checked: bool = False) -> _Flow:
        """A message between agents: the kill switch for its sender (``checked``: done by
        the caller), hand-offs to a quarantined agent held, its labels carried into the
        recipient's run, then the cascade monitor and, if it trips, the breaker."""
        if not checked:
            stop = yield from self.controls.flow(msg.sender, msg.thread_id)
            if stop is not None:
                return stop
        held = self.controls.quarantined(msg.recipient)
        if held is not None:
            return Decision(
                Effect.DENY,
                "quarantine",
                f"held: {msg.recipient!r} is quarantined ({held.describe()}); send this "
                "to another agent or wait for a person to release it",
                agent=msg.sender,
                kind="cascade",
            )
        if msg.labels or (msg.origin is not None and msg.origin != msg.scope_key):
            labels = set(msg.labels)
            if msg.origin is not None and msg.origin != msg.scope_key:
                origin = _taint_key(msg.origin)
                labels.update((yield _op("members", origin)))
                labels.update(self._held.labels(origin))
            if labels:
                yield from self._taint_flow(_taint_key(msg.scope_key), tuple(sorted(labels)))
        if self.cascade is not None:
            alarms = self.cascade.observe(msg)
            if alarms:
                trips: list[Trip] = []
                flow = self.breaker.flow(
                    alarms, msg.sender, msg.thread_id, self.controls, self.clock(), trips
                )
                acted = self._record_trips(trips, (yield from flow))
                if acted is not None:
                    return acted
        return _ALLOW_MESSAGE

    def _call_flow(self, call: ToolCall, trace: Trace | None = None) -> _Flow:
        """Decide a tool call: kill switch, grants, taint, rules, cascade, budgets.
        ``trace`` (``explain``) collects what each said; ``None`` costs nothing."""
        policy = self.policy
        stop = yield from self.controls.flow(call.agent, call.thread_id)
        if trace is not None:
            said = "stops it" if stop is not None else "lets it through"
            trace.add("control", "kill switch", said, stop.reason if stop is not None else "")
        if stop is not None:
            return _replace(stop, tool=call.tool)
        yield from self._grants_flow()
        grants = self._grant_rules
        extra = grants.get(call.agent, ())
        if ROLE_GRANTS in grants:  # grants given to roles (rules_for, inlined)
            extra += grants[ROLE_GRANTS]
        bucket = policy.bucket(call.agent, call.tool)
        tainted: frozenset[str] = frozenset()
        if bucket.needs_taint:
            key = _taint_key(call.scope_key)
            held = self._held.labels(key)
            if held:  # taint the store failed to take: write it now, count it either way
                tainted = held
                yield from self._taint_flow(key, tuple(sorted(held)))
            tainted = frozenset((yield _op("members", key))) | tainted
            if trace is not None:
                found = ", ".join(sorted(tainted)) or "none"
                trace.add("flow", "taint", "read", f"untrusted sources in this run: {found}")
        provenance = None
        if bucket.needs_provenance or (extra and any(r.returned_tools for r in extra)):
            provenance = yield from self._provenance_flow(call, bucket.returned, extra)
        decision = policy.evaluate(call, tainted, extra, trace, provenance=provenance)
        if trace is not None and (self.cascade is not None or call.message is not None):
            trace.add("control", "cascade monitor", "not consulted", "explain changes no state")
        elif self.cascade is not None or call.message is not None:
            contained = yield from self._cascade_call_flow(call, decision)
            if contained is not None:
                return _replace(contained, tool=call.tool)
        chain: tuple[str, ...] = ()
        if self._chains and extra and decision.effect is not Effect.DENY:
            chain = self._delegators(call, decision, extra, tainted, provenance)
            if trace is not None and chain:
                trace.add(
                    "grant",
                    decision.rule,
                    "delegated",
                    f"the call is made under authority {', '.join(map(repr, chain))} "
                    "delegated: their budgets are charged too",
                )
        if (
            chain
            and trace is None
            and call.call_id is not None
            and any(policy.result_budgets(a, call.tool) for a in chain)
        ):
            with self._delegated_lock:
                if len(self._delegated_calls) >= 4096:  # oldest first
                    del self._delegated_calls[next(iter(self._delegated_calls))]
                self._delegated_calls[call.call_id] = chain
        if decision.effect is Effect.DENY or not (bucket.budgets or chain):
            if trace is not None and bucket.budgets:
                for b in bucket.budgets:
                    trace.add("budget", b.id, "not reached", "the call is denied")
            return decision
        now = self.clock()
        charges: list[Charge] = []
        for b, who, key in self._payers(call, bucket.budgets, chain):
            payer = (
                ""
                if who is None
                else f" (charged to {who!r}, whose authority {call.agent!r} calls under)"
            )
            try:
                if b.measure is Measure.DISTINCT:
                    members = b.members(call)
                    added = yield _op("add_members", key, members, b.limit)
                    if trace is not None:
                        said = "exhausted" if added is None else "has room"
                        trace.add("budget", b.id, said, f"distinct {b.arg}: {list(members)}")
                    if added is None:
                        yield from self._refund_flow(charges)
                        return _budget_deny(
                            call, b.id, f"more than {b.limit:g} distinct {b.arg} values{payer}"
                        )
                    charges.append(Charge(key, members=tuple(added)))
                elif b.of != "args":  # result tokens, model use: charged after the fact
                    spent = yield from self._spent_flow(b, key, now)
                    if trace is not None:
                        said = "has room" if spent is None else "exhausted"
                        trace.add("budget", b.id, said, spent or f"under {b.limit:g} used")
                    if spent is not None:
                        yield from self._refund_flow(charges)
                        return _budget_deny(call, b.id, spent + payer)
                else:
                    amount = b.amount(call)
                    ok = yield _op("charge", key, amount, b.limit, window=b.window, now=now)
                    if trace is not None:
                        said = "has room" if ok else "exhausted"
                        trace.add(
                            "budget", b.id, said, f"this call costs {amount:g} of {b.limit:g}"
                        )
                    if not ok:
                        yield from self._refund_flow(charges)
                        used = yield _op("total", key, window=b.window, now=now)
                        unit = "calls" if b.measure is Measure.CALLS else str(b.measure)
                        if b.measure is Measure.SUM:
                            unit = f"{b.arg} (this call: {amount:g})"
                        span = f" in the last {b.window:g}s" if b.window else ""
                        return _budget_deny(
                            call, b.id, f"{used:g} of {b.limit:g} {unit} used{span}{payer}"
                        )
                    charges.append(Charge(key, amount, b.window, now))
            except MeasureError as exc:
                if trace is not None:
                    trace.add("budget", b.id, "cannot measure the call (fail closed)", str(exc))
                yield from self._refund_flow(charges)
                return _budget_deny(call, b.id, f"fail closed: {exc}{payer}", exhausted=False)
        return Decision(
            decision.effect,
            decision.rule,
            decision.reason,
            tool=call.tool,
            agent=call.agent,
            kind=decision.kind,
            charges=tuple(charges),
            would=decision.would,
            would_rule=decision.would_rule,
        )

    def _delegators(
        self,
        call: ToolCall,
        decision: Decision,
        extra: Sequence[Rule],
        tainted: frozenset[str],
        provenance: Provenance | None,
    ) -> tuple[str, ...]:
        """The delegators whose authority a permitted ``call`` is made under (nearest
        first), or ``()`` when the agent's own authority (the policy, grants nobody
        delegated to it) permits it: only a call that needs a delegated grant uses one."""
        chains = self._chains
        # Which rules are delegated grants about the call, and whether any rule or grant
        # of the agent's own is (else its own authority cannot permit the call): cached per
        # (agent, tool) until the grants in force change (a new _grant_rules dict).
        key = (call.agent, call.tool)
        hit = self._delegated_cache.get(key)
        if hit is not None and hit[0] is self._grant_rules and hit[1] is chains:
            delegated, own, speaks = hit[2], hit[3], hit[4]
        else:
            delegated = tuple(r for r in extra if r.id in chains and r.about(*key))
            own = tuple(r for r in extra if r.id not in chains)
            bucket = self.policy.bucket(*key)
            speaks = bool(bucket.asks or bucket.allows or any(r.about(*key) for r in own))
            if len(self._delegated_cache) >= 1024:
                self._delegated_cache.clear()
            self._delegated_cache[key] = (self._grant_rules, chains, delegated, own, speaks)
        if not delegated:
            return ()
        evaluate = self.policy.evaluate
        if speaks and evaluate(call, tainted, own, provenance=provenance).effect is not Effect.DENY:
            return ()
        found = chains.get(decision.rule)
        if found is not None:
            return found
        for r in delegated:  # a layered policy names the deepest layer's rule, not the grant
            if evaluate(call, tainted, (*own, r), provenance=provenance).effect is not Effect.DENY:
                return chains[r.id]
        # only several delegated grants together permit it: every one of their chains pays
        return tuple(dict.fromkeys(a for r in delegated for a in chains[r.id]))

    def _payers(
        self, call: ToolCall, budgets: tuple[Budget, ...], chain: tuple[str, ...]
    ) -> list[tuple[Budget, str | None, str]]:
        """The budgets ``call`` is charged to, each with whose (``None``: its agent's own)
        and the store key: its agent's, then, for a call under a delegated grant, those that
        would charge the same call by each delegator in ``chain``, in that delegator's
        partition. A partition two of them share is charged once."""
        out: list[tuple[Budget, str | None, str]] = [(b, None, b.key(call)) for b in budgets]
        if not chain:
            return out
        seen = {key for _, _, key in out}
        for agent in chain:
            if agent == call.agent:
                continue
            for b in self.policy.bucket(agent, call.tool).budgets:
                key = b.key(call, agent)
                if key not in seen:
                    seen.add(key)
                    out.append((b, agent, key))
        return out

    def _cascade_call_flow(
        self, call: ToolCall, decision: Decision
    ) -> Generator[_Op, Any, Decision | None]:
        """What the cascade monitor makes of a call the policy decided: a denial is
        remembered (escalation), a permitted call may be a denied one coming back through
        another agent, and a permitted hand-off is a message the monitor sees."""
        monitor = self.cascade
        if decision.effect is Effect.DENY:
            if monitor is not None and decision.kind in ("rule", "grant"):
                monitor.observe_call(call, denied=True)
            return None
        message = call.message
        told: list[Alarm] | None = None  # the message's alarms, once the monitor saw it
        if monitor is None:
            alarms: Sequence[Alarm] = ()
        elif message is not None and self._plain(message):
            # a hand-off nothing holds back: the call and its message in one monitor call
            alarms, told = monitor.observe_handoff(call)
        else:
            alarms = monitor.observe_call(call, denied=False)
        if alarms:
            trips: list[Trip] = []
            acted = yield from self.breaker.flow(
                alarms, call.agent, call.thread_id, self.controls, self.clock(), trips
            )
            acted = self._record_trips(trips, acted)
            if acted is not None:
                return acted
        if told and message is not None:
            trips = []
            flow = self.breaker.flow(
                told, message.sender, message.thread_id, self.controls, self.clock(), trips
            )
            acted = self._record_trips(trips, (yield from flow))
            if acted is not None:
                return acted
        elif told is None and message is not None:
            said = yield from self._message_flow(message, checked=True)
            if said is not _ALLOW_MESSAGE:
                return said
        return None

    def _plain(self, msg: AgentMessage) -> bool:
        """Nothing in ``_message_flow`` stands between the monitor and ``msg``: its
        recipient is not quarantined and it carries no labels into another run."""
        return (
            not msg.labels
            and (msg.origin is None or msg.origin == msg.scope_key)
            and self.controls.quarantined(msg.recipient) is None
        )

    def _result_flow(self, result: ToolResult) -> _Flow:
        policy = self.policy
        notes: list[str] = []
        # (an error result too: the model reads it, and an error page or an exception can
        # quote what the source returned)
        untrusted = policy.is_source(result.tool)
        if untrusted:
            yield from self._taint_flow(_taint_key(result.scope_key), (result.tool,))
            notes.append(f"untrusted content from {result.tool!r} entered the run")
            if policy.carries:
                yield from self._prints_flow(result)
        elif not result.is_error and self._tracked(result.tool):
            prints = tuple(sorted(returned_prints(result.content)))
            yield _op("add_members", _returned_key(result.scope_key, result.tool), prints, None)
            notes.append(f"values {result.tool!r} returned are known to this run")
        if self.cascade is not None:
            self.cascade.observe_result(result, untrusted=untrusted)
        budgets: list[tuple[Budget, str | None]] = [
            (b, None) for b in policy.result_budgets(result.agent, result.tool)
        ]
        chain: tuple[str, ...] = ()
        if result.call_id is not None and self._delegated_calls:
            with self._delegated_lock:
                chain = self._delegated_calls.pop(result.call_id, ())
        for a in chain:  # a call made under a delegated grant: its delegators' budgets too
            budgets += [(b, a) for b in policy.result_budgets(a, result.tool)]
        if budgets:
            from ._tokens import count_tokens

            now = self.clock()
            seen: set[str] = set()
            for b, who in budgets:
                key = b.key(result, who)
                if key in seen:
                    continue
                seen.add(key)
                n = count_tokens(result.content, b.encoding)
                yield from self._charge_flow(key, float(n), b.window, now)
                whose = "" if who is None else f" (of {who!r}, whose grant it was made under)"
                notes.append(f"{n} result tokens counted against {b.id!r}{whose}")
        return Decision(
            Effect.ALLOW,
            "record",
            "; ".join(notes) or "recorded",
            tool=result.tool,
            agent=result.agent,
            kind="guard",
        )

    def _prints_flow(self, result: ToolResult) -> Generator[_Op, Any, None]:
        """Fingerprint an untrusted result. If the store fails, the run is labelled
        ``LOST`` (held in memory like taint): every argument then counts as carrying."""
        prints = tuple(sorted(fingerprints(result.content)))
        try:
            yield _op("add_members", _untrusted_key(result.scope_key), prints, None)
        except GeneratorExit:
            self._held.add_labels(_taint_key(result.scope_key), (LOST,))
            raise

    def _provenance_flow(
        self, call: ToolCall, returned: tuple[str, ...], extra: Sequence[Rule]
    ) -> Generator[_Op, Any, Provenance]:
        """What this run's results said, for the rules that ask: untrusted fingerprints and
        the values the tools named by ``Returned`` scopes returned."""
        scope = call.scope_key
        tools = set(returned)
        for r in extra:
            if r.about(call.agent, call.tool):
                tools.update(r.returned_tools)
        untrusted: frozenset[str] = frozenset()
        if self.policy.carries:
            untrusted = frozenset((yield _op("members", _untrusted_key(scope))))
        found: dict[str, frozenset[str]] = {}
        for tool in sorted(tools):
            found[tool] = frozenset((yield _op("members", _returned_key(scope, tool))))
        return Provenance(untrusted, found)

    def _declassify_flow(self, call: ToolCall) -> Generator[_Op, Any, None]:
        """A person approved ``call`` past a flow with ``carries``: what its arguments
        carried is no longer untrusted in this run."""
        try:
            prints = value_prints(dict(call.args))
        except ValueError:
            return
        if prints:
            yield _op("remove_members", _untrusted_key(call.scope_key), tuple(sorted(prints)))

    def _taint_flow(self, key: str, labels: tuple[str, ...]) -> Generator[_Op, Any, None]:
        """Add ``labels`` to a run's taint. If the store fails, the driver closes the flow at
        the yield: the labels are then held in memory, where sinks still see them."""
        try:
            yield _op("add_members", key, labels, None)
        except GeneratorExit:
            self._held.add_labels(key, labels)
            raise
        self._held.written_labels(key, labels)

    def _charge_flow(
        self, key: str, amount: float, window: float | None, now: float
    ) -> Generator[_Op, Any, None]:
        """Count result tokens; held in memory when the store does not take them."""
        try:
            yield _op("charge", key, amount, _INF, window=window, now=now)
        except GeneratorExit:
            self._held.add_charge(key, (amount, window, now))
            raise

    def _flush_charges_flow(self, key: str) -> Generator[_Op, Any, None]:
        """Write the held result tokens of ``key`` (each taken by one flow at a time)."""
        for entry in self._held.take_charges(key):
            amount, window, at = entry
            yield from self._charge_flow(key, amount, window, at)

    def _refund_flow(self, charges: Sequence[Charge]) -> Generator[_Op, Any, None]:
        for c in reversed(charges):
            if c.members:
                yield _op("remove_members", c.key, c.members)
            elif c.amount:
                yield _op("charge", c.key, -c.amount, _INF, window=c.window, now=c.at)

    def _refuse_flow(self, denial: Decision, refund: Decision | None) -> _Flow:
        if refund is not None:
            yield from self._refund_flow(refund.charges)
        return denial

    @staticmethod
    def _settle(denial: Decision, outcome: Decision) -> Decision:
        """The deny, whatever became of its refund (a failed one is said in the reason)."""
        if outcome is denial:
            return denial
        return _replace(
            denial, reason=f"{denial.reason} (its budget was not given back: {outcome.reason})"
        )

    def _resolve_flow(
        self,
        call: ToolCall,
        asked: Decision,
        answer: Approval | Decision,
        limits: _Limits | None = None,
        edits: EditReader | None = None,
    ) -> _Flow:
        if isinstance(answer, Decision):  # the approver could not be asked
            yield from self._refund_flow(asked.charges)
            return answer
        who = f" by {answer.approver}" if answer.approver else ""
        common: dict[str, Any] = {
            "tool": call.tool,
            "agent": call.agent,
            "kind": "approval",
            "approver": answer.approver or None,
        }
        if limits is not None and answer.answer not in limits.answers:
            yield from self._refund_flow(asked.charges)
            possible = ", ".join(str(a) for a in limits.answers)
            because = f": {limits.because}" if limits.because else ""
            return Decision(
                Effect.DENY,
                asked.rule,
                f"{asked.reason}; a person answered {str(answer.answer)!r}{who}, which cannot "
                f"be applied here (possible: {possible}){because}",
                response=answer.message or None,
                **common,
            )
        if answer.answer is Answer.APPROVE:
            if self.policy.declassifies(asked.rule):
                yield from self._declassify_flow(call)
            return _replace(
                asked,
                effect=Effect.ALLOW,
                reason=f"approved{who}: {asked.reason}",
                kind="approval",
                approver=answer.approver or None,
            )
        yield from self._refund_flow(asked.charges)
        if answer.answer is Answer.REJECT:
            msg = answer.message or "a person rejected this call"
            return Decision(Effect.DENY, asked.rule, f"rejected{who}: {msg}", **common)
        if answer.answer is Answer.RESPOND:
            return Decision(
                Effect.RESPOND,
                asked.rule,
                f"answered{who} in the tool's place",
                response=answer.message,
                **common,
            )
        assert answer.args is not None
        if answer.tool is not None and answer.tool != call.tool:
            return Decision(
                Effect.DENY,
                asked.rule,
                f"an edit cannot switch tools: the call is to {call.tool!r}, the edit names "
                f"{answer.tool!r}",
                **common,
            )
        if edits is None:
            sent = answer.edited_args(call.args)
            shaped = EditedArgs(sent, sent)
        else:
            shaped = edits(answer, call.args)
        if shaped.received is None:
            edited = dataclasses.replace(
                call, args=shaped.sent, problem=shaped.problem or "unreadable"
            )
        else:
            edited = call.with_args(shaped.received)
        again = yield from self._call_flow(edited)
        if again.effect is Effect.DENY:
            shown = again.reason if again.model_reason is None else again.model_reason
            return _replace(
                again,
                reason=f"the edited call is out of policy: {again.reason}",
                model_reason=f"the edited call is out of policy: {shown}",
            )
        return Decision(
            Effect.MODIFY,
            asked.rule,
            f"edited{who} and re-checked: {again.reason}",
            args=shaped.sent,
            charges=again.charges,
            **common,
        )

    # -- plumbing -------------------------------------------------------------------------

    def _ask(
        self, call: ToolCall, decision: Decision, limits: _Limits
    ) -> Approval | Decision | Any:
        if self.approver is None:
            return _fail(decision, "a person must approve it and no approver is configured")
        try:
            answer = self.approver(ApprovalRequest(call, decision, allowed=limits.answers))
        except Exception as exc:
            return _fail(decision, f"the approver failed: {type(exc).__name__}: {exc}")
        if inspect.isawaitable(answer):
            return answer
        return _parse(answer, decision)

    def _emit(self, event: Event, decision: Decision) -> Decision:
        """Record ``decision`` in the audit log (if any), then tell the listeners the
        decision that stands: a deny ``audit-error`` when the log could not record it."""
        if self._audited(event, decision):
            try:
                self._audit_decision(event, decision)
            except Exception as exc:
                decision = self._unrecorded(decision, exc)
        return self._tell(event, decision)

    async def _aemit(self, event: Event, decision: Decision) -> Decision:
        """``_emit`` for async paths: the append (a lock wait, an fsync) runs on a worker
        thread, not in the event loop."""
        if self._audited(event, decision):
            try:
                await asyncio.to_thread(self._audit_decision, event, decision)
            except Exception as exc:
                decision = self._unrecorded(decision, exc)
        return self._tell(event, decision)

    def _audited(self, event: Event, decision: Decision) -> bool:
        # allowed model calls are a kill-switch check per model turn: not worth a record
        # (unless shadow mode let one through that a budget would have stopped)
        return self.audit is not None and not (
            decision.allowed and decision.shadow is None and isinstance(event, ModelCall)
        )

    def _audit_decision(self, event: Event, decision: Decision) -> None:
        assert self.audit is not None
        self.audit.decision(event, decision, policy=self.policy_id, checkpoint_id=CHECKPOINT.get())

    def _tell(self, event: Event, decision: Decision) -> Decision:
        for listener in self.listeners:
            listener(event, decision)
        return decision

    def _unrecorded(self, decision: Decision, exc: Exception) -> Decision:
        """Fail closed: what the audit log could not record does not go ahead."""
        if decision.effect is Effect.DENY:
            return decision
        if decision.charges:
            # the store may be what failed; the deny stands either way
            with contextlib.suppress(Exception):
                self.release(decision)
        return Decision(
            Effect.DENY,
            "audit-error",
            f"fail closed: the audit log could not record this decision "
            f"({type(exc).__name__}: {exc}); it was {decision.effect} by rule {decision.rule!r}",
            tool=decision.tool,
            agent=decision.agent,
            kind="guard",
        )

    def _record_trips(self, trips: Sequence[Trip], acted: Decision | None) -> Decision | None:
        """Each breaker trip as its own audit record, with the evidence it rests on; the
        step's decision (fail closed: an ``audit-error`` deny if a trip cannot be
        recorded)."""
        audit = self.audit
        if audit is None:
            return acted
        try:
            for t in trips:
                audit.append(
                    "trip",
                    outcome=t.response,
                    agent=t.culprit,
                    rule=f"cascade:{t.signal}",
                    reason=t.reason,
                    thread_id=t.thread_id,
                    checkpoint_id=CHECKPOINT.get(),
                    policy=self.policy_id,
                    detail={
                        "scope": t.scope,
                        "agents": list(t.agents),
                        "at_message": t.at_message,
                        "evidence": [dict(e) for e in t.evidence],
                    },
                )
        except Exception as exc:
            return self._unrecorded(acted or _ALLOW_MESSAGE, exc)
        return acted

    def _run(self, flow: Generator[_Op, Any, Any]) -> Any:
        store = self.store
        try:
            op = next(flow)
            while True:
                name, args, kwargs = op
                try:
                    result = getattr(store, name)(*args, **kwargs)
                except Exception as exc:
                    return _store_failed(flow, name, exc)
                op = flow.send(result)
        except StopIteration as stop:
            return stop.value

    async def _arun(self, flow: Generator[_Op, Any, Any]) -> Any:
        store = self.store
        try:
            op = next(flow)
            while True:
                name, args, kwargs = op
                try:
                    result = await getattr(store, "a" + name)(*args, **kwargs)
                except Exception as exc:
                    return _store_failed(flow, name, exc)
                op = flow.send(result)
        except StopIteration as stop:
            return stop.value

    def _run_dry(self, flow: Generator[_Op, Any, Any]) -> Any:
        """Drive ``flow`` reading the store and writing nothing (``explain``)."""
        store = self.store
        try:
            op = next(flow)
            while True:
                name, args, kwargs = op
                try:
                    result = _dry(name, args, kwargs, store.total, store.members)
                except Exception as exc:
                    return _store_failed(flow, name, exc)
                if result is _READ:
                    try:
                        result = getattr(store, name)(*args, **kwargs)
                    except Exception as exc:
                        return _store_failed(flow, name, exc)
                op = flow.send(result)
        except StopIteration as stop:
            return stop.value

    async def _arun_dry(self, flow: Generator[_Op, Any, Any]) -> Any:
        store = self.store
        try:
            op = next(flow)
            while True:
                name, args, kwargs = op
                try:
                    if name == "charge":
                        key, amount, limit = args
                        used = await store.atotal(key, **kwargs)
                        result = amount <= 0 or used + amount <= limit
                    elif name == "add_members":
                        key, new, limit = args
                        held = await store.amembers(key)
                        result = _dry_members(held, new, limit)
                    elif name in _WRITES:
                        result = None
                    else:
                        result = await getattr(store, "a" + name)(*args, **kwargs)
                except Exception as exc:
                    return _store_failed(flow, name, exc)
                op = flow.send(result)
        except StopIteration as stop:
            return stop.value


_READ = object()
_WRITES = frozenset({"remove_members", "put", "delete"})


def _dry(
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    total: Callable[..., float],
    members: Callable[[str], frozenset[str]],
) -> Any:
    """What a write op would answer, computed from reads; ``_READ`` for a read op."""
    if name == "charge":
        key, amount, limit = args
        return amount <= 0 or total(key, **kwargs) + amount <= limit
    if name == "add_members":
        key, new, limit = args
        return _dry_members(members(key), new, limit)
    if name in _WRITES:
        return None
    return _READ


def _dry_members(
    held: frozenset[str], new: Iterable[str], limit: float | None
) -> tuple[str, ...] | None:
    added = tuple(sorted(set(new) - held))
    if limit is not None and len(held) + len(added) > limit:
        return None
    return added


_HeldCharge = tuple[float, float | None, float]


class _Held:
    """Recorded effects the store did not take: taint labels and result-token charges, per
    store key. Decisions count them; the next flow that reads the key writes them (a held
    charge is taken out while it is written, and put back if that fails too).
    Process-local: other processes sharing the store see them once written."""

    __slots__ = ("_charges", "_labels", "_lock")

    def __init__(self) -> None:
        self._labels: dict[str, set[str]] = {}
        self._charges: dict[str, list[_HeldCharge]] = {}
        self._lock = threading.Lock()

    def count(self) -> int:
        with self._lock:
            return sum(map(len, self._labels.values())) + sum(map(len, self._charges.values()))

    def labels(self, key: str) -> frozenset[str]:
        if not self._labels:  # the common case, without the lock
            return frozenset()
        with self._lock:
            return frozenset(self._labels.get(key, ()))

    def add_labels(self, key: str, labels: Iterable[str]) -> None:
        with self._lock:
            self._labels.setdefault(key, set()).update(labels)

    def written_labels(self, key: str, labels: Iterable[str]) -> None:
        with self._lock:
            held = self._labels.get(key)
            if held is not None:
                held.difference_update(labels)
                if not held:
                    del self._labels[key]

    def tokens(self, key: str, window: float | None, now: float) -> float:
        if not self._charges:  # the common case, without the lock
            return 0.0
        with self._lock:
            held = list(self._charges.get(key, ()))
        return sum(amount for amount, _, at in held if window is None or at > now - window)

    def add_charge(self, key: str, entry: _HeldCharge) -> None:
        with self._lock:
            self._charges.setdefault(key, []).append(entry)

    def take_charges(self, key: str) -> list[_HeldCharge]:
        if not self._charges:
            return []
        with self._lock:
            return self._charges.pop(key, [])


@dataclass(frozen=True, slots=True)
class _Limits:
    """What a person may answer where the guard asks, and why no more."""

    answers: tuple[Answer, ...]
    because: str = ""


def _store_failed(flow: Generator[_Op, Any, Any], op: str, exc: Exception) -> Decision:
    flow.close()
    detail = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
    return Decision(
        Effect.DENY, "store-error", f"fail closed: the store failed ({op}): {detail}", kind="guard"
    )


def _const(decision: Decision) -> _Flow:
    return decision
    yield  # pragma: no cover - makes this a generator


def _replace(decision: Decision, **changes: Any) -> Decision:
    """``dataclasses.replace`` without its per-call field introspection (hot path)."""
    d = decision
    return Decision(
        changes.get("effect", d.effect),
        changes.get("rule", d.rule),
        changes.get("reason", d.reason),
        tool=changes.get("tool", d.tool),
        agent=changes.get("agent", d.agent),
        args=changes.get("args", d.args),
        response=changes.get("response", d.response),
        kind=changes.get("kind", d.kind),
        charges=changes.get("charges", d.charges),
        approver=changes.get("approver", d.approver),
        model_reason=changes.get("model_reason", d.model_reason),
        shadow=changes.get("shadow", d.shadow),
        would=d.would,
        would_rule=d.would_rule,
    )


def _shadowed(event: Event, decision: Decision) -> Decision:
    """Shadow mode: a tool or model call the policy denies or asks about runs anyway; the
    decision says what the policy decided. Flags in the store are not the policy's: a kill,
    a pause or a quarantine (set by an operator, or by the cascade breaker) still stops the
    call."""
    if (
        decision.effect not in (Effect.DENY, Effect.ASK)
        or decision.kind == "control"
        or (decision.rule == "quarantine" and decision.kind == "cascade")
        or not isinstance(event, ToolCall | ModelCall)
    ):
        return decision
    return _replace(
        decision,
        effect=Effect.ALLOW,
        reason=f"shadow mode, not enforced: would {decision.effect.value}: {decision.reason}",
        shadow=decision.effect.value,
    )


def _fields(g: Grant) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(g, f.name) for f in dataclasses.fields(g)}


def _taint_key(scope: str) -> str:
    return f"taint/{scope}"


def _untrusted_key(scope: str) -> str:
    return f"prov/{scope}/untrusted"


def _returned_key(scope: str, tool: str) -> str:
    return f"prov/{scope}/returned/{tool}"


def _budget_deny(call: ToolCall, budget: str, detail: str, *, exhausted: bool = True) -> Decision:
    return Decision(
        Effect.DENY,
        budget,
        f"budget {budget!r} exhausted: {detail}" if exhausted else detail,
        tool=call.tool,
        agent=call.agent,
        kind="budget",
    )


def _denial(call: ToolCall, rule: str, reason: str, kind: str, response: str | None) -> Decision:
    return Decision(
        Effect.DENY, rule, reason, tool=call.tool, agent=call.agent, kind=kind, response=response
    )


def _fail(asked: Decision, why: str) -> Decision:
    return Decision(
        Effect.DENY,
        asked.rule,
        f"{asked.reason}; {why}",
        tool=asked.tool,
        agent=asked.agent,
        kind="approval",
    )


def _parse(value: Any, asked: Decision) -> Approval | Decision:
    try:
        return Approval.parse(value)
    except (TypeError, ValueError) as exc:
        return _fail(asked, f"unreadable approval: {exc}")


def _close(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()
