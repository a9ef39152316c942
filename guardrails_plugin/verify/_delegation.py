"""Delegation: what the grants a policy lets agents delegate can give an agent.

Grants are created at run time, so the question is made precise over the policy: "no
delegation lets agent X call TOOL with C" holds when, with any grant that some chain of
``Guard.delegate`` calls rooted in the policy's rules could create in force, X's call is
still denied (the chain may be empty: the policy alone). Grants an operator gives directly
(``Guard.grant``, ``Guard.grant_role``) are outside the policy and outside the question.

What ``check_delegation`` accepts (``_grants.py``): the delegator holds a permitting rule
(allow or ask, not shadow, no ``when``, no ``tainted_by``) or a grant, the delegated grant covers no tool and no
argument more widely, stays ``ask`` under an ``ask``, expires no later, every deny rule
binding the delegator for its tools binds the delegate too, and for an ``allow`` delegation
so does every ask rule. Narrowing is transitive and the rules a delegation must keep
binding only grow along a chain (an ``ask`` link makes every later link ``ask``), so a
grant a chain of any length reaches is also one direct delegation from the agent holding
the chain's root rule: the widest grants X can get from rule ``r`` are ``r`` itself (same
tools, same scopes, no expiry) delegated by one holder of ``r`` as ``allow`` (an allow rule;
no deny or ask rule binds the holder for the tool unless it binds X too) or as ``ask`` (no
deny rule does). The search is over those: one solver per permitting rule about the
tool, the delegator a free name. Expiry only ever narrows (an expired grant, or one whose
parent expired, is out of force with everything delegated from it), so the answer holds at
every moment of a run. The counterexample's delegation is replayed with ``Guard.delegate``
and the call with ``Guard.check``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .._errors import DelegationError
from .._events import ToolCall
from .._grants import Grant, scopes_within
from ..guard import Guard
from ..policy import Rule, RuleEffect
from ._encode import DENY, EFFECTS, SymCall, _names, _overlap, pinned
from ._props import Property
from ._z3 import z3

if TYPE_CHECKING:
    from ._answers import Result

Verifier = Any  # the caller (``_verifier.Verifier``; importing it would make a cycle)


def delegable_rules(rules: tuple[Rule, ...], tool: str = "*") -> list[Rule]:
    """The rules a delegation can start from (``check_delegation``'s candidates) about
    ``tool`` (a name or glob)."""
    return [
        r
        for r in rules
        if r.effect is not RuleEffect.DENY
        and r.permits
        and not r.shadow
        and r.when is None
        and not r.tainted_by
        and any(_overlap(t, tool) for t in r.tools)
    ]


def check_delegable(v: Verifier, p: Property) -> Result:
    """Prove ``no delegation lets ...`` or refute it with the delegation and the call."""
    from ._answers import EFFECT_CODE as _EFFECT_CODE
    from ._answers import Counterexample, Delegation, Result

    Z = z3()
    policy = v.policy
    named: dict[str, set[str]] = {}
    for c in p.conds:
        if c.op in ("outside", "inside"):
            named.setdefault(c.arg, set()).update(str(x) for x in c.values)
    enc = v.encoder({c.arg for c in p.conds}, names=named)
    enc.assumptions, enc.approximated = {}, {}
    final = enc.new_call("")
    base = [
        *final.domain,
        final.agent != "",
        _names(final.tool, (p.tool,)),
        Z.Not(final.carries),
        *[Z.Not(on) for on, _ in final.taint],
        *[v._cond(c, final.args[c.arg]) for c in p.conds],
    ]
    if p.agent is not None:
        base.append(_names(final.agent, (p.agent,)))
    binding = _binding(policy)
    options = _options(policy, p.tool)
    unsure = False
    for root, how in options:
        solver = Z.Solver()
        solver.set("timeout", int(v.timeout * 1000))
        solver.add(*base)
        delegator, held, eff = _rooted(enc, final, root, binding, p.tool, how)
        solver.add(*held)
        solver.add(Z.Or(*[eff == _EFFECT_CODE[e] for e in sorted(p.effects)]))
        atoms = list(final.atoms.values())
        for _attempt in range(8):
            verdict = solver.check()
            if verdict == Z.unsat:
                break
            if verdict != Z.sat:
                unsure = True
                break
            model = v._readable(
                solver,
                [final.agent, delegator] if root is not None else [final.agent],
                [final.tool],
            )
            call, _, _ = v._call(final, model)
            want = EFFECTS[model.eval(eff, model_completion=True).as_long()]
            guard = Guard(policy)
            chain: tuple[Delegation, ...] = ()
            try:
                if root is not None:
                    giver = model.eval(delegator, model_completion=True)
                    from ._values import text

                    giver_name = text(giver)
                    guard.delegate(
                        giver_name,
                        call.agent,
                        [call.tool],
                        args=dict(root.args),
                        effect=how,
                    )
                    chain = (
                        Delegation(
                            giver_name,
                            call.agent,
                            (call.tool,),
                            dict(root.args),
                            how,
                            root.id,
                        ),
                    )
                got = guard.check(ToolCall(call.tool, dict(call.args), agent=call.agent))
                agrees = str(got.effect) == want
            except DelegationError:
                agrees = False
            if agrees:
                cex = Counterexample(
                    call.agent,
                    call.tool,
                    dict(call.args),
                    str(got.effect),
                    got.rule,
                    delegations=chain,
                )
                return Result(
                    p.text,
                    "refuted",
                    cex,
                    tuple(enc.assumptions),
                    tuple(enc.approximated),
                )
            unsure = True
            if not atoms:
                break  # the same call again would disagree again: try the next rule
            solver.add(Z.Or(*[a != model.eval(a, model_completion=True) for a in atoms]))
    if unsure:
        return Result(
            p.text,
            "unknown",
            assumptions=tuple(enc.assumptions),
            approximated=tuple(enc.approximated),
            detail="the engine decides the solver's delegations otherwise, or the solver "
            "gave up (" + "; ".join(enc.approximated) + ")",
        )
    return Result(
        p.text,
        "proven",
        assumptions=(
            *enc.assumptions,
            "grants come from delegations of the policy's rules (not Guard.grant)",
        ),
        approximated=tuple(enc.approximated),
    )


def _binding(policy: Any) -> list[Rule]:
    """The enforced deny and ask rules: those a delegation must keep binding (ask rules only
    for an ``allow`` delegation)."""
    return [
        r
        for r in policy.compiled_rules
        if r.effect in (RuleEffect.DENY, RuleEffect.ASK) and not r.shadow
    ]


def _options(policy: Any, tool: str) -> list[tuple[Rule | None, Literal["allow", "ask"]]]:
    """The delegations to search: none, then each delegable rule as itself, and an allow
    rule also as ``ask`` (accepted where an ask rule binds the delegator, not the delegate)."""
    out: list[tuple[Rule | None, Literal["allow", "ask"]]] = [(None, "allow")]
    for r in delegable_rules(policy.compiled_rules, tool):
        if r.effect is RuleEffect.ASK:
            out.append((r, "ask"))
        else:
            out += [(r, "allow"), (r, "ask")]
    return out


def _rooted(
    enc: Any,
    final: SymCall,
    root: Rule | None,
    binding: Sequence[Rule],
    tool: str,
    how: Literal["allow", "ask"] = "allow",
) -> tuple[Any, list[Any], Any]:
    """(delegator, constraints, effect): the call's effect with ``root`` delegated (as
    ``how``) to its agent by a free ``delegator`` that holds ``root`` and that no deny rule,
    and for an ``allow`` delegation no ask rule, binds for the tool unless it binds the
    delegate too (``root`` ``None``: no delegation)."""
    Z = z3()
    delegator = Z.String("delegator")
    if root is None:
        return delegator, [], enc.effect(final, (), tools=(tool,))
    grant = Grant(agent="*", tools=root.tools, args=dict(root.args), effect=how).rule()
    holder = SymCall("d.", delegator, final.tool, {}, [], Z.BoolVal(False))
    held = [delegator != "", enc.about(root, holder)]
    for d in binding:
        if d.effect is RuleEffect.DENY or how == "allow":
            held.append(Z.Implies(enc.about(d, holder), enc.about(d, final)))
    held += _layers_passed(enc, root, holder)
    return delegator, held, enc.effect(final, [(grant, Z.BoolVal(True))], tools=(tool,))


def _layers_passed(enc: Any, root: Rule, holder: SymCall) -> list[Any]:
    """In a layered policy, what ``check_delegation`` asks of the holder (``_unpassed_layer``
    in ``_grants.py``): each layer that speaks about the tool for it (the root always does)
    holds a permitting rule about it whose scopes cover ``root``'s, or a layer below it
    holds such a ``widen`` rule."""
    Z = z3()
    layers = enc.policy._layers
    if len(layers) < 2:
        return []
    closed = enc.policy.unscoped_args == "empty"
    permitting = [
        [
            r
            for r in layer._own_rules
            if r.effect is not RuleEffect.DENY and r.permits and not r.shadow
        ]
        for layer in layers
    ]
    covering = [
        [r for r in rules if scopes_within(root.args, r, closed=closed) is None]
        for rules in permitting
    ]
    out: list[Any] = []
    for j, rules in enumerate(permitting):
        speaks = Z.BoolVal(True) if j == 0 else Z.Or(*[enc.about(r, holder) for r in rules])
        passes = [enc.about(r, holder) for r in covering[j]]
        passes += [
            enc.about(r, holder) for k in range(j + 1, len(layers)) for r in covering[k] if r.widen
        ]
        out.append(Z.Implies(speaks, Z.Or(*passes)))
    return out


def delegation_permits(v: Verifier, call: ToolCall) -> bool:
    """Whether the encoding lets some delegation from the policy's rules (or none) permit
    ``call``: what the differential test compares with ``Guard.delegate`` and ``check``."""
    Z = z3()
    policy = v.policy
    enc = v.encoder()
    final = enc.new_call("")
    eqs: list[Any] = [
        final.agent == Z.StringVal(call.agent),
        final.tool == Z.StringVal(call.tool),
        Z.Not(final.carries),
        *[Z.Not(on) for on, _ in final.taint],
    ]
    eqs += pinned(final, call.args)
    binding = _binding(policy)
    for root, how in _options(policy, call.tool):
        solver = Z.Solver()
        _, held, eff = _rooted(enc, final, root, binding, call.tool, how)
        solver.add(*eqs, *held, eff != DENY)
        if solver.check() == Z.sat:
            return True
    return False


def undelegable(
    policy: Any, timeout: float = 2.0, only: Collection[str] | None = None
) -> list[str]:
    """``lint --deep``: permitting rules no delegation of which ``Guard.delegate`` accepts,
    because every deny rule binding a holder of the rule for one of its tools binds no other
    agent (a name-level question: scopes and expiry can always be narrowed to fit).
    ``only``: the ids of the rules to ask about (all when ``None``)."""
    from ._encode import Encoder, _overlap

    Z = z3()
    enc = Encoder(policy)
    denies = [r for r in policy.compiled_rules if r.effect is RuleEffect.DENY and not r.shadow]
    out: list[str] = []
    for r in delegable_rules(policy.compiled_rules):
        if only is not None and r.id not in only:
            continue
        solver = Z.Solver()
        solver.set("timeout", int(timeout * 1000))
        tool, giver, taker = Z.String("tool"), Z.String("giver"), Z.String("taker")
        holder = SymCall("g.", giver, tool, {}, [], Z.BoolVal(False))
        delegate = SymCall("t.", taker, tool, {}, [], Z.BoolVal(False))
        solver.add(giver != "", taker != "", giver != taker, enc.about(r, holder))
        # a deny rule about none of the rule's tools cannot bind its holder for them
        for d in (d for d in denies if any(_overlap(t, u) for t in r.tools for u in d.tools)):
            solver.add(Z.Implies(enc.about(d, holder), enc.about(d, delegate)))
        if solver.check() == Z.unsat:
            out.append(
                f"rule {r.id!r} can never be delegated: a deny rule binding the agents that "
                "hold it binds no other agent (Guard.delegate refuses every delegation)"
            )
    return out
