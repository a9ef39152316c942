"""Run-time grants: permissions added, revoked, expiring and delegated only narrower."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ._errors import DelegationError, PolicyError, StoreError
from .policy import Policy, Rule, RuleEffect
from .policy._patterns import NameSet, as_names
from .scopes import Scope, arg_data, arg_scope

GRANT_PREFIX = "grant/"
EPOCH_KEY = "grants/epoch"
ROLE_GRANTS = "\0roles"
"""The key :func:`active_rules` keeps grants given to roles under (no agent has that name)."""


@dataclass(frozen=True, eq=False)
class Grant:
    """A permission given to one agent at run time.

    ``parent`` is the grant it was delegated from (or ``"rule:<id>"`` for a policy rule): a
    delegated grant is in force only while every grant up its chain is, so revoking a grant
    revokes what was delegated from it. ``granted_by`` is the delegator: a call made under a
    delegated grant is charged to its budgets too (``delegation_chains``). ``role`` (with ``agent="*"``) gives it to every
    agent holding that role of the policy, as a rule for the role would.
    """

    agent: str
    tools: tuple[str, ...]
    args: Mapping[str, Scope] = field(default_factory=dict)
    effect: Literal["allow", "ask"] = "allow"
    expires_at: float | None = None
    parent: str | None = None
    granted_by: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    role: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tools", as_names(self.tools, what="tools", default=()))
        object.__setattr__(self, "args", MappingProxyType(dict(self.args)))
        if self.effect not in ("allow", "ask"):
            raise ValueError(f"a grant's effect must be 'allow' or 'ask', found {self.effect!r}")

    def active(self, now: float) -> bool:
        """Whether the grant is in force at time ``now`` (not expired)."""
        return self.expires_at is None or now < self.expires_at

    def rule(self) -> Rule:
        """The grant as a rule (for a role: unbound until a policy binds it, see ``bind``)."""
        return Rule(
            effect=RuleEffect(self.effect),
            tools=self.tools,
            agents=("*",) if self.role else (self.agent,),
            args=self.args,
            id=f"grant:{self.id}",
            roles=(self.role,) if self.role else (),
        )

    def to_doc(self) -> dict[str, Any]:
        """The grant as the JSON document kept in the store."""
        return {
            "id": self.id,
            "agent": self.agent,
            "tools": list(self.tools),
            "args": {name: arg_data(s) for name, s in self.args.items()},
            "effect": self.effect,
            "expires_at": self.expires_at,
            "parent": self.parent,
            "granted_by": self.granted_by,
            **({"role": self.role} if self.role else {}),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Grant:
        """Read a grant back from the store (``StoreError`` for a document it is not)."""
        try:
            args = {}
            for name, spec in doc.get("args", {}).items():
                args[name] = arg_scope(spec)
            return cls(
                agent=doc["agent"],
                tools=tuple(doc["tools"]),
                args=args,
                effect=doc.get("effect", "allow"),
                expires_at=doc.get("expires_at"),
                parent=doc.get("parent"),
                granted_by=doc.get("granted_by"),
                id=doc["id"],
                role=doc.get("role"),
            )
        except Exception as exc:
            raise StoreError(f"grant record {doc.get('id', '?')!r} is unreadable: {exc}") from exc

    def __repr__(self) -> str:
        extra = f", args={dict(self.args)!r}" if self.args else ""
        return f"Grant({self.id!r}, agent={self.agent!r}, tools={list(self.tools)!r}, effect={self.effect!r}{extra})"


def active_rules(
    grants: Iterable[Grant], policy: Policy, now: float
) -> dict[str, tuple[Rule, ...]]:
    """The rules of every grant in force, by agent: unexpired, with their whole chain in force."""
    by_id = {g.id: g for g in grants}
    rule_ids = {r.id for r in policy.compiled_rules if not r.shadow}  # shadow rules grant nothing

    def in_force(g: Grant, depth: int = 0) -> bool:
        if depth > 64 or not g.active(now):
            return False
        if g.parent is None:
            return True
        if g.parent.startswith("rule:"):
            return g.parent[5:] in rule_ids
        parent = by_id.get(g.parent)
        return parent is not None and in_force(parent, depth + 1)

    out: dict[str, list[Rule]] = {}
    for g in by_id.values():
        if in_force(g):
            if g.role:
                try:
                    rule = policy.bind(g.rule())
                except PolicyError:
                    continue  # a role the policy no longer defines: the grant binds nobody
                out.setdefault(ROLE_GRANTS, []).append(rule)
            else:
                out.setdefault(g.agent, []).append(g.rule())
    return {agent: tuple(rules) for agent, rules in out.items()}


def delegation_chains(grants: Iterable[Grant]) -> dict[str, tuple[str, ...]]:
    """For each delegated grant, by its rule id (``grant:<id>``): the agents whose authority a
    call under it uses, nearest first: the agent that delegated it (``granted_by``), the one
    that delegated that agent's grant, and so on up to a policy rule or a grant nobody
    delegated (``Guard.grant``, ``Guard.grant_role``). The guard charges a call made under
    the grant to each of their budgets too (attenuation: a delegation never lets the
    delegator's authority do more than the delegator could). Each agent appears once."""
    by_id = {g.id: g for g in grants}
    out: dict[str, tuple[str, ...]] = {}
    for g in by_id.values():
        chain: list[str] = []
        seen: set[str] = set()
        at: Grant | None = g
        while at is not None and at.parent is not None and at.granted_by is not None:
            if at.id in seen:
                break
            seen.add(at.id)
            if at.granted_by not in chain:
                chain.append(at.granted_by)
            at = None if at.parent.startswith("rule:") else by_id.get(at.parent)
        if chain:
            out[f"grant:{g.id}"] = tuple(chain)
    return out


def rules_for(rules: Mapping[str, tuple[Rule, ...]], agent: str) -> tuple[Rule, ...]:
    """The grant rules that may speak for ``agent``: its own and those given to roles."""
    own = rules.get(agent, ())
    shared = rules.get(ROLE_GRANTS)
    return own + shared if shared else own


def check_delegation(
    policy: Policy,
    held: Iterable[Grant],
    child: Grant,
    delegator: str,
) -> str:
    """Return the parent (grant id or ``rule:<id>``) that covers ``child``; raise otherwise.

    A delegation is allowed only as a subset of one permission the delegator holds: every tool
    covered, every argument the parent constrains constrained at least as narrowly (and, under
    ``unscoped_args="empty"``, no argument the parent leaves unscoped, which the parent
    requires empty), no later expiry, ``ask`` stays ``ask``; every deny rule binding the
    delegator for those tools binds the delegate too; and, for an ``allow`` delegation, so
    does every ask rule (and ask grant) binding the delegator for those tools. An ask rule
    makes a call it matches ``ask`` whatever permits it, so a delegate it does not bind would
    get ``allow`` where the delegator gets ``ask``: the delegation must then be
    ``effect="ask"``, which asks on its whole region. Together: the delegate's decision with
    the grant is never more permissive than the delegator's own (deny < ask < allow). The
    binding check looks at agents and tools, not arguments, so it also refuses a delegation
    whose region the rule's arguments would never reach. Rules given to roles count for the
    agents holding the role. Shadow rules are not enforced: they neither bind nor permit a
    delegation.
    """
    held = list(held)
    for tool in child.tools:
        for d in policy.compiled_rules:
            if d.shadow or not d.about(delegator, tool) or d.about(child.agent, tool):
                continue
            if d.effect is RuleEffect.DENY:
                raise DelegationError(
                    f"{delegator!r} cannot delegate {tool!r} to {child.agent!r}: deny rule "
                    f"{d.id!r} binds {delegator!r} but not {child.agent!r}"
                )
            if d.effect is RuleEffect.ASK and child.effect != "ask":
                raise DelegationError(
                    f"{delegator!r} cannot delegate {tool!r} to {child.agent!r} with "
                    f"effect='allow': ask rule {d.id!r} binds {delegator!r} but not "
                    f"{child.agent!r} (delegate with effect='ask')"
                )
        for g in held:
            if g.effect != "ask" or child.effect == "ask" or not NameSet(g.tools).matches(tool):
                continue
            rule = policy.bind(g.rule()) if g.role else g.rule()
            if rule.for_agent(delegator) and not rule.for_agent(child.agent):
                raise DelegationError(
                    f"{delegator!r} cannot delegate {tool!r} to {child.agent!r} with "
                    f"effect='allow': ask grant {g.id!r} binds {delegator!r} but not "
                    f"{child.agent!r} (delegate with effect='ask')"
                )
    candidates: list[tuple[str, Rule, float | None]] = [
        (f"rule:{r.id}", r, None)
        for r in policy.compiled_rules
        if r.effect is not RuleEffect.DENY and r.permits and not r.shadow and r.for_agent(delegator)
    ]
    candidates += [
        (g.id, g.rule(), g.expires_at)
        for g in held
        if g.agent == delegator or (g.role and policy.bind(g.rule()).for_agent(delegator))
    ]
    reasons: list[str] = []
    closed = policy.unscoped_args == "empty"
    for parent_id, rule, expires in candidates:
        why = _narrower(child, rule, expires, closed=closed)
        if why is None and parent_id.startswith("rule:"):
            why = _unpassed_layer(policy, child, delegator, closed)
        if why is None:
            return parent_id
        reasons.append(f"{parent_id}: {why}")
    detail = "; ".join(reasons) if reasons else f"{delegator!r} holds no permission to delegate"
    raise DelegationError(
        f"{delegator!r} cannot delegate {list(child.tools)} to {child.agent!r}: no permission it "
        f"holds covers the delegation ({detail})"
    )


def _unpassed_layer(policy: Policy, child: Grant, delegator: str, closed: bool) -> str | None:
    """In a layered policy, the first layer that must permit the delegator's calls and
    covers no part of ``child``'s region with one rule (``None``: every such layer does).

    A grant stands in for every layer, so a delegation from a rule of one layer must not
    carry the delegate past a layer that would refuse the delegator: each layer that speaks
    about the tool for the delegator (the root always does) must hold a permitting rule for
    the delegator covering the whole delegation, or a ``widen`` rule below it must."""
    layers = policy._layers
    if len(layers) < 2:
        return None
    as_ask = Grant(agent=child.agent, tools=child.tools, args=child.args, effect="ask")
    covering: list[bool] = []
    speaks: list[bool] = []
    for i, layer in enumerate(layers):
        mine = [
            r
            for r in layer._own_rules
            if r.effect is not RuleEffect.DENY
            and r.permits
            and not r.shadow
            and any(r.about(delegator, t) for t in child.tools)
        ]
        speaks.append(i == 0 or bool(mine))
        covering.append(any(_narrower(as_ask, r, None, closed=closed) is None for r in mine))
    for j, layer in enumerate(layers):
        if not speaks[j] or covering[j]:
            continue
        if any(
            covering[k] and _widens(layers[k], delegator, as_ask, closed)
            for k in range(j + 1, len(layers))
        ):
            continue
        return (
            f"layer {layer.name!r} does not permit {delegator!r} the whole delegation, and a "
            "grant would stand in for it"
        )
    return None


def _widens(layer: Policy, delegator: str, child: Grant, closed: bool) -> bool:
    return any(
        r.widen
        and r.effect is not RuleEffect.DENY
        and r.permits
        and not r.shadow
        and any(r.about(delegator, t) for t in child.tools)
        and _narrower(child, r, None, closed=closed) is None
        for r in layer._own_rules
    )


def _narrower(
    child: Grant, parent: Rule, parent_expires: float | None, *, closed: bool = False
) -> str | None:
    tools = NameSet(parent.tools)
    for t in child.tools:
        if not tools.covers(t):
            return f"does not cover tool {t!r}"
    why = scopes_within(child.args, parent, closed=closed)
    if why is not None:
        return why
    if parent.effect is RuleEffect.ASK and child.effect != "ask":
        return "needs approval, so the delegation must too (effect='ask')"
    if parent_expires is not None and (
        child.expires_at is None or child.expires_at > parent_expires
    ):
        return "expires earlier than the delegation would"
    return None


def scopes_within(args: Mapping[str, Scope], parent: Rule, *, closed: bool = False) -> str | None:
    """Why calls within ``args`` are not all within ``parent``'s scopes (``None``: they are).

    ``closed`` (``unscoped_args="empty"``): ``parent`` requires the arguments it leaves
    unscoped empty, so ``args`` may scope no other argument."""
    if parent.when is not None:
        return "has a custom condition, which cannot be delegated"
    if parent.tainted_by:
        return "applies only once its sources tainted the run, which cannot be delegated"
    for name, scope in parent.args.items():
        mine = args.get(name)
        if mine is None:
            return f"constrains {name!r}, the delegation does not"
        if not mine.within(scope):
            return f"{name!r} {mine!r} is wider than {scope!r}"
    if closed and parent.args:
        for name in args:
            if name not in parent.args:
                return (
                    f"leaves {name!r} unscoped, which unscoped_args='empty' requires empty; "
                    "the delegation scopes it"
                )
    return None
