"""Bounds: properties about a sequence of calls, with the policy's budgets encoded as bounds.

Why this file is long: the search (calls, multiplicities, tool-name representatives), every
budget measure's bound and the replay that checks a counterexample are read together; split,
the argument that a proof holds for every sequence would span several files.

"No agent calls send_email more than 20 times per thread", "agent billing never calls refund
with total amount > 5000 in total": a counterexample is a sequence of calls the guard permits
one after the other, charging its budgets. The encoding searches ``kinds`` distinct symbolic
calls, each repeated ``m`` times (``m`` written in binary, so that an amount times ``m`` stays
linear), every used one permitted by the rules (``Encoder.effect``) and all of them together
within every budget that covers them:

- the calls are of one agent (``agents together``: of any agents) and lie in one run
  (``per run``), in one thread with a run each (``per thread``), or each in a thread of its
  own (``in total``). Budgets only ever charge, so spreading calls over runs never hurts: a
  budget counted per run (or per thread) that the property's scope lets vary binds each call
  alone, one counted per agent or per tool binds the calls sharing that agent or tool;
- ``calls`` and ``sum`` budgets: the total of each partition is at most the limit (the
  store's ``total <= limit``), a ``sum`` budget denies a call whose argument is missing, not a
  number, negative or not finite (fail closed);
- ``distinct`` budgets of values: the distinct strings and integers (``str()`` of them) of
  each partition are at most the limit; a list value is taken to add no new value
  (over-approximated);
- a budget with a ``window`` (a rate) bounds a window, not a total: calls may wait the window
  out, so it binds each call alone (exact: the counterexample's calls are spaced in time);
- token budgets on arguments (tiktoken) are not encoded (over-approximated); budgets charged
  after the fact (result tokens, model use) deny only once used up, which a sequence that
  records no result never does, unless their limit is 0.

Delegated grants: a call made under one is charged to the delegate's budgets and to those of
every delegator up the grant's chain, as the delegator's own call (``Guard``; the grant's
region lies within a policy rule the chain's root holder holds, and every deny and, for an
``allow`` delegation, ask rule binding the holder binds the delegate). So each such call,
made by the root holder instead, is one the policy's rules permit it (no less permissively)
and charges only partitions the delegated call charged: any sequence with delegated calls
maps, call by call, onto one without, with the same calls counted *together*, within every
budget. ``agents together`` bounds are therefore exact with delegations too, without
searching them. A per-agent bound is not: a delegate may mix calls under its own authority
with calls under a delegator's, more than either makes alone. So its search gives each
symbolic call a choice (``via``): its own authority, or a delegation of one rule a
delegation can start from (``_options``, as ``allow`` or ``ask``) by a free delegator
holding it, under what ``Guard.delegate`` asks (``_rooted``, the encoding of ``no
delegation lets``). A call under a delegation that its own authority denies (it *needs*
the grant, ``needs``) charges each budget covering the same call by the delegator too, in
the delegator's partition (a budget not split per agent: the same partition, charged
once); otherwise only the agent's own, as ``Guard._payers`` charges. A direct delegation
from the rule's holder is the cheapest way to any grant a chain reaches (a chain's grant
is one direct delegation too, and a chain only adds delegators to charge), so the search
covers chains; charging only the root holder over-approximates what a chain may do. A
call is decided with its one delegation: in a layered policy, a call that only several
grants permit together (``Guard`` then charges all their chains) is not searched, as in
``no delegation lets``.
Every counterexample's delegations are built (``_delegation``: the rule's whole region,
else one narrowed to fit every layer) and replayed with the sequence; a proof from the
search says ``DELEGATED``, one from a budget alone (``dominating``: the delegate's own
budgets are charged for every call it makes) needs no such assumption.

Tool names are searched among finitely many representatives (``tool_names``), not over all
strings: the names the policy lists, and for each way a name can match the policy's globs
enough fresh names to give every distinct call its own (see ``tool_names`` for why this is
exact).

A proof is exact when ``kinds`` reaches the count asked for (``more than N times`` needs N+1
calls) or one budget alone bounds every call the property counts; otherwise it holds for
sequences of at most ``kinds`` distinct calls, and says so. Every counterexample is replayed
through one ``Guard`` in order (``replay_sequence``), each call decided as the solver said.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from .._events import ToolCall
from ..guard import Guard
from ..policy import Policy, Rule
from ..policy._budgets import Budget, Measure
from ..policy._patterns import NameSet, is_glob
from ._delegation import _binding, _options, delegable_rules, granted
from ._encode import DENY, EFFECTS, SymCall, _names, _overlap, pinned, same_tool, tool_in
from ._props import Property
from ._regex import glob_regex, glob_witness
from ._values import EMPTY, FLOAT, INT, OTHER, STR, text
from ._z3 import QUICK, RLIMIT, check, limit, z3

if TYPE_CHECKING:
    from ._answers import Delegation, Repeated, Result

Verifier = Any  # the caller (``_verifier.Verifier``; importing it would make a cycle)

KINDS = 6
"""Distinct calls a sequence is searched over (a count of N needs up to N+1)."""
BITS = 12
"""Each distinct call repeats up to 2**BITS - 1 times (more when a count asks for more)."""
DELEGATED = "grants come from delegations of the policy's rules (not Guard.grant)"
"""What a per-agent bound proven by a search that includes delegated calls assumes (the
same as a ``no delegation lets`` proof: an operator's grant is outside the policy)."""
_FREE = {"run": frozenset(), "thread": frozenset({"run"}), "total": frozenset({"run", "thread"})}


def budgets_of(policy: Policy) -> tuple[Budget, ...]:
    """Every budget the guard charges for ``policy`` (all layers)."""
    return tuple(getattr(policy, "_all_budgets", policy.budgets))


def replay_sequence(
    policy: Policy, sequence: Sequence[Repeated], delegations: Sequence[Delegation] = ()
) -> list[tuple[str, str]]:
    """(effect, rule) of every call of ``sequence``, checked in order by one fresh ``Guard``
    whose clock moves past every budget window between two calls, after ``delegations``
    were made on it (``Guard.delegate``, in order)."""
    gap = 1.0 + max((b.window or 0.0 for b in budgets_of(policy)), default=0.0)
    now = [1_000_000.0]

    def clock() -> float:
        return now[0]

    guard = Guard(policy, clock=clock)
    for g in delegations:
        guard.delegate(
            g.delegator,
            g.agent,
            list(g.tools),
            args=dict(g.args),
            effect=g.effect,  # type: ignore[arg-type]
        )
    out: list[tuple[str, str]] = []
    i = 0
    for item in sequence:
        for _ in range(item.times):
            d = guard.check(item.call(i))
            out.append((str(d.effect), d.rule))
            i += 1
            now[0] += gap
    return out


def dominating(policy: Policy, p: Property) -> Budget | None:
    """A budget that alone bounds every call ``p`` counts within its limit (a proof that
    needs no search), or ``None``."""
    free = _FREE[p.per]
    for b in budgets_of(policy):
        if b.window is not None or b.of != "args" or set(b.per) & free:
            continue
        if not NameSet(b.tools).covers(p.tool):
            continue
        if not NameSet(b.agents).covers(p.agent or "*"):
            continue
        if "tool" in b.per and is_glob(p.tool):
            continue
        if "agent" in b.per and p.together:
            continue
        if p.count is not None and b.measure is Measure.CALLS and b.limit <= p.count:
            return b
        if p.total is not None and b.measure is Measure.SUM and b.arg == p.total[0]:
            _, op, n = p.total
            if b.limit <= n if op == ">" else b.limit < n:
                return b
    return None


def symmetric(p: Property, budgets: Iterable[Budget], delegated: bool = False) -> bool:
    """Whether one call, repeated, is as good a counterexample as any sequence: no budget
    tells the calls apart by agent (of agents together) or by tool (of a glob), and no sum
    budget meets a total (a knapsack: amounts may need mixing). Then every call of a
    counterexample can be replaced by the one that costs least (a count) or adds most (a
    total): calls budgets and distinct values only get easier. ``delegated``: the search
    includes calls under delegated grants, which charge their delegators' budgets as well
    as the agent's, so calls of different payers do not compare unless no budget binds
    calls together."""
    free = _FREE[p.per]
    for b in budgets:
        if b.of != "args" or b.measure is Measure.TOKENS:
            continue
        if set(b.per) & free or b.window is not None:
            continue  # binds each call alone
        if delegated:
            return False
        if "agent" in b.per and p.together:
            return False
        if "tool" in b.per and is_glob(p.tool):
            return False
        if b.measure is Measure.SUM and p.total is not None:
            return False
    return True


def tool_names(
    policy: Policy,
    p: Property,
    kinds: int,
    rlimit: int = RLIMIT // 15,
    timeout: float | None = None,
) -> tuple[str, ...] | None:
    """Representatives of the tool names a search of ``kinds`` distinct calls of ``p`` needs,
    or ``None`` when they do not come out few (the search then keeps tool names free).

    Why they suffice: the encoding depends on a call's tool name only through which of
    finitely many patterns it matches — the tool names and globs of the rules and budgets that
    may speak about ``p.tool`` (``_names``: equality with a listed name, membership of a
    glob's language; ``p.tool`` itself, and a glob no name of ``p.tool`` matches, are true, or
    false, of every name the search may pick, so they are left out) — and through equality
    between the calls' tools (a budget counted per tool). The engine's decision and a budget's partitions depend
    on a name the same way (``NameSet.matches``, the store's key). Call a name's *type* the
    set of patterns it matches, a listed name being its own type. Any solution with tool
    names t_1..t_K (K <= ``kinds``) stays a solution when each distinct t_i is replaced by a
    distinct representative of the same type: types are kept, so every pattern test is, and
    distinct names stay distinct, so every per-tool partition is. Representatives for that
    exist when each type holds ``kinds`` of them or all of its names; the loop below asks z3
    for a name matching ``p.tool`` whose type holds fewer representatives than that (with the
    same ``_names`` formulas as the encoding) until there is none. So the restricted search is
    satisfiable exactly when the free one is: a proof holds for every tool name, and a
    counterexample is replayed through the engine as before. Readable names (a witness of each
    glob, numbered) are tried first; z3 fills in what they miss."""
    Z = z3()
    pats: dict[str, None] = {p.tool: None}
    rules = [*policy.compiled_rules, *(r for layer in policy.layers for r in layer._own_rules)]
    for r in rules:
        if any(_overlap(t, p.tool) for t in r.tools):
            pats.update(dict.fromkeys(r.tools))
    for b in budgets_of(policy):
        if any(_overlap(t, p.tool) for t in b.tools):
            pats.update(dict.fromkeys(b.tools))
    if "*" in pats and p.tool != "*":
        del pats["*"]  # matches every name: tells none apart
    t = Z.String("tool")
    solver = limit(Z.Solver(), rlimit, timeout)
    solver.add(_names(t, (p.tool,)))
    globs: list[str] = []
    for g in pats:
        if not is_glob(g) or g == p.tool:
            continue
        solver.push()
        solver.add(_names(t, (g,)))
        met = solver.check()
        solver.pop()
        if met != Z.unsat:  # a glob no name of ``p.tool`` matches tells none apart
            globs.append(g)
    res = [glob_regex(g) for g in globs]

    def holds(formula: Any) -> bool:
        return bool(Z.is_true(Z.simplify(formula)))

    def ours(name: str) -> bool:
        return holds(_names(Z.StringVal(name), (p.tool,)))

    def kind(name: str) -> tuple[bool, ...]:  # as the encoding's formulas decide it
        return tuple(holds(Z.InRe(Z.StringVal(name), r)) for r in res)

    exact = sorted(n for n in pats if not is_glob(n) and ours(n))
    found: list[str] = list(exact)
    count: dict[tuple[bool, ...], int] = {}

    def add(name: str) -> bool:
        if name in found or not ours(name):
            return False
        k = kind(name)
        if count.get(k, 0) >= kinds:
            return False
        count[k] = count.get(k, 0) + 1
        found.append(name)
        return True

    for g in globs:
        w = glob_witness(g)
        if w:
            for i in range(kinds):
                add(w if i == 0 else f"{w}{i + 1}")
    solver.add(*[t != Z.StringVal(n) for n in exact])
    for _ in range(64):
        full = [k for k, c in count.items() if c >= kinds]
        solver.push()
        same = [
            Z.And(Z.BoolVal(True), *[Z.InRe(t, r) == b for r, b in zip(res, k, strict=True)])
            for k in full
        ]
        solver.add(Z.Not(Z.Or(*same)) if same else Z.BoolVal(True))
        # a type not full yet gains a name unless it holds all of its names already
        solver.add(*[t != Z.StringVal(n) for n in found])
        verdict = check(solver)
        if verdict != Z.sat:
            solver.pop()
            return tuple(found) if verdict == Z.unsat else None
        name = text(solver.model().eval(t, model_completion=True))
        solver.pop()
        if not add(name):  # cannot happen (z3 and its simplifier agree); stay free
            return None
    return None


def check_bounded(v: Verifier, p: Property, *, representatives: bool = True) -> Result:
    """Prove a bound (``p.count`` or ``p.total``) or refute it with a sequence of calls
    (``representatives=False``: tool names are any strings, to compare with ``tool_names``)."""
    from ._answers import Result

    Z = z3()
    policy = v.policy
    found = dominating(policy, p)
    if found is not None:
        return Result(
            p.text, "proven", detail=f"budget {found.id!r} alone bounds every call counted"
        )
    if _kinds(policy, p) > 2:  # a counterexample of few distinct calls is found much faster
        agent_names, tool_names = v.names()
        for few in (1, 2):
            quick = search(v, p, kinds=few, representatives=representatives)
            v.limited(quick.solver, QUICK * few * few)
            for c in quick.calls:  # names the policy lists: a guess, sat means sat
                quick.solver.add(Z.Or(*[c.tool == Z.StringVal(n) for n in tool_names]))
                quick.solver.add(Z.Or(*[c.agent == Z.StringVal(n) for n in agent_names]))
            if quick.solver.check() == Z.sat:
                v.limited(quick.solver)
                found_quick = _refute(v, p, quick)
                if found_quick is not None:
                    return found_quick
    return _decide(v, p, search(v, p, representatives=representatives))


def _refute(v: Verifier, p: Property, q: Search) -> Result | None:
    """The refutation a satisfiable search gives, if the guard agrees with its model (the
    delegations it uses made first, with ``Guard.delegate``)."""
    from ._answers import Counterexample, Repeated, Result

    Z = z3()
    solver, calls, mult, effects = q.solver, q.calls, q.mult, q.effects
    agents = [c.agent for c in calls] + list(q.delegators)
    if p.count is None:
        model = _short(v, solver, mult, agents, [c.tool for c in calls])
    else:
        model = v._readable(solver, agents, [c.tool for c in calls])
    sequence: list[Repeated] = []
    wanted: list[str] = []
    delegations: dict[tuple[Any, ...], Delegation] = {}
    fresh = {"run": "", "thread": "run", "total": "thread"}[p.per]
    for k, c in enumerate(calls):
        times = model.eval(mult[k], model_completion=True).as_long()
        if times < 1:
            continue
        call, _, _ = v._call(c, model)
        want = EFFECTS[model.eval(effects[k], model_completion=True).as_long()]
        under = ""
        if q.via and (chosen := model.eval(q.via[k], model_completion=True).as_long()) > 0:
            root, how = q.options[chosen - 1]
            under = text(model.eval(q.delegators[k], model_completion=True))
            made = _delegation(v.policy, root, how, under, call)
            if made is None:
                return None  # Guard.delegate takes none of the grants built for the call
            delegations.setdefault((made.delegator, made.tool_key, repr(made.args)), made.grant)
            if not Z.is_true(model.eval(q.needs[k], model_completion=True)):
                under = ""  # its own authority permits it: the grant changes no charge
        sequence.append(Repeated(call.agent, call.tool, dict(call.args), times, want, fresh, under))
        wanted += [want] * times
    made_all = tuple(delegations.values())
    got = replay_sequence(v.policy, sequence, made_all)
    if [g for g, _ in got] != wanted:
        return None
    keep = {cond.arg for cond in p.conds} | ({p.total[0]} if p.total else set())
    sequence = _minimized(v.policy, sequence, keep, wanted, made_all)
    got = replay_sequence(v.policy, sequence, made_all)
    last = sequence[-1]
    cex = Counterexample(
        last.agent,
        last.tool,
        dict(last.args),
        got[-1][0],
        got[-1][1],
        sequence=tuple(sequence),
        delegations=made_all,
    )
    return Result(p.text, "refuted", cex, (*q.enc.assumptions, *q.notes), tuple(q.enc.approximated))


@dataclass(frozen=True)
class _Made:
    delegator: str
    tool_key: tuple[str, str]
    args: dict[str, Any]
    grant: Delegation


def _delegation(
    policy: Policy, root: Rule, how: Literal["allow", "ask"], giver: str, call: ToolCall
) -> _Made | None:
    """A delegation of ``root`` (as ``how``) by ``giver`` to the call's agent that
    ``Guard.delegate`` accepts and that holds ``call``: ``root``'s whole region, else one
    narrowed to fit every layer (``_regions``); ``None`` when it takes none of them."""
    from .._errors import DelegationError
    from ._answers import Delegation
    from ._delegation import _regions

    for args in _regions(policy, root, giver, call):
        guard = Guard(policy)
        try:
            guard.delegate(giver, call.agent, [call.tool], args=args, effect=how)
        except DelegationError:
            continue
        grant = Delegation(giver, call.agent, (call.tool,), dict(args), how, root.id)
        return _Made(giver, (call.agent, call.tool), dict(args), grant)
    return None


def _decide(v: Verifier, p: Property, q: Search) -> Result:
    """Prove or refute with the full search."""
    from ._answers import Result, gave_up_result

    Z = z3()
    policy = v.policy
    enc, solver, calls, mult, bitvars, effects, notes = (
        q.enc,
        q.solver,
        q.calls,
        q.mult,
        q.bitvars,
        q.effects,
        q.notes,
    )
    kinds, bits, need = len(calls), len(bitvars[0]), q.need
    del mult, effects
    searched = (
        f"sequences of at most {kinds} distinct calls, each repeated at most {2**bits - 1} times"
    )
    exact_search = (need is not None and kinds >= need) or (
        kinds == 1 and symmetric(p, budgets_of(policy), bool(q.options))
    )
    atoms = [a for c in calls for a in c.atoms.values()] + [b for bs in bitvars for b in bs]
    atoms += q.via
    approximated = tuple(enc.approximated)
    blocked = False
    for _attempt in range(8):
        verdict = check(solver)
        if verdict == Z.unsat and not blocked:
            assumptions = list(enc.assumptions) + notes
            if not exact_search and dominating(policy, p) is None:
                assumptions.append(searched)
            if q.options:
                assumptions.append(DELEGATED)
            return Result(
                p.text, "proven", assumptions=tuple(assumptions), approximated=approximated
            )
        if verdict == Z.unsat:
            break
        if verdict != Z.sat:
            return gave_up_result(p.text, solver, (*enc.assumptions, *notes), approximated)
        model = solver.model()
        refuted = _refute(v, p, q)
        if refuted is not None:
            return refuted
        solver.add(Z.Or(*[a != model.eval(a, model_completion=True) for a in atoms]))
        blocked = True
    return Result(
        p.text,
        "unknown",
        assumptions=(*enc.assumptions, *notes),
        approximated=approximated,
        detail="the guard decides the solver's sequences otherwise (they rest on "
        "over-approximated scopes or budgets: " + "; ".join(approximated) + ")",
    )


@dataclass
class Search:
    """The constraints of a bound: ``len(calls)`` symbolic calls, each repeated ``mult``
    times (in binary: ``bitvars``), permitted with ``effects``, within every budget."""

    enc: Any
    solver: Any
    calls: list[SymCall]
    mult: list[Any]
    bitvars: list[list[Any]]
    effects: list[Any]
    notes: list[str]
    need: int | None
    via: list[Any] = field(default_factory=list)
    """Per call: 0 under the agent's own authority, ``i`` under a delegation of
    ``options[i - 1]`` (empty when delegations are not searched)."""
    delegators: list[Any] = field(default_factory=list)
    """Per call: who delegated (holds the option's rule)."""
    options: list[tuple[Rule, Literal["allow", "ask"]]] = field(default_factory=list)
    """The delegations searched: a rule a delegation starts from, and its effect."""
    needs: list[Any] = field(default_factory=list)
    """Per call: it is made under a delegation its own authority denies (so the
    delegator's budgets are charged too)."""


def search(
    v: Verifier,
    p: Property,
    kinds: int | None = None,
    domain: bool = True,
    representatives: bool = True,
) -> Search:
    """Build the solver of bound ``p`` (``kinds`` distinct calls, default: as many as a count
    needs, at most ``KINDS``; ``domain=False`` leaves out the representatives the search
    keeps to, for concrete values; ``representatives=False``: tool names are any strings)."""
    from ._answers import EFFECT_CODE as _EFFECT_CODE

    Z = z3()
    policy = v.policy
    relevant = _relevant(policy, p)
    extra = {cond.arg for cond in p.conds}
    if p.total is not None:
        extra.add(p.total[0])
    extra.update(b.arg for b in relevant if b.arg and b.measure in (Measure.SUM, Measure.DISTINCT))
    named: dict[str, set[str]] = {}
    for cond in p.conds:
        if cond.op in ("outside", "inside"):
            named.setdefault(cond.arg, set()).update(str(x) for x in cond.values)
    enc = v.encoder(extra, names=named)
    enc.assumptions, enc.approximated = {}, {}
    need = (p.count + 1) if p.count is not None else None
    if kinds is None:
        kinds = _kinds(policy, p)
    bits = BITS if need is None else max(BITS, need.bit_length())
    solver = v.limited(Z.Solver())
    calls: list[SymCall] = []
    mult: list[Any] = []
    bitvars: list[list[Any]] = []
    used: list[Any] = []
    effects: list[Any] = []
    tools: tuple[str, ...] = ()
    if domain and representatives:
        cache = v.__dict__.setdefault("_tool_names", {})
        key = (p, kinds)
        if key not in cache:
            cache[key] = tool_names(policy, p, kinds, v.rlimit // 15, v.timeout) or ()
        tools = cache[key]
    options: list[tuple[Rule, Literal["allow", "ask"]]] = []
    if delegating(policy, p):
        options = [(r, how) for r, how in _options(policy, p.tool) if r is not None]
    binding = _binding(policy)
    via: list[Any] = []
    delegators: list[Any] = []
    needs: list[Any] = []
    for k in range(kinds):
        c = enc.new_call(f"q{k}.", tools)
        calls.append(c)
        if domain:
            solver.add(*c.domain)
        bs = [Z.Bool(f"q{k}.m{j}") for j in range(bits)]
        bitvars.append(bs)
        m = Z.Sum(*[Z.If(b, 2**j, 0) for j, b in enumerate(bs)])
        mult.append(m)
        u = m >= 1
        used.append(u)
        if k:
            solver.add(Z.Implies(u, used[k - 1]))  # the used calls come first
        eff = mine = enc.effect(c, tools=(p.tool,))
        need_k: Any = Z.BoolVal(False)
        if options:
            # the call under its own authority (0), or under a delegation of option i from
            # a holder of its rule: the engine charges the holder too when the agent's own
            # authority denies the call (it needs the grant)
            sel = Z.Int(f"q{k}.via")
            giver = Z.String(f"q{k}.delegator")
            via.append(sel)
            delegators.append(giver)
            solver.add(sel >= 0, sel <= len(options))
            grants: list[tuple[Rule, Any]] = []
            for i, (grant, held) in enumerate(granted(enc, c, options, binding, giver), start=1):
                solver.add(Z.Implies(sel == i, Z.And(giver != c.agent, *held)))
                grants.append((grant, sel == i))
            # one decision with every grant, the chosen one in force (none when sel == 0)
            eff = enc.effect(c, grants, tools=(p.tool,))
            need_k = Z.And(sel > 0, mine == DENY)
        needs.append(need_k)
        effects.append(eff)
        own = [
            c.agent != "",
            tool_in(c, (p.tool,)),
            Z.Or(*[eff == _EFFECT_CODE[e] for e in sorted(p.effects)]),
            Z.Not(c.carries),
            *[Z.Not(on) for on, _ in c.taint],
            *[v._cond(cond, c.args[cond.arg]) for cond in p.conds],
        ]
        if p.agent is not None:
            own.append(_names(c.agent, (p.agent,)))
        if k and not p.together:
            own.append(c.agent == calls[0].agent)
        solver.add(Z.Implies(u, Z.And(*own)))
    if p.count is not None:
        solver.add(Z.Sum(*mult) == p.count + 1)
    else:
        assert p.total is not None
        arg, op, n = p.total
        terms = [_times(bitvars[k], _number(calls[k].args[arg])) for k in range(kinds)]
        total = Z.Sum(*terms)
        solver.add(total > Z.RealVal(str(n)) if op == ">" else total >= Z.RealVal(str(n)))
    payers = delegators if options else None
    notes = _encode_budgets(enc, solver, p, relevant, calls, used, bitvars, payers, needs)
    if any(r.tainted_by and r.permits for r in policy.compiled_rules if r.effect.value != "deny"):
        notes.append("no untrusted content entered the runs")
    return Search(
        enc, solver, calls, mult, bitvars, effects, notes, need, via, delegators, options, needs
    )


def delegating(policy: Policy, p: Property) -> bool:
    """Whether the search of ``p`` includes calls under delegated grants: a per-agent bound
    when some rule about the tool can be delegated (``agents together`` bounds need not:
    see the module docstring)."""
    return not p.together and bool(delegable_rules(policy.compiled_rules, p.tool))


def _relevant(policy: Policy, p: Property) -> list[Budget]:
    """The budgets that may cover a call of ``p``."""
    return [b for b in budgets_of(policy) if any(_overlap(t, p.tool) for t in b.tools)]


def _kinds(policy: Policy, p: Property) -> int:
    """How many distinct calls the full search of ``p`` takes."""
    need = (p.count + 1) if p.count is not None else None
    if symmetric(p, _relevant(policy, p), delegating(policy, p)):
        return 1
    return KINDS if need is None else min(need, KINDS)


def _short(v: Verifier, solver: Any, mult: Sequence[Any], agents: Any, tools: Any) -> Any:
    """A model with few calls (at most 16, else 256, when some model has so few) and
    readable names."""
    Z = z3()
    for most in (16, 256):
        solver.push()
        solver.add(Z.Sum(*mult) <= most)
        v.limited(solver, QUICK)
        try:
            if solver.check() == Z.sat:
                return v._readable(solver, agents, tools)
        finally:
            solver.pop()
            v.limited(solver)
    solver.check()
    return v._readable(solver, agents, tools)


def _minimized(
    policy: Policy,
    sequence: list[Repeated],
    keep: set[str],
    wanted: list[str],
    delegations: Sequence[Delegation] = (),
) -> list[Repeated]:
    """``sequence`` without the arguments its decisions do not need, identical neighbours
    merged: an argument is dropped when every call is still decided as before."""

    out = list(sequence)
    for i, item in enumerate(sequence):
        for name in list(item.args):
            if name in keep:
                continue
            cur = out[i]
            trial = replace(cur, args={k: x for k, x in cur.args.items() if k != name})
            candidate = [*out[:i], trial, *out[i + 1 :]]
            if [g for g, _ in replay_sequence(policy, candidate, delegations)] == wanted:
                out = candidate
    merged: list[Repeated] = []
    for item in out:
        prev = merged[-1] if merged else None
        if prev is not None and replace(prev, times=item.times) == item:
            merged[-1] = replace(prev, times=prev.times + item.times)
        else:
            merged.append(item)
    return merged


def _number(arg: Any) -> Any:
    """The number an argument adds to a sum (0 when it is not a number)."""
    Z = z3()
    return Z.If(Z.Or(arg.tag == INT, arg.tag == FLOAT), arg.num, Z.RealVal(0))


def _times(bits: Sequence[Any], amount: Any) -> Any:
    """``amount`` times the multiplicity written in ``bits`` (linear: a sum of doublings)."""
    Z = z3()
    return Z.Sum(*[Z.If(b, amount * (2**j), Z.RealVal(0)) for j, b in enumerate(bits)])


def _member(arg: Any) -> Any:
    """The string a distinct budget counts for a string or integer value (``str()``)."""
    Z = z3()
    n = Z.ToInt(arg.num)
    digits = Z.If(n >= 0, Z.IntToStr(n), Z.Concat(Z.StringVal("-"), Z.IntToStr(-n)))
    return Z.If(arg.tag == STR, arg.s, digits)


def _encode_budgets(
    enc: Any,
    solver: Any,
    p: Property,
    budgets: Iterable[Budget],
    calls: Sequence[SymCall],
    used: Sequence[Any],
    bitvars: Sequence[Sequence[Any]],
    payers: Sequence[Any] | None = None,
    needs: Sequence[Any] = (),
) -> list[str]:
    """Add every budget's bound over the sequence; return what the answer should say.

    Each call charges a budget covering it in its agent's partition; with ``payers`` (per
    call, the agent whose delegated grant it may be made under) a call whose ``needs`` holds
    also charges every budget covering the same call by that agent, in the agent's
    partition, and a partition both share once (``Guard._payers``)."""
    Z = z3()
    notes: list[str] = []
    free = _FREE[p.per]
    for b in budgets:
        # the charges: (call index, whose partition, whether it is charged)
        entries: list[tuple[int, Any, Any]] = []
        for k, c in enumerate(calls):
            mine = Z.And(used[k], tool_in(c, b.tools), _names(c.agent, b.agents))
            entries.append((k, c.agent, mine))
            if payers is not None:
                giver = payers[k]
                theirs = Z.And(used[k], needs[k], tool_in(c, b.tools), _names(giver, b.agents))
                if "agent" not in b.per:  # the same partition as the agent's: charged once
                    theirs = Z.And(theirs, Z.Not(mine))
                entries.append((k, giver, theirs))
        covers = [x for _, _, x in entries]
        n = len(entries)
        if b.of != "args":
            if b.limit <= 0:  # used up before anything is used
                solver.add(*[Z.Not(x) for x in covers])
            continue
        if b.measure is Measure.TOKENS:
            enc.approximated[f"token budget {b.id!r} (tokens are not counted)"] = None
            continue
        alone = bool(set(b.per) & free) or b.window is not None
        if b.window is not None:
            notes.append(
                f"rate {b.id!r} bounds each {b.window:g}s window, not the total: "
                "the calls may be spaced in time"
            )

        def same(i: int, j: int, b: Budget = b, entries: list[Any] = entries) -> Any:
            parts = [Z.BoolVal(True)]
            if "agent" in b.per:
                parts.append(entries[i][1] == entries[j][1])
            if "tool" in b.per:
                parts.append(same_tool(calls[entries[i][0]], calls[entries[j][0]]))
            return Z.And(*parts)

        limit_ = Z.RealVal(str(float(b.limit)))
        if b.measure is Measure.DISTINCT:
            if b.items != "value":
                enc.approximated[f"distinct budget {b.id!r} of e-mail addresses"] = None
                continue
            assert b.arg is not None
            enc.approximated[f"distinct budget {b.id!r}: a list adds no new value"] = None
            args = [calls[k].args[b.arg] for k, _, _ in entries]
            has = [Z.Or(a.tag == STR, a.tag == INT) for a in args]
            for i in range(n):
                ok = Z.Or(*[args[i].tag == t for t in (STR, INT, EMPTY, OTHER)])
                solver.add(Z.Implies(covers[i], ok))
            if alone:
                if b.limit < 1:
                    solver.add(*[Z.Not(Z.And(covers[i], has[i])) for i in range(n)])
                continue
            new = [
                Z.And(
                    covers[i],
                    has[i],
                    *[
                        Z.Not(
                            Z.And(
                                covers[j],
                                same(j, i),
                                has[j],
                                _member(args[j]) == _member(args[i]),
                            )
                        )
                        for j in range(i)
                    ],
                )
                for i in range(n)
            ]
            for i in range(n):
                total = Z.Sum(*[Z.If(Z.And(new[j], same(j, i)), 1, 0) for j in range(n)])
                solver.add(Z.Implies(covers[i], total <= int(b.limit)))
            continue
        if b.measure is Measure.SUM:
            assert b.arg is not None
            args = [calls[k].args[b.arg] for k, _, _ in entries]
            amount = [a.num for a in args]
            for i in range(n):
                ok = Z.And(Z.Or(args[i].tag == INT, args[i].tag == FLOAT), args[i].num >= 0)
                solver.add(Z.Implies(covers[i], ok))
        else:
            amount = [Z.RealVal(1) for _ in entries]
        if alone:
            solver.add(*[Z.Implies(covers[i], amount[i] <= limit_) for i in range(n)])
            continue
        for i in range(n):
            total = Z.Sum(
                *[
                    Z.If(
                        Z.And(covers[j], same(j, i)),
                        _times(bitvars[entries[j][0]], amount[j]),
                        0,
                    )
                    for j in range(n)
                ]
            )
            solver.add(Z.Implies(covers[i], total <= limit_))
    return list(dict.fromkeys(notes))


def feasible(v: Verifier, sequence: Sequence[ToolCall], per: str = "run") -> bool:
    """Whether the encoding lets every call of ``sequence`` be permitted, one after the
    other, its budgets charged (runs laid out as ``per`` says: one run, a run each in one
    thread, a thread each): what the differential test compares with ``replay_sequence``."""
    Z = z3()
    p = Property(
        "(a concrete sequence)", "never", "*", count=len(sequence) - 1, per=per, together=True
    )
    q = search(v, p, kinds=len(sequence), domain=False)
    eqs: list[Any] = []
    for sym, bits, call in zip(q.calls, q.bitvars, sequence, strict=True):
        eqs += [bits[0], *[Z.Not(b) for b in bits[1:]]]
        eqs += [sym.agent == Z.StringVal(call.agent), sym.tool == Z.StringVal(call.tool)]
        eqs += pinned(sym, call.args)
    q.solver.add(*eqs)
    verdict = q.solver.check()
    if verdict == Z.unknown:
        raise AssertionError(f"the solver gave up on {list(sequence)!r}")
    return bool(verdict == Z.sat)
