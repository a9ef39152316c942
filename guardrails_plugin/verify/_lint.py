"""``deep_lint``: the warnings of ``lint --deep``, as solver questions answered fast.

Each rule is asked a few questions: does some call match it (``matches``), does the
decision then let the call through (``fires``: not a deny), is such a call asked about
(``asked``, for ask rules) or allowed (``allowed``, for allow rules), and does each of its
scopes accept some value. A warning is printed only when a question is proven
unsatisfiable over the encoding; a satisfiable or unanswered one says nothing.

Most questions of a real policy are satisfiable, and showing that is cheap without a
solver: a concrete call that the engine decides shows it. So:

1. *samples* (``_samples.py``): for each rule, a few calls built from what it lists (its
   tool and agents, values its scopes accept, a source of its data flow); each is decided
   by the engine (``replay``: ``Guard.check`` on a fresh guard) and kept as a *witness*.
   A witness answers the questions of every rule about its tool: the rule matches it
   (``Policy._judge``, the engine's own test) and the decision is deny, ask or allow;
   a scope accepts a value when ``Scope.check`` does. The samples stay inside what the
   encoding assumes (one recipient, ASCII text, no symbolic link on a path they name), so
   a witness is a model the encoding also has;
2. only the questions no witness answers go to the solver, over the encoding of the rules
   about the rule's tools (one encoder, one symbolic call, one encoding of the decision per
   group of rules with the same tools), with the guesses of ``_hints`` first; the model of
   a satisfiable answer, once the engine decides its call as the encoding does, becomes a
   witness too.

Every warning comes from an unsatisfiable exact question, as in ``_deep_lint_per_rule``
(one solver per rule over the whole policy, no witnesses), the reference the tests compare
the two with.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from .._events import ToolCall
from ..policy import Policy, Rule, RuleEffect
from ..policy._rules import LOST, Outcome
from ..scopes import Emails, Paths, Scope, Urls
from ._compare import _call
from ._delegation import undelegable
from ._encode import ALLOW, ASK, DENY, EFFECTS, Encoder, SymCall, _leaf
from ._samples import plain, samples, values_for
from ._values import Arg, path_representatives, representatives
from ._verifier import replay
from ._z3 import LINT_RLIMIT, LINT_TIMEOUT, Limits, limit, z3

QUESTIONS = ("matches", "fires", "asked", "allowed")


def deep_lint(
    policy: Policy, *, rlimit: int = LINT_RLIMIT, timeout: float | None = LINT_TIMEOUT
) -> list[str]:
    """Warnings the solver can prove (see the module docstring), in policy order; a
    question not answered within ``rlimit`` solver steps (z3's resource count: the same on
    any machine and under any load; ``0``: no limit) gives no warning, nor one the
    last-resort wall-clock ceiling ``timeout`` (seconds, ``None``: none) cuts.

    Rules about the same tools share one encoder, one symbolic call and one encoding of the
    decision (only the rules that can speak about those tools: rules of other tools cannot
    shadow them). The encoder collects the hosts, mail domains and roots its views search
    over from those rules only, which keeps the search exact (the representatives stand
    for every name as far as the encoded scopes can tell) and small: z3 slows down sharply
    with every listed name a string may equal."""
    limits = (rlimit, timeout)
    lint = _Lint(policy, limits)
    out: list[str] = []
    for r in policy.compiled_rules:
        out += lint.rule(r)
    return out + undelegable(policy, limits)


def _rule_findings(r: Rule, possible: Callable[[str], bool | None], empty: list[str]) -> list[str]:
    """What deep lint says of one rule, given ``possible(question)`` (one of ``QUESTIONS``;
    False when no call meets it) and what it found of its scopes (``empty``)."""
    if possible("matches") is False:
        return [
            f"rule {r.id!r} matches no call (its scopes, tools and agents exclude each other)",
            *empty,
        ]
    out: list[str] = []
    if possible("fires") is False:
        out.append(
            f"rule {r.id!r} can never fire: a deny rule (or a failing ask) covers every call it matches"
        )
    elif r.effect is RuleEffect.ASK and possible("asked") is False:
        out.append(f"ask rule {r.id!r} is never reached: no call it matches is asked about")
    elif r.effect is RuleEffect.ALLOW and possible("allowed") is False:
        out.append(
            f"rule {r.id!r} never allows anything: every call it matches is denied or "
            "asked about by another rule"
        )
    out += empty
    if r.when is not None:
        out.append(f"rule {r.id!r} can never be delegated: it has a 'when' condition")
    return out


def _condition(question: str, on: Any, m: Any, effect: Any) -> list[Any]:
    """``question`` as constraints over the encoding (``on``, ``m``: the rule is about the
    call and matches it; ``effect``: the decision)."""
    extra = {"matches": [], "fires": [effect != DENY], "asked": [effect == ASK]}
    return [on, m, *extra.get(question, [effect == ALLOW])]


def _holds(question: str, effect: str) -> bool:
    """Whether a call the rule matches, decided ``effect``, answers ``question``."""
    return {"matches": True, "fires": effect != "deny", "asked": effect == "ask"}.get(
        question, effect == "allow"
    )


def _empty_message(r: Rule, name: str, scope: Scope) -> str:
    return f"rule {r.id!r}: the scope of {name!r} ({scope!r}) accepts nothing"


@dataclass
class _Witness:
    """A concrete call and the engine's decision of it."""

    call: ToolCall
    tainted: tuple[str, ...]
    carries: bool
    effect: str
    matched: dict[str, bool] = field(default_factory=dict)
    """Per rule id: whether the engine says the rule matches the call."""


class _Lint:
    """The witnesses found so far (by tool) and the encodings built so far (by group)."""

    def __init__(self, policy: Policy, limits: Limits) -> None:
        self.policy = policy
        # the encoding decides with shadow rules enforced: so do the witnesses
        self.engine: Policy = policy._enforcing or policy
        self.limits = limits
        self.groups: dict[tuple[str, ...], _Group] = {}
        self.witnesses: dict[str, list[_Witness]] = {}
        self.agents = sorted({a for r in policy.compiled_rules for a in r.agents if a != "*"})

    def rule(self, r: Rule) -> list[str]:
        """The warnings of rule ``r``."""
        best = {RuleEffect.ALLOW: "allowed", RuleEffect.ASK: "asked"}.get(r.effect, "matches")
        if self._known(r, best) is None:
            for call, tainted in samples(r, self.agents):
                self._add(call, tainted, bool(tainted))
                if self._known(r, best):
                    break
        empty = [_empty_message(r, n, s) for n, s in r.args.items() if self._empty(r, n, s)]
        if r.effect is RuleEffect.DENY or not r.permits:
            return empty if r.effect is RuleEffect.DENY else []
        sat: set[str] = set()
        if self._known(r, best) is None:  # the strongest question first: it answers the rest
            self._possible(r, best, sat)
        return _rule_findings(r, lambda q: self._possible(r, q, sat), empty)

    # -- answers -------------------------------------------------------------------------------

    def _known(self, r: Rule, question: str) -> bool | None:
        """True when a witness answers ``question`` for ``r``, else None."""
        for tool, ws in self.witnesses.items():
            if not any(fnmatch.fnmatchcase(tool, t) for t in r.tools):
                continue
            for w in ws:
                if _holds(question, w.effect) and self._matches(r, w):
                    return True
        return None

    def _possible(self, r: Rule, question: str, sat: set[str]) -> bool | None:
        """Whether ``question`` can hold for ``r`` (``None``: the solver gave up); ``sat``
        collects the questions of ``r`` a model of the encoding has shown satisfiable."""
        if question in sat or self._known(r, question):
            return True
        group = self._group(r)
        verdict, model = group.ask(r, question)
        if model is not None:
            sat.update(q for q in QUESTIONS if group.holds(model, r, q))
            self._add_model(group, model)
        return verdict

    def _empty(self, r: Rule, name: str, scope: Scope) -> bool:
        """Whether ``scope`` (of ``r``'s argument ``name``) provably accepts no value."""
        if any(plain(v) and _accepts(scope, v) for v in (*values_for(scope), None)):
            return False
        for ws in self.witnesses.values():
            if any(name in w.call.args and _accepts(scope, w.call.args[name]) for w in ws):
                return False
        return self._group(r).empty(name, scope) is False

    def _group(self, r: Rule) -> _Group:
        key = tuple(r.tools)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group(self.policy, key, self.limits)
        return group

    # -- witnesses -----------------------------------------------------------------------------

    def _add(self, call: ToolCall, tainted: tuple[str, ...], carries: bool) -> _Witness | None:
        """Decide ``call`` in the engine and keep it as a witness."""
        try:
            decided = str(replay(self.engine, call, tainted, carries).effect)
        except Exception:  # a call the engine cannot take: the solver answers instead
            return None
        w = _Witness(call, tainted, carries, decided)
        self.witnesses.setdefault(call.tool, []).append(w)
        return w

    def _add_model(self, group: _Group, model: Any) -> None:
        """Keep the call a satisfiable answer's ``model`` stands for, when the engine
        decides it as the encoding does (it rests on no over-approximated scope)."""
        sym, effect = group.decision()
        call, tainted, carries = _call(sym, model)
        value = model.eval(effect, model_completion=True)
        if not z3().is_int_value(value) or not _plain(call):
            return
        w = self._add(call, tainted, carries)
        if w is not None and w.effect != EFFECTS[value.as_long()]:
            self.witnesses[call.tool].remove(w)

    def _matches(self, r: Rule, w: _Witness) -> bool:
        found = w.matched.get(r.id)
        if found is None:
            found = w.matched[r.id] = _engine_matches(self.engine, r, w)
        return found


def _engine_matches(policy: Policy, r: Rule, w: _Witness) -> bool:
    """Whether the engine says rule ``r`` matches the witness's call."""
    c = w.call
    if not r.about(c.agent, c.tool):
        return False
    labels = frozenset(w.tainted) | ({LOST} if w.carries else set())
    try:
        res = policy._judge(r, c, labels, None)
    except Exception:
        return False
    return res.outcome is Outcome.MATCH


def _plain(call: ToolCall) -> bool:
    """Whether ``call`` stays inside what the encoding assumes of real calls (``plain``)."""
    return all(plain(v) for v in (call.agent, call.tool, *call.args.values()))


def _accepts(scope: Scope, value: Any) -> bool:
    try:
        scope.check(value)
    except Exception:
        return False
    return True


class _Group:
    """The encoding of the rules about ``tools``, built on first use: one encoder, one
    symbolic call and the decision over those rules."""

    def __init__(self, policy: Policy, tools: tuple[str, ...], limits: Limits) -> None:
        self.tools = tools
        self.limits = limits
        self.enc = Encoder(policy, tools=tools, shadow=True)
        self._decision: tuple[SymCall, Any] | None = None
        self._indexed: tuple[list[tuple[Any, Any]], list[Any]] | None = None

    def decision(self) -> tuple[SymCall, Any]:
        """(call, effect) for calls of these tools."""
        if self._decision is None:
            call = self.enc.new_call("")
            self._decision = (call, self.enc.effect(call, tools=self.tools))
        return self._decision

    def indexed(self) -> tuple[list[tuple[Any, Any]], list[Any]]:
        """``_indexed`` for this group's symbolic call (built once)."""
        if self._indexed is None:
            call, _ = self.decision()
            self._indexed = _indexed(list(call.args.values()))
        return self._indexed

    def holds(self, model: Any, r: Rule, question: str) -> bool:
        """Whether ``model`` (of this group's encoding) meets ``question`` for ``r``."""
        Z = z3()
        call, effect = self.decision()
        parts = _condition(question, self.enc.about(r, call), self.enc.outcome(r, call)[0], effect)
        return bool(Z.is_true(model.eval(Z.And(*parts), model_completion=True)))

    def ask(self, r: Rule, question: str) -> tuple[bool | None, Any]:
        """(whether ``question`` can hold for ``r`` — ``None``: the solver gave up —, the
        model when it can), under each of ``_hints`` first (satisfiable under a hint is
        satisfiable), then as it is."""
        call, effect = self.decision()
        on = self.enc.about(r, call)
        m, _ = self.enc.outcome(r, call)
        subs, links = self.indexed()
        base = [*links, *_put([*call.domain, call.agent != "", call.tool != ""], subs)]
        extra = _put(_condition(question, on, m, effect), subs)
        hints = _put(_hints(r.args.items(), call), subs)
        verdict, model = _check(base, extra, hints, self.limits)
        return verdict, (None if model is None else _Model(model, subs))

    def empty(self, name: str, scope: Scope) -> bool | None:
        """Whether ``scope`` accepts some value of argument ``name`` (``False``: none)."""
        call = self.enc.new_call("")
        arg = call.args[name]
        before = len(call.domain)
        acc, _ = self.enc.scope(scope, arg, call)
        subs, links = _indexed([arg])
        # the domain restricts each argument (and each free boolean) on its own: the
        # argument's part and the scope's free booleans are as satisfiable as the whole
        base = [*links, *_put([*arg.domain, *call.domain[before:]], subs)]
        hints = _put(_hints([(name, scope)], call), subs)
        return _check(base, _put([acc], subs), hints, self.limits)[0]


class _Model:
    """A model of a question with ``subs`` made, read as a model of the question itself."""

    def __init__(self, model: Any, subs: list[tuple[Any, Any]]) -> None:
        self.model = model
        self.subs = subs

    def eval(self, term: Any, model_completion: bool = False) -> Any:
        """The value of ``term`` (z3's ``ModelRef.eval``)."""
        return self.model.eval(_put([term], self.subs)[0], model_completion=model_completion)


HINT_SHARE = 1 / 8
"""The share of the resource limit (and of the wall-clock ceiling) a question gets under
one guess (a guess only ever shows satisfiable)."""


def _check(
    base: list[Any], extra: list[Any], hints: list[Any], limits: Limits
) -> tuple[bool | None, Any]:
    """(whether ``base`` and ``extra`` can hold together — ``None``: the solver gave up —,
    the model when they can), under each of ``hints`` first (a short budget each), then
    as they are. Each check is a fresh solver with everything asserted: z3 preprocesses
    assertions (and not assumptions), which is what makes the indexed views fast."""
    Z = z3()
    steps, timeout = limits
    hinted = max(1, int(steps * HINT_SHARE)) if steps else 0
    brief = None if timeout is None else timeout * HINT_SHARE  # the hints' ceiling
    for hint, budget, ceiling in [*((h, hinted, brief) for h in hints), (None, steps, timeout)]:
        solver = limit(Z.Solver(), budget, ceiling)
        solver.add(*base, *extra, *([] if hint is None else [hint]))
        verdict = solver.check()
        if verdict == Z.sat:
            return True, solver.model()
    return (None if verdict == Z.unknown else False), None


def _put(formulas: list[Any], subs: list[tuple[Any, Any]]) -> list[Any]:
    """``formulas`` with the substitutions ``subs`` made."""
    return [z3().substitute(f, *subs) for f in formulas] if subs else formulas


def _indexed(args: list[Arg]) -> tuple[list[tuple[Any, Any]], list[Any]]:
    """Each string of a view the domain confines to a finite list of names (a path-only
    argument's text, a URL's scheme and host, a recipient's local part and domain; see
    ``new_arg``) as that list indexed by a fresh integer: (substitutions, the bounds of the
    indices; ``_Model`` reads a model of the result as one of the question). The
    question is the same, and z3 answers it by cases instead of by string reasoning (a path
    question that took 4 s takes 0.01 s). Where the domain confines a string only under a
    guard (a path: a string value; a host: a host name), nothing reads the string when the
    guard is false, so confining it always asks the same question."""
    Z = z3()
    subs: list[tuple[Any, Any]] = []
    links: list[Any] = []
    for arg in args:
        views: list[Any] = []
        if arg.mode == "path":
            views.append(arg.s)
        if arg.url is not None:
            views += [arg.url.host, arg.url.scheme]
        if arg.email is not None:
            views += [*arg.email.locals, *arg.email.domains]
        if not views:
            continue
        ids = {v.get_id() for v in views}
        for d in arg.domain:
            body = d.arg(1) if Z.is_implies(d) else d
            names = _listed(body)
            if names is None or names[0].get_id() not in ids or len(names[1]) < 2:
                continue
            var, values = names
            index = Z.Int(f"{var}#")
            chain: Any = values[-1]
            for k in range(len(values) - 2, -1, -1):
                chain = Z.If(index == k, values[k], chain)
            subs.append((var, chain))
            links += [index >= 0, index < len(values)]
            ids.discard(var.get_id())
    return subs, links


def _listed(body: Any) -> tuple[Any, list[Any]] | None:
    """(x, [c1, ...]) when ``body`` is ``Or(x == c1, ...)`` with string constants ``ci``."""
    Z = z3()
    if not Z.is_or(body):
        return None
    var: Any = None
    values: list[Any] = []
    for eq in body.children():
        if not Z.is_eq(eq):
            return None
        lhs, rhs = eq.arg(0), eq.arg(1)
        if Z.is_string_value(lhs):
            lhs, rhs = rhs, lhs
        if not Z.is_string_value(rhs) or (var is not None and not var.eq(lhs)):
            return None
        var = lhs
        values.append(rhs)
    return (var, values) if var is not None else None


def _hints(args: Any, call: Any) -> list[Any]:
    """Guesses that make a satisfiable question easy: a string view fixed to one of the
    names the rule's own scopes (``args``) list (z3 is slow to pick among many names by itself)."""
    Z = z3()
    out: list[Any] = []
    for name, scope in args:
        arg = call.args[name]
        leaf = _leaf(scope)
        if isinstance(leaf, Urls) and arg.url is not None:
            v = arg.url
            spec = leaf.spec()
            plain = [v.parsed, v.kind == 0, v.port == -1, Z.Not(v.userinfo), Z.Not(v.ambiguous)]
            plain += [v.scheme == Z.StringVal(x) for x in sorted(spec["schemes"])[:1]]
            out += [
                Z.And(v.host == Z.StringVal(h), *plain) for h in representatives(set(spec["hosts"]))
            ]
        elif isinstance(leaf, Emails) and arg.email is not None:
            out += [
                arg.email.domains[0] == Z.StringVal(d)
                for d in representatives(set(leaf.spec()["domains"]))
            ]
        elif isinstance(leaf, Paths) and arg.mode == "path":
            out += [arg.s == Z.StringVal(p) for p in path_representatives(set(leaf.roots))]
    return out[:_HINTS]


_HINTS = 4


def _deep_lint_per_rule(
    policy: Policy,
    *,
    rlimit: int = LINT_RLIMIT,
    timeout: float | None = LINT_TIMEOUT,
    only: Collection[str] | None = None,
) -> list[str]:
    """``deep_lint`` as first written: one solver per rule and per scope, no witnesses, no
    hints. Slow (every question rebuilds the rules about its tools); kept as the reference
    the fast path is tested against. ``only``: the ids of the rules to lint (all when
    ``None``; the encoding is always the whole policy's)."""
    Z = z3()
    limits = (rlimit, timeout)
    enc = Encoder(policy, shadow=True)
    out: list[str] = []
    for r in policy.compiled_rules:
        if only is not None and r.id not in only:
            continue
        if r.effect is RuleEffect.DENY or not r.permits:
            if r.effect is RuleEffect.DENY:
                out += _empty_scopes_per_rule(enc, r, limits)
            continue
        call = enc.new_call("")
        effect = enc.effect(call, tools=r.tools)
        on = enc.about(r, call)
        m, _ = enc.outcome(r, call)

        solver = limit(Z.Solver(), *limits)
        solver.add(*call.domain, call.agent != "", call.tool != "")

        def possible(
            question: str, solver: Any = solver, parts: Any = (on, m, effect)
        ) -> bool | None:
            verdict = solver.check(*_condition(question, *parts))
            return None if verdict == Z.unknown else bool(verdict == Z.sat)

        out += _rule_findings(r, possible, _empty_scopes_per_rule(enc, r, limits))
    return out + undelegable(policy, limits, only)


def _empty_scopes_per_rule(enc: Encoder, r: Rule, limits: Limits) -> list[str]:
    Z = z3()
    out: list[str] = []
    for name, scope in r.args.items():
        call = enc.new_call("")
        acc, _ = enc.scope(scope, call.args[name], call)
        solver = limit(Z.Solver(), *limits)
        solver.add(*call.domain, acc)
        if solver.check() == Z.unsat:
            out.append(_empty_message(r, name, scope))
    return out
