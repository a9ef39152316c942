"""Delegation: what the grants a policy lets agents delegate can give an agent.

Why this file is long: one encoding of what ``Guard.delegate`` accepts serves three
questions (``no delegation lets``, per-agent bounds over delegated calls, the layers that
make a rule undelegable), and each counterexample needs a grant built back from the
solver's model (narrowed argument by argument) to be replayed through the engine; splitting
them would put the encoding and its replay in different files.

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

In a layered policy the whole region of ``r`` is not the widest grant: ``check_delegation``
also wants every layer that speaks for the holder to cover the grant with one rule (or a
``widen`` rule below), so a grant narrower than ``r`` can pass layers ``r`` itself does not
(the organisation scopes ``amount``, the team ``to``: a grant scoping both passes both).
A grant holding the final call makes the call satisfy the scopes of ``r`` and of one
covering rule per speaking layer, so the search asks exactly that of the call
(``_layers_passed``): it covers every grant ``Guard.delegate`` accepts (chains too: the
layer check is made at the first link, from the policy's rule). The replay builds such a
grant (``narrowed_args``: per argument, a scope within all those scopes that holds the
call's value); when no scope of the built-in kinds is one, the answer is "unknown", never
"proven". In a flat policy a narrower grant reaches nothing ``r``'s whole region does not
(the checks on deny and ask rules are by agent and tool), which the differential test
checks with the narrowest grants holding each call.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .._errors import DelegationError
from .._events import ToolCall
from .._grants import Grant
from ..guard import Guard
from ..policy import Rule, RuleEffect
from ..scopes import Emails, Number, OneOf, OptionalScope, Paths, Scope, addresses_in, is_empty
from ._encode import DENY, EFFECTS, SymCall, _names, _overlap, pinned
from ._props import Property
from ._z3 import LINT_RLIMIT, LINT_TIMEOUT, RESOURCE, TIME, Limits, check, gave_up, limit, z3

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
    unsure = unbuilt = False
    stopped = ""  # the limit a solver call met, if one did
    for root, how in options:
        solver = v.limited(Z.Solver())
        solver.add(*base)
        delegator, held, eff = _rooted(enc, final, root, binding, p.tool, how)
        solver.add(*held)
        solver.add(Z.Or(*[eff == _EFFECT_CODE[e] for e in sorted(p.effects)]))
        atoms = list(final.atoms.values())
        for _attempt in range(8):
            verdict = check(solver)
            if verdict == Z.unsat:
                break
            if verdict != Z.sat:
                unsure = True
                why = gave_up(solver)
                stopped = stopped or (why if why in (RESOURCE, TIME) else "")
                break
            model = v._readable(
                solver,
                [final.agent, delegator] if root is not None else [final.agent],
                [final.tool],
            )
            call, _, _ = v._call(final, model)
            want = EFFECTS[model.eval(eff, model_completion=True).as_long()]
            chain: tuple[Delegation, ...] = ()
            agrees = refused = False
            if root is None:
                got = Guard(policy).check(ToolCall(call.tool, dict(call.args), agent=call.agent))
                agrees = str(got.effect) == want
            else:
                from ._values import text

                giver_name = text(model.eval(delegator, model_completion=True))
                refused = True
                for args in _regions(policy, root, giver_name, call):
                    guard = Guard(policy)
                    try:
                        guard.delegate(giver_name, call.agent, [call.tool], args=args, effect=how)
                    except DelegationError:
                        continue
                    refused = False
                    got = guard.check(ToolCall(call.tool, dict(call.args), agent=call.agent))
                    if str(got.effect) == want:
                        agrees = True
                        chain = (
                            Delegation(
                                giver_name, call.agent, (call.tool,), dict(args), how, root.id
                            ),
                        )
                        break
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
            if root is not None and refused:
                unbuilt = True  # Guard.delegate took none of the grants built for the call
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
            "gave up ("
            + "; ".join(enc.approximated)
            + ")"
            + (
                "; a delegation fitting every layer that speaks for its holder needs a scope "
                "within all of their scopes that holds the call's value, and none of the "
                "built-in kinds gave one (a custom scope kind might)"
                if unbuilt
                else ""
            )
            + (f"; the solver met its {stopped}" if stopped else ""),
            limit=stopped,
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
    delegator: Any = None,
) -> tuple[Any, list[Any], Any]:
    """(delegator, constraints, effect): the call's effect with ``root`` delegated (as
    ``how``) to its agent by a free ``delegator`` (a string term, default: one named
    ``delegator``) that holds ``root`` and that no deny rule, and for an ``allow``
    delegation no ask rule, binds for the tool unless it binds the delegate too (``root``
    ``None``: no delegation)."""
    Z = z3()
    if delegator is None:
        delegator = Z.String("delegator")
    if root is None:
        return delegator, [], enc.effect(final, (), tools=(tool,))
    grant, held = _granted(enc, final, root, binding, how, delegator)
    return delegator, held, enc.effect(final, [(grant, Z.BoolVal(True))], tools=(tool,))


def _granted(
    enc: Any,
    final: SymCall,
    root: Rule,
    binding: Sequence[Rule],
    how: Literal["allow", "ask"],
    delegator: Any,
) -> tuple[Rule, list[Any]]:
    """(grant, constraints): the widest grant a delegation of ``root`` (as ``how``) gives
    the call's agent, and what ``Guard.delegate`` asks of ``delegator`` holding ``root``
    (see ``_rooted``)."""
    return granted(enc, final, [(root, how)], binding, delegator)[0]


def granted(
    enc: Any,
    final: SymCall,
    options: Sequence[tuple[Rule, Literal["allow", "ask"]]],
    binding: Sequence[Rule],
    delegator: Any,
) -> list[tuple[Rule, list[Any]]]:
    """``_granted`` for each of ``options`` (a rule and an effect), the binding checks
    (which depend on the delegator and the call, not on the rule) encoded once."""
    Z = z3()
    holder = SymCall(f"{final.prefix}d.", delegator, final.tool, {}, [], Z.BoolVal(False))
    binds: dict[str, list[Any]] = {}
    out: list[tuple[Rule, list[Any]]] = []
    for root, how in options:
        if how not in binds:
            binds[how] = [
                Z.Implies(enc.about(d, holder), enc.about(d, final))
                for d in binding
                if d.effect is RuleEffect.DENY or how == "allow"
            ]
        grant = Grant(agent="*", tools=root.tools, args=dict(root.args), effect=how).rule()
        held = [delegator != "", enc.about(root, holder), *binds[how]]
        held += _layers_passed(enc, root, holder, final)
        out.append((grant, held))
    return out


def _layers_passed(enc: Any, root: Rule, holder: SymCall, final: SymCall) -> list[Any]:
    """In a layered policy, what ``check_delegation`` asks of the holder (``_unpassed_layer``
    in ``_grants.py``) for some grant within ``root`` that still covers the final call: each
    layer that speaks about the tool for the holder (the root layer always does) holds a
    permitting rule about it (no ``when``, no ``tainted_by``) whose scopes the call
    satisfies, or a layer below it holds such a ``widen`` rule.

    The delegation may be narrower than ``root``: a grant whose scopes are within ``root``'s
    and within those of one such rule per layer, and that the call satisfies. Any such grant
    makes the call satisfy all those scopes, so this condition covers every delegation
    ``Guard.delegate`` accepts (an over-approximation; exact when a scope within all of
    them holding the call's value exists, which ``narrowed_args`` builds for the replay).
    Under ``unscoped_args="empty"`` a grant scopes exactly the arguments of every parent
    that has scopes (``scopes_within``), so the rules with scopes used together scope the
    same arguments (those of ``root`` when it has any)."""
    Z = z3()
    layers = enc.policy._layers
    if len(layers) < 2:
        return []
    permitting = [
        [
            r
            for r in layer._own_rules
            if r.effect is not RuleEffect.DENY and r.permits and not r.shadow
        ]
        for layer in layers
    ]
    cover: dict[int, Any] = {}

    def covers(r: Rule, names: frozenset[str] | None) -> Any:
        if r.when is not None or r.tainted_by:
            return Z.BoolVal(False)  # ``scopes_within`` refuses such a parent
        if names is not None and r.args and frozenset(r.args) != names:
            return Z.BoolVal(False)
        if id(r) not in cover:
            cover[id(r)] = Z.And(enc.about(r, holder), enc.outcome(r, final)[0])
        return cover[id(r)]

    options: list[frozenset[str] | None] = [None]
    if enc.closed:
        options = [frozenset(root.args)]
        if not root.args:
            options += list(
                dict.fromkeys(frozenset(r.args) for rules in permitting for r in rules if r.args)
            )
    alternatives: list[Any] = []
    for names in options:
        each: list[Any] = []
        for j, rules in enumerate(permitting):
            speaks = Z.BoolVal(True) if j == 0 else Z.Or(*[enc.about(r, holder) for r in rules])
            passes = [covers(r, names) for r in rules]
            passes += [
                covers(r, names)
                for k in range(j + 1, len(layers))
                for r in permitting[k]
                if r.widen
            ]
            each.append(Z.Implies(speaks, Z.Or(*passes)))
        alternatives.append(Z.And(*each))
    return [Z.Or(*alternatives)]


def _regions(policy: Any, root: Rule, giver: str, call: ToolCall) -> list[dict[str, Scope]]:
    """The delegations to replay for a counterexample: ``root``'s whole region first, then
    regions narrowed to fit each layer that speaks for ``giver`` (``narrowed_args``)."""
    out = [dict(root.args)]
    closed = policy.unscoped_args == "empty"
    for parents in _parents(policy, root, giver, call):
        args = narrowed_args(parents, call, closed=closed)
        if args is not None and args not in out:
            out.append(args)
    return out


def _parents(policy: Any, root: Rule, giver: str, call: ToolCall) -> list[tuple[Rule, ...]]:
    """The sets of rules a delegation of ``root`` covering ``call`` must fit within:
    ``root``, and in a layered policy one rule per layer that speaks for ``giver`` (or a
    ``widen`` rule below it) whose scopes accept the call's values; at most 64 sets."""
    import itertools

    layers = policy._layers
    if len(layers) < 2:
        return [(root,)]

    closed = policy.unscoped_args == "empty"

    def fits(r: Rule) -> bool:
        if r.when is not None or r.tainted_by:
            return False
        if (
            closed
            and r.args
            and any(not is_empty(v) for n, v in call.args.items() if n not in r.args)
        ):
            return False
        for name, scope in r.args.items():
            if name not in call.args:
                if not isinstance(scope, OptionalScope):
                    return False
            elif not scope.contains(call.args[name]):
                return False
        return True

    mine = [
        [
            r
            for r in layer._own_rules
            if r.effect is not RuleEffect.DENY
            and r.permits
            and not r.shadow
            and r.about(giver, call.tool)
        ]
        for layer in layers
    ]
    choices: list[list[Rule]] = []
    for j, rules in enumerate(mine):
        if j > 0 and not rules:
            continue  # the layer is silent for the giver
        options = [r for r in rules if fits(r)]
        options += [r for k in range(j + 1, len(layers)) for r in mine[k] if r.widen and fits(r)]
        choices.append(options)
    out = [(root, *chosen) for chosen in itertools.islice(itertools.product(*choices), 64)]
    return out


def narrowed_args(
    parents: Sequence[Rule], call: ToolCall, *, closed: bool = False
) -> dict[str, Scope] | None:
    """Scopes within every one of ``parents``' scopes that ``call``'s arguments satisfy, as
    ``Guard.delegate`` takes them: for each argument a parent scopes, a parent's scope
    within all the others, or one built from their common part (a range of numbers, the
    common values of one-of lists, a root of a path scope, the call's own recipients; the
    optional form of such a scope when all are optional); ``None`` when no scope of the
    built-in kinds is within all of them and holds the call's value."""
    names: dict[str, list[Scope]] = {}
    for r in parents:
        for name, scope in r.args.items():
            names.setdefault(name, []).append(scope)
    if closed:
        sets = {frozenset(r.args) for r in parents if r.args}
        if len(sets) > 1:
            return None
    out: dict[str, Scope] = {}
    for name, scopes in names.items():
        found = _meet(scopes, call.args.get(name), "value" if name in call.args else "absent")
        if found is None:
            return None
        out[name] = found
    return out


def _meet(scopes: Sequence[Scope], value: object, need: str) -> Scope | None:
    """A scope within each of ``scopes`` that accepts ``value`` (``need`` ``"value"``), that
    lets an absent argument through (``"absent"``), or any (``"any"``)."""

    def good(s: Scope) -> bool:
        if not all(s.within(t) for t in scopes):
            return False
        if need == "value":
            return s.contains(value)
        return need == "any" or isinstance(s, OptionalScope)

    for s in scopes:
        if good(s):
            return s
    candidates: list[Scope] = []
    try:
        if all(isinstance(s, OptionalScope) for s in scopes):
            inner = _meet(
                [s.scope for s in scopes if isinstance(s, OptionalScope)],
                value,
                "value" if need == "value" and not is_empty(value) else "any",
            )
            if inner is not None:
                candidates.append(OptionalScope(inner))
        elif all(isinstance(s, Number) for s in scopes):
            candidates.append(_numbers([s for s in scopes if isinstance(s, Number)]))
        elif all(isinstance(s, OneOf) for s in scopes):
            values = [v for v in scopes[0].spec()["values"] if all(t.contains(v) for t in scopes)]
            if values:
                candidates.append(OneOf(values))
        elif all(isinstance(s, Paths) for s in scopes) and need == "value":
            spec = scopes[0].spec()
            roots = [value] if spec["access"] == "read" and isinstance(value, str) else []
            roots += [root for s in scopes if isinstance(s, Paths) for root in s.roots]
            for root in roots:
                candidates.append(Paths([root], **{k: v for k, v in spec.items() if k != "roots"}))
        elif all(isinstance(s, Emails) for s in scopes) and need == "value":
            candidates.append(Emails(addresses=addresses_in(value)))
    except Exception:  # a candidate the scope kinds refuse to build
        return None
    return next((s for s in candidates if good(s)), None)


def _numbers(scopes: Sequence[Number]) -> Number:
    """The range common to ``scopes`` (an error when it holds no number)."""
    low: tuple[Any, bool] | None = None  # (bound, exclusive)
    high: tuple[Any, bool] | None = None
    for s in scopes:
        spec = s.spec()
        for key, exclusive in (("ge", False), ("gt", True)):
            if key in spec and (
                low is None or spec[key] > low[0] or (spec[key] == low[0] and exclusive)
            ):
                low = (spec[key], exclusive)
        for key, exclusive in (("le", False), ("lt", True)):
            if key in spec and (
                high is None or spec[key] < high[0] or (spec[key] == high[0] and exclusive)
            ):
                high = (spec[key], exclusive)
    bounds: dict[str, Any] = {}
    if low is not None:
        bounds["gt" if low[1] else "ge"] = low[0]
    if high is not None:
        bounds["lt" if high[1] else "le"] = high[0]
    return Number(**bounds, integer=any(s.spec()["integer"] for s in scopes))


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
    policy: Any, limits: Limits = (LINT_RLIMIT, LINT_TIMEOUT), only: Collection[str] | None = None
) -> list[str]:
    """``lint --deep``: permitting rules no delegation of which ``Guard.delegate`` accepts,
    because every deny rule binding a holder of the rule for one of its tools binds no other
    agent, or (in a layered policy) some layer speaks for every holder about the tool and
    holds no rule, nor a ``widen`` rule below it, that could cover a delegation (permitting,
    not shadow, no ``when``, no ``tainted_by``, about the holder and the tool). Both are
    name-level questions, necessary for ``check_delegation`` to accept (scopes and expiry
    can always be narrowed to fit), so a warning is certain.
    ``only``: the ids of the rules to ask about (all when ``None``)."""
    from ._encode import Encoder, _overlap

    Z = z3()
    enc = Encoder(policy)
    denies = [r for r in policy.compiled_rules if r.effect is RuleEffect.DENY and not r.shadow]
    layers = policy._layers
    # a tool pattern with a character class does not match its own text, which a
    # delegation may name as a tool: leave layers out rather than risk a wrong warning
    by_layers = len(layers) > 1 and not any(
        "[" in t for r in policy.compiled_rules for t in r.tools
    )
    out: list[str] = []
    for r in delegable_rules(policy.compiled_rules):
        if only is not None and r.id not in only:
            continue
        solver = limit(Z.Solver(), *limits)
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
            continue
        if not by_layers:
            continue
        passes = _layers_by_name(enc, layers, holder)
        if solver.check(*passes) != Z.unsat:
            continue
        blocking = [layers[j].name for j, one in enumerate(passes) if solver.check(one) == Z.unsat]
        which = f"layer {blocking[0]!r}" if blocking else "the layers together"
        out.append(
            f"rule {r.id!r} can never be delegated: {which} must permit the agents holding "
            "it its tools and has no rule (nor a widen rule below) that could cover a "
            "delegation (Guard.delegate refuses every delegation: a grant would stand in "
            "for the layer)"
        )
    return out


def _layers_by_name(enc: Any, layers: Sequence[Any], holder: SymCall) -> list[Any]:
    """Per layer: it does not speak for the holder about the tool, or a rule that could
    cover a delegation (``_unpassed_layer``, by agent and tool only) is there or below it as
    ``widen``."""
    Z = z3()
    permitting = [
        [
            r
            for r in layer._own_rules
            if r.effect is not RuleEffect.DENY and r.permits and not r.shadow
        ]
        for layer in layers
    ]

    def can(r: Rule) -> Any:
        if r.when is not None or r.tainted_by:
            return Z.BoolVal(False)
        return enc.about(r, holder)

    out: list[Any] = []
    for j, rules in enumerate(permitting):
        speaks = Z.BoolVal(True) if j == 0 else Z.Or(*[enc.about(r, holder) for r in rules])
        cover = [can(r) for r in rules]
        cover += [can(r) for k in range(j + 1, len(layers)) for r in permitting[k] if r.widen]
        out.append(Z.Implies(speaks, Z.Or(*cover)))
    return out
