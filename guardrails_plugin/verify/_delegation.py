"""Delegation: what the grants a policy lets agents delegate can give an agent.

Grants are created at run time, so the question is made precise over the policy: "no
delegation lets agent X call TOOL with C" holds when, with any grant that some chain of
``Guard.delegate`` calls rooted in the policy's rules could create in force, X's call is
still denied (the chain may be empty: the policy alone). Grants an operator gives directly
(``Guard.grant``, ``Guard.grant_role``) are outside the policy and outside the question.

What ``check_delegation`` accepts (``_grants.py``): the delegator holds a permitting rule
(allow or ask, not shadow, no ``when``) or a grant, the delegated grant covers no tool and no
argument more widely, stays ``ask`` under an ``ask``, expires no later, and every deny rule
binding the delegator for its tools binds the delegate too. Narrowing is transitive and the
deny rules a delegation must keep binding only grow along a chain, so a grant a chain of any
length reaches is also one direct delegation from the agent holding the chain's root rule:
the widest grant X can get from rule ``r`` is ``r`` itself (same tools, same scopes, same
effect, no expiry) delegated by one holder of ``r`` that no deny rule binds for the tool
unless it binds X too. The search is over those: one solver per permitting rule about the
tool, the delegator a free name. Expiry only ever narrows (an expired grant, or one whose
parent expired, is out of force with everything delegated from it), so the answer holds at
every moment of a run. The counterexample's delegation is replayed with ``Guard.delegate``
and the call with ``Guard.check``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from .._errors import DelegationError
from .._events import ToolCall
from .._grants import Grant
from ..guard import Guard
from ..policy import Rule, RuleEffect
from ._encode import EFFECTS, SymCall, _names, _overlap
from ._props import Property
from ._z3 import z3

if TYPE_CHECKING:
    from ._verifier import Result, Verifier


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
        and any(_overlap(t, tool) for t in r.tools)
    ]


def check_delegable(v: Verifier, p: Property) -> Result:
    """Prove ``no delegation lets ...`` or refute it with the delegation and the call."""
    from ._verifier import _EFFECT_CODE, Counterexample, Delegation, Result

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
    denies = [r for r in policy.compiled_rules if r.effect is RuleEffect.DENY and not r.shadow]
    options: list[Rule | None] = [None, *delegable_rules(policy.compiled_rules, p.tool)]
    unsure = False
    for root in options:
        solver = Z.Solver()
        solver.set("timeout", int(v.timeout * 1000))
        solver.add(*base)
        delegator = Z.String("delegator")
        extra: list[tuple[Rule, Any]] = []
        if root is not None:
            effect: Literal["allow", "ask"] = "ask" if root.effect is RuleEffect.ASK else "allow"
            grant = Grant(agent="*", tools=root.tools, args=dict(root.args), effect=effect).rule()
            extra = [(grant, Z.BoolVal(True))]
            holder = SymCall("d.", delegator, final.tool, {}, [], Z.BoolVal(False))
            solver.add(delegator != "", enc.about(root, holder))
            for d in denies:  # a deny binding the delegator must bind the delegate
                solver.add(Z.Implies(enc.about(d, holder), enc.about(d, final)))
        eff = enc.effect(final, extra, tools=(p.tool,))
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
                        effect=effect,
                    )
                    chain = (
                        Delegation(
                            giver_name,
                            call.agent,
                            (call.tool,),
                            dict(root.args),
                            root.effect.value,
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
