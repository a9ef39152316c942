"""Rules: who (agents) may call what (tools) with which arguments (scopes).

A policy is an ordered list of small rule objects, each testable alone. Semantics borrowed
from Cedar: default deny; a matching ``deny`` always wins; then ``ask`` (allowed once a person
approves); then ``allow``. Every decision names the rule that made it.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .._errors import PolicyError, ScopeViolation
from .._events import ToolCall
from ..scopes import Not, OptionalScope, Provenance, Returned, Scope, arg_data, is_empty
from ..scopes.returned import check_with, returned_in
from ._patterns import NameSet, as_names, name_set

LOST = "\0provenance-lost"
"""A run label meaning some untrusted result's fingerprints did not reach the store: every
argument then counts as carrying untrusted content (fail closed)."""

Condition = Callable[[ToolCall], bool]
"""A custom predicate over the whole call: ``True`` means the rule applies."""


class RuleEffect(enum.StrEnum):
    """What a rule says about the calls it matches: allow, ask a person, or deny."""

    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"

    def __str__(self) -> str:
        return self.value


class Outcome(enum.Enum):
    """How one rule relates to one call."""

    MATCH = "match"  # the rule applies to this call
    MISS = "miss"  # the rule is about this tool and agent, but the arguments are out of scope
    ERROR = "error"  # the rule could not be evaluated: fail closed


@dataclass(frozen=True, slots=True)
class RuleResult:
    """``reason`` is for the operator; ``short`` (when set) is what the model may read: what
    was wrong, never what the rule allows (see ``ScopeViolation``)."""

    outcome: Outcome
    reason: str = ""
    short: str = ""

    @property
    def for_model(self) -> str:
        return self.short or self.reason


@dataclass(frozen=True, eq=False)
class Rule:
    """One permission or prohibition.

    Build with :func:`allow`, :func:`ask` or :func:`deny`::

        allow("read_file", args={"path": Paths(["/data"])})
        deny("shell", agents="researcher")
        ask("send_email", args={"to": Emails(domains=["example.com"])})

    For ``allow`` and ``ask`` every scoped argument must be present and inside its scope. For
    ``deny`` the rule fires when every scoped argument is inside its scope (a deny with no
    ``args`` forbids the tool outright). An argument scoped ``optional(...)`` may also be
    absent, ``None`` or empty (``scopes/optional.py``). ``when`` is an optional predicate over the whole call.
    ``tainted_by`` (set by data-flow rules) makes the rule apply only once content from one of
    those source tools has entered the run. ``permits=False`` (data-flow rules) makes an ``ask``
    rule escalate calls other rules permit without permitting anything by itself.

    ``roles`` limits the rule to the agents of those roles (and of the roles inheriting
    them), as the policy's ``roles`` define them: outside a policy such a rule applies to no
    agent. ``widen=True`` lets an allow or ask rule of a lower layer of a layered policy
    permit what the layers above do not (see :class:`Policy`); lint warns about each.
    ``refs`` records which settings a policy file wrote as ``{list: name}``, so the rule
    prints back as written.

    ``shadow=True`` tries the rule out without enforcing it: decisions are made as if the
    rule were not in the policy, and a decision the rule would have changed is marked with
    what the policy would have decided with it enforced (``Decision.would``, naming the
    rule that would have decided in ``Decision.would_rule``). A shadow ``deny`` over an
    enforcing ``allow`` leaves the call allowed, marked ``would="deny"``; a shadow ``allow``
    never opens what the enforcing rules deny (the call stays denied, marked
    ``would="allow"``), and a shadow rule makes no tool visible.
    """

    effect: RuleEffect
    tools: tuple[str, ...]
    agents: tuple[str, ...] = ("*",)
    args: Mapping[str, Scope] = field(default_factory=dict)
    when: Condition | None = None
    tainted_by: tuple[str, ...] = ()
    id: str = ""
    reason: str = ""
    permits: bool = True
    roles: tuple[str, ...] = ()
    widen: bool = False
    shadow: bool = False
    refs: tuple[tuple[tuple[str, ...], str], ...] = field(default=(), repr=False, compare=False)
    carries: bool = False
    _tools: NameSet = field(init=False, repr=False, compare=False)
    _checked: Mapping[str, Scope] = field(init=False, repr=False, compare=False)
    _returned: tuple[tuple[str, Scope, Returned], ...] = field(
        init=False, repr=False, compare=False
    )
    _agents: NameSet = field(init=False, repr=False, compare=False)
    _members: NameSet | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "effect", RuleEffect(self.effect))
        object.__setattr__(self, "tools", as_names(self.tools, what="tools", default=()))
        object.__setattr__(self, "agents", as_names(self.agents, what="agents"))
        if not isinstance(self.args, Mapping):
            raise PolicyError(f"rule args must map argument names to scopes, found {self.args!r}")
        for name, scope in self.args.items():
            if not isinstance(scope, Scope):
                raise PolicyError(
                    f"rule for {list(self.tools)}: argument {name!r} must have a Scope "
                    f"(Paths, Urls, Number, ...), found {type(scope).__name__} {scope!r}"
                )
        object.__setattr__(self, "args", MappingProxyType(dict(self.args)))
        object.__setattr__(self, "tainted_by", tuple(self.tainted_by))
        if self.when is not None and not callable(self.when):
            raise PolicyError(f"rule 'when' must be callable, found {self.when!r}")
        if not self.id:
            object.__setattr__(self, "id", self.default_id())
        object.__setattr__(self, "_tools", NameSet(self.tools))
        # Returned scopes (also inside optional and not) are judged on the run's provenance
        returned = tuple(
            (n, s, r) for n, s in self.args.items() if (r := returned_in(s)) is not None
        )
        object.__setattr__(self, "_returned", returned)
        object.__setattr__(
            self,
            "_checked",
            self.args
            if not returned
            else {n: s for n, s in self.args.items() if returned_in(s) is None},
        )
        object.__setattr__(self, "_agents", name_set(self.agents))
        roles = self.roles
        object.__setattr__(self, "roles", as_names(roles, what="roles") if roles else ())
        if not isinstance(self.widen, bool):
            raise PolicyError(f"rule 'widen' must be true or false, found {self.widen!r}")
        if not isinstance(self.shadow, bool):
            raise PolicyError(f"rule 'shadow' must be true or false, found {self.shadow!r}")
        object.__setattr__(self, "refs", tuple(self.refs))
        # A rule for roles applies to no agent until a policy binds the roles' members.
        object.__setattr__(self, "_members", NameSet(()) if self.roles else None)

    def with_members(self, members: tuple[str, ...]) -> Rule:
        """This rule with its roles bound to ``members`` (agent names and globs), as a
        policy compiles it; same id, same printed form."""
        bound = copy.copy(self)
        object.__setattr__(bound, "_members", name_set(members))
        return bound

    # -- identity -----------------------------------------------------------------------------

    def default_id(self) -> str:
        """The id a rule gets when none is given: its effect, tools and agents (prefixed
        ``shadow`` for a shadow rule, so it may sit beside the enforcing rule it mirrors)."""
        who = "" if self.agents == ("*",) else f" for {','.join(self.agents)}"
        mark = "shadow " if self.shadow else ""
        return f"{mark}{self.effect} {','.join(self.tools)}{who}"

    def enforced(self) -> Rule:
        """This rule with ``shadow`` off (same id): what the policy would hold were it enforced."""
        if not self.shadow:
            return self
        return Rule(
            effect=self.effect,
            tools=self.tools,
            agents=self.agents,
            args=self.args,
            when=self.when,
            tainted_by=self.tainted_by,
            id=self.id,
            reason=self.reason,
            permits=self.permits,
            roles=self.roles,
            widen=self.widen,
            refs=self.refs,
            carries=self.carries,
        )

    @property
    def unconditional(self) -> bool:
        """True when the rule applies to every call of its tools by its agents."""
        return not self.args and self.when is None and not self.tainted_by

    def about(self, agent: str, tool: str) -> bool:
        """Whether this rule speaks about ``tool`` called by ``agent`` (arguments aside)."""
        return self._tools.matches(tool) and self.for_agent(agent)

    def for_agent(self, agent: str) -> bool:
        """Whether this rule speaks about ``agent`` (its ``agents`` and, if any, its roles)."""
        members = self._members
        return self._agents.matches(agent) and (members is None or members.matches(agent))

    # -- evaluation ---------------------------------------------------------------------------

    @property
    def returned_tools(self) -> tuple[str, ...]:
        """The tools whose results this rule's ``Returned`` scopes look up."""
        return tuple(t for _, _, r in self._returned for t in r.tools)

    def evaluate(
        self,
        call: ToolCall,
        tainted: frozenset[str] = frozenset(),
        provenance: Provenance | None = None,
    ) -> RuleResult:
        """How this rule relates to ``call`` (assumed to be :meth:`about` it).

        ``provenance`` (what the run's results said) is needed by ``Returned`` scopes and
        by data-flow rules with ``carries``; without it they do not hold."""
        if self.tainted_by:
            sources = name_set(self.tainted_by)
            if not any(sources.matches(label) for label in tainted):
                return RuleResult(Outcome.MISS, "no untrusted content in this run")
            if self.carries and LOST not in tainted:
                carried = None if provenance is None else provenance.carries(call.args)
                if carried is None:
                    return RuleResult(Outcome.MISS, "no argument carries untrusted content")
        for name, scope in self._checked.items():
            if name not in call.args:
                if type(scope) is OptionalScope:
                    continue
                if self.effect is RuleEffect.DENY:
                    return RuleResult(Outcome.MISS, f"argument {name!r} absent")
                return RuleResult(Outcome.MISS, f"argument {name!r} is required but missing")
            try:
                scope.check(call.args[name])
            except ScopeViolation as exc:
                outcome = Outcome.MISS
                if exc.unreadable and self.effect is not RuleEffect.ALLOW:
                    # deny / ask rules must not be dodged by a value they cannot read
                    outcome = Outcome.ERROR
                return RuleResult(
                    outcome, f"argument {name!r}: {exc}", _short(name, scope, exc, self.id)
                )
            except Exception as exc:
                return RuleResult(
                    Outcome.ERROR,
                    f"argument {name!r} could not be checked by {scope!r}: "
                    f"{type(exc).__name__}: {exc}",
                    f"argument {name!r} could not be checked",
                )
        for name, scope, _ in self._returned:
            if name not in call.args:
                if isinstance(scope, OptionalScope):
                    continue
                return RuleResult(
                    Outcome.MISS, f"argument {name!r} is required by rule {self.id!r} but missing"
                )
            try:
                check_with(scope, call.args[name], provenance)
            except ScopeViolation as exc:
                outcome = Outcome.MISS
                if exc.unreadable and self.effect is not RuleEffect.ALLOW:
                    outcome = Outcome.ERROR
                return RuleResult(
                    outcome, f"argument {name!r}: {exc}", f"argument {name!r}: {exc.short}"
                )
        if self.when is not None:
            try:
                applies = self.when(call)
            except Exception as exc:
                return RuleResult(
                    Outcome.ERROR,
                    f"condition of rule {self.id!r} raised {type(exc).__name__}: {exc}",
                    f"condition of rule {self.id!r} could not be evaluated",
                )
            if applies is not True and applies is not False:
                return RuleResult(
                    Outcome.ERROR,
                    f"condition of rule {self.id!r} returned {applies!r}, expected True or False",
                    f"condition of rule {self.id!r} could not be evaluated",
                )
            if not applies:
                return RuleResult(Outcome.MISS, "the rule's condition does not hold")
        return RuleResult(Outcome.MATCH)

    def unscoped_given(self, call: ToolCall) -> str | None:
        """The first argument of ``call`` this rule does not scope and that is given (not
        absent, ``None`` or empty), if any: what a policy with ``unscoped_args="empty"``
        refuses for a rule that scopes some arguments."""
        scoped = self.args
        for name, value in call.args.items():
            if name not in scoped and not is_empty(value):
                return name
        return None

    # -- plain data ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The rule as plain data, in the shape policy files use."""
        data: dict[str, Any] = {"id": self.id, str(self.effect): _one_or_list(self.tools)}
        if self.agents != ("*",):
            data["agents"] = _one_or_list(self.agents)
        if self.roles:
            data["roles"] = _one_or_list(self.roles)
        if self.args:
            data["args"] = {name: arg_data(s) for name, s in self.args.items()}
        if self.when is not None:
            data["when"] = (
                f"{getattr(self.when, '__module__', '?')}:{getattr(self.when, '__qualname__', repr(self.when))}"
            )
        if self.tainted_by:
            data["tainted_by"] = list(self.tainted_by)
        if self.reason:
            data["reason"] = self.reason
        if self.widen:
            data["widen"] = True
        if self.shadow:
            data["shadow"] = True
        for path, name in self.refs:  # list references print as written
            _put(data, path, {"list": name})
        return data

    def __repr__(self) -> str:
        parts = [repr(list(self.tools) if len(self.tools) > 1 else self.tools[0])]
        if self.agents != ("*",):
            parts.append(f"agents={list(self.agents)!r}")
        if self.args:
            parts.append(f"args={dict(self.args)!r}")
        if self.when is not None:
            parts.append(f"when={self.when!r}")
        if self.tainted_by:
            parts.append(f"tainted_by={list(self.tainted_by)!r}")
        if self.roles:
            parts.append(f"roles={list(self.roles)!r}")
        if self.widen:
            parts.append("widen=True")
        if self.shadow:
            parts.append("shadow=True")
        parts.append(f"id={self.id!r}")
        return f"{self.effect}({', '.join(parts)})"


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set ``value`` at ``path`` in nested mappings, if the path is there."""
    *inner, last = path
    node: Any = data
    for key in inner:
        if not isinstance(node, dict) or key not in node:
            return
        node = node[key]
    if isinstance(node, dict) and last in node:
        node[last] = value


_BUILT_IN = "guardrails_plugin.scopes."
_BUILT_IN_TYPES: dict[type, bool] = {}


def _built_in(scope: Scope) -> bool:
    """Whether ``scope`` and every scope it wraps (``optional``, ``not``) are built in."""
    while True:
        kind = type(scope)
        built_in = _BUILT_IN_TYPES.get(kind)
        if built_in is None:
            built_in = _BUILT_IN_TYPES[kind] = kind.__module__.startswith(_BUILT_IN)
        if not built_in:
            return False
        if isinstance(scope, OptionalScope):
            scope = scope.scope
        elif isinstance(scope, Not):
            scope = scope.inner
        else:
            return True


def _short(name: str, scope: Scope, exc: ScopeViolation, rule: str) -> str:
    """The model's reading of a violation: the scope's ``short`` text for the built-in
    scopes (which keep what they allow in ``allowed``); for other scopes, which may write
    their allowed values anywhere in the message, only that the argument is outside. A
    built-in wrapper (``optional``, ``not``) around another scope passes that scope's
    ``short`` on, so it counts as built in only when what it wraps is."""
    if _built_in(scope):
        return f"argument {name!r}: {exc.short}"
    return f"argument {name!r} is outside what rule {rule!r} allows"


def _one_or_list(names: tuple[str, ...]) -> str | list[str]:
    return names[0] if len(names) == 1 else list(names)


def _rule(
    effect: RuleEffect,
    tools: str | Iterable[str],
    *,
    agents: str | Iterable[str] | None,
    args: Mapping[str, Scope] | None,
    when: Condition | None,
    id: str | None,
    reason: str | None,
    roles: str | Iterable[str] | None = None,
    widen: bool = False,
    shadow: bool = False,
) -> Rule:
    return Rule(
        roles=as_names(roles, what="roles") if roles else (),
        widen=widen,
        shadow=shadow,
        effect=effect,
        tools=as_names(tools, what="tools", default=()),
        agents=as_names(agents, what="agents"),
        args=dict(args or {}),
        when=when,
        id=id or "",
        reason=reason or "",
    )


def allow(
    tools: str | Iterable[str],
    *,
    agents: str | Iterable[str] | None = None,
    args: Mapping[str, Scope] | None = None,
    when: Condition | None = None,
    id: str | None = None,
    reason: str | None = None,
    roles: str | Iterable[str] | None = None,
    widen: bool = False,
    shadow: bool = False,
) -> Rule:
    """Permit ``tools`` (names or globs) for ``agents`` (default: every agent), within ``args``."""
    return _rule(
        RuleEffect.ALLOW,
        tools,
        agents=agents,
        args=args,
        when=when,
        id=id,
        reason=reason,
        roles=roles,
        widen=widen,
        shadow=shadow,
    )


def ask(
    tools: str | Iterable[str],
    *,
    agents: str | Iterable[str] | None = None,
    args: Mapping[str, Scope] | None = None,
    when: Condition | None = None,
    id: str | None = None,
    reason: str | None = None,
    roles: str | Iterable[str] | None = None,
    widen: bool = False,
    shadow: bool = False,
) -> Rule:
    """Permit ``tools`` only once a person approves; beats ``allow`` when both match."""
    return _rule(
        RuleEffect.ASK,
        tools,
        agents=agents,
        args=args,
        when=when,
        id=id,
        reason=reason,
        roles=roles,
        widen=widen,
        shadow=shadow,
    )


def deny(
    tools: str | Iterable[str],
    *,
    agents: str | Iterable[str] | None = None,
    args: Mapping[str, Scope] | None = None,
    when: Condition | None = None,
    id: str | None = None,
    reason: str | None = None,
    roles: str | Iterable[str] | None = None,
    shadow: bool = False,
) -> Rule:
    """Forbid ``tools`` (when every scoped argument is inside its scope); beats everything
    (``shadow=True``: only marks what it would forbid, see :class:`Rule`)."""
    return _rule(
        RuleEffect.DENY,
        tools,
        agents=agents,
        args=args,
        when=when,
        id=id,
        reason=reason,
        roles=roles,
        shadow=shadow,
    )
