"""Policy diffs and deep lint, both as solver questions.

``diff(old, new)``: the regions where the two policies decide differently — for each change
of effect (deny to allow, deny to ask, ask to allow: NEW widens; the reverse: NEW narrows),
one region per tool, each with a concrete example call replayed through both engines.

``deep_lint(policy)``: rules no call can make take effect (a deny always fires where an allow
would, an ask always escalates what an allow permits), ask rules no call reaches, scopes that
accept nothing, and permissions that can never be delegated (a rule with a ``when``
condition).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .._events import ToolCall
from ..policy import Policy, Rule, RuleEffect
from ..scopes import Emails, Paths, Urls
from ._delegation import undelegable
from ._encode import ALLOW, ASK, DENY, EFFECTS, Encoder, _leaf
from ._values import concrete, path_representatives, representatives, text
from ._verifier import minimize, replay
from ._z3 import z3

_RANK = {"deny": 0, "ask": 1, "allow": 2}


@dataclass(frozen=True)
class Region:
    """Calls ``old`` decided ``before`` and ``new`` decides ``after``, for ``tool``; ``example``
    is one of them (the engines' own decisions)."""

    tool: str
    before: str
    after: str
    example: ToolCall
    tainted: tuple[str, ...] = ()

    @property
    def widens(self) -> bool:
        """Whether NEW permits more here (deny to ask or allow, ask to allow)."""
        return _RANK[self.after] > _RANK[self.before]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``--json``)."""
        return {
            "tool": self.tool,
            "before": self.before,
            "after": self.after,
            "widens": self.widens,
            "example": {
                "agent": self.example.agent,
                "tool": self.example.tool,
                "args": dict(self.example.args),
                "tainted": list(self.tainted),
            },
        }

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.example.args.items())
        taint = f" (run tainted by {', '.join(self.tainted)})" if self.tainted else ""
        return (
            f"{'widens' if self.widens else 'narrows'}: {self.tool}: {self.before} -> "
            f"{self.after}, e.g. agent {self.example.agent!r} calls "
            f"{self.example.tool}({args}){taint}"
        )


class Diff(list[Region]):
    """The regions of :func:`diff` (a list of :class:`Region`, widening ones first), and
    what the comparison could not settle.

    ``unsettled`` names each change of effect the search could not finish: the solver gave
    up (a time limit, or a question beyond its string theory), or the calls it found rest
    on scopes the encoding over-approximates and the engines decided them otherwise. Where
    a widening change is unsettled, "``new`` widens nothing" is not proven."""

    def __init__(self, regions: list[Region], unsettled: list[str]) -> None:
        super().__init__(regions)
        self.unsettled: tuple[str, ...] = tuple(unsettled)

    @property
    def widens(self) -> bool:
        """Whether a region where ``new`` permits more was found."""
        return any(r.widens for r in self)

    @property
    def settled_widening(self) -> bool:
        """Whether every widening change (deny to ask or allow, ask to allow) was searched
        to the end: with no widening region, ``new`` then provably widens nothing."""
        return not any(u.startswith(_WIDENING) for u in self.unsettled)

    def __repr__(self) -> str:
        return f"Diff({list(self)!r}, unsettled={list(self.unsettled)!r})"


_WIDENING = ("deny -> ask", "deny -> allow", "ask -> allow")


def diff(old: Policy, new: Policy, *, per_change: int = 20, timeout: float = 30.0) -> Diff:
    """Where ``new`` decides differently from ``old`` (see the module docstring). Every
    example is replayed through both engines; one the engines do not confirm (it rests on
    an over-approximated scope) is not reported, and the change it was found for is then
    listed in ``Diff.unsettled`` unless the search ended with the solver proving no
    other call exists; so is every change the solver gave up on."""
    Z = z3()
    enc_old = Encoder(old, also=new)
    enc_new = Encoder(new, also=old)
    call = enc_new.new_call("")
    e_old = enc_old.effect(call)
    e_new = enc_new.effect(call)
    regions: list[Region] = []
    unsettled: list[str] = []
    for before in (DENY, ASK, ALLOW):
        for after in (DENY, ASK, ALLOW):
            if before == after:
                continue
            change = f"{EFFECTS[before]} -> {EFFECTS[after]}"
            solver = Z.Solver()
            solver.set("timeout", int(timeout * 1000))
            solver.add(*call.domain, call.agent != "", call.tool != "")
            solver.add(e_old == before, e_new == after)
            pair = (EFFECTS[before], EFFECTS[after])
            misses: dict[str, int] = {}
            for _ in range(per_change):
                verdict = solver.check()
                if verdict == Z.unknown:
                    unsettled.append(f"{change}: the solver gave up ({solver.reason_unknown()})")
                    break
                if verdict != Z.sat:
                    found = {r.tool for r in regions if (r.before, r.after) == pair}
                    if open_ := sorted(t for t in misses if t not in found):
                        unsettled.append(
                            f"{change}: {', '.join(open_)}: the calls found rest on "
                            "over-approximated scopes and the engines decided them otherwise"
                        )
                    break
                model = solver.model()
                example, tainted, carries = _call(call, model)
                got_old = str(replay(old, example, tainted, carries).effect)
                got_new = str(replay(new, example, tainted, carries).effect)
                tool = example.tool
                if (got_old, got_new) == pair:
                    example = minimize(new, example, tainted, carries, also=old)
                    regions.append(Region(tool, got_old, got_new, example, tainted))
                    solver.add(call.tool != Z.StringVal(tool))
                else:  # an over-approximated scope: try other atoms, then other tools
                    misses[tool] = misses.get(tool, 0) + 1
                    if misses[tool] >= 3:
                        solver.add(call.tool != Z.StringVal(tool))
                        continue
                    atoms = list(call.atoms.values())
                    if not atoms:
                        raise AssertionError(
                            f"diff example {example!r} is {got_old} -> {got_new} in the engine"
                        )
                    solver.add(Z.Or(*[a != model.eval(a, model_completion=True) for a in atoms]))
            else:
                if not any((r.before, r.after) == pair for r in regions):
                    unsettled.append(
                        f"{change}: {per_change} calls the solver found were not confirmed "
                        "by the engines (over-approximated scopes)"
                    )
    regions.sort(key=lambda r: (not r.widens, r.tool, r.before, r.after))
    return Diff(regions, unsettled)


def _call(c: Any, model: Any) -> tuple[ToolCall, tuple[str, ...], bool]:
    Z = z3()
    args: dict[str, Any] = {}
    for name, arg in c.args.items():
        present, value = concrete(arg, model)
        if present:
            args[name] = value
    for name, acc, example in c.witnesses:
        if name in args and Z.is_true(model.eval(acc, model_completion=True)):
            args[name] = example
    agent = text(model.eval(c.agent, model_completion=True))
    tool = text(model.eval(c.tool, model_completion=True))
    tainted = tuple(
        text(model.eval(label, model_completion=True))
        for on, label in c.taint
        if Z.is_true(model.eval(on, model_completion=True))
    )
    carries = bool(tainted) and Z.is_true(model.eval(c.carries, model_completion=True))
    return ToolCall(tool, args, agent=agent), tainted, carries


def deep_lint(policy: Policy, *, timeout: float = 2.0) -> list[str]:
    """Warnings the solver can prove (see the module docstring), in policy order.

    Rules about the same tools share one encoder, one symbolic call and one encoding of the
    decision (only the rules that can speak about those tools: rules of other tools cannot
    shadow them). The encoder collects the hosts, mail domains and roots its views search
    over from those rules only, which keeps the search exact (the representatives stand
    for every name as far as the encoded scopes can tell) and small: z3 slows down sharply
    with every listed name a string may equal."""
    Z = z3()
    groups: dict[tuple[str, ...], _Group] = {}
    out: list[str] = []
    for r in policy.compiled_rules:
        key = tuple(r.tools)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(policy, key)
        enc = group.enc
        if r.effect is RuleEffect.DENY or not r.permits:
            if r.effect is RuleEffect.DENY:
                out += _empty_scopes(enc, r, timeout)
            continue
        call, effect = group.decision()
        on = enc.about(r, call)
        m, _ = enc.outcome(r, call)

        solver = Z.Solver()
        solver.set("timeout", int(timeout * 1000))
        solver.add(*call.domain, call.agent != "", call.tool != "")
        possible = functools.partial(_possible_hinted, solver, _hints(r.args.items(), call))
        out += _rule_findings(r, possible, on, m, effect, _empty_scopes(enc, r, timeout))
    return out + undelegable(policy, timeout)


def _rule_findings(
    r: Rule, possible: Any, on: Any, m: Any, effect: Any, empty: list[str]
) -> list[str]:
    """What deep lint says of one rule, given ``possible(*conditions)`` (False when no call
    meets them all) over its encoding, and what it found of its scopes (``empty``)."""
    if possible(on, m) is False:
        return [
            f"rule {r.id!r} matches no call (its scopes, tools and agents exclude each other)",
            *empty,
        ]
    out: list[str] = []
    if possible(on, m, effect != DENY) is False:
        out.append(
            f"rule {r.id!r} can never fire: a deny rule (or a failing ask) covers every call it matches"
        )
    elif r.effect is RuleEffect.ASK and possible(on, m, effect == ASK) is False:
        out.append(f"ask rule {r.id!r} is never reached: no call it matches is asked about")
    elif r.effect is RuleEffect.ALLOW and possible(on, m, effect == ALLOW) is False:
        out.append(
            f"rule {r.id!r} never allows anything: every call it matches is denied or "
            "asked about by another rule"
        )
    out += empty
    if r.when is not None:
        out.append(f"rule {r.id!r} can never be delegated: it has a 'when' condition")
    return out


class _Group:
    """The encoder for the rules about ``tools`` and, built on first use, one symbolic call
    with the decision over those rules, shared by every rule about exactly those tools."""

    def __init__(self, policy: Policy, tools: tuple[str, ...]) -> None:
        self.tools = tools
        self.enc = Encoder(policy, tools=tools)
        self._decision: tuple[Any, Any] | None = None

    def decision(self) -> tuple[Any, Any]:
        """(call, effect) for calls of these tools."""
        if self._decision is None:
            call = self.enc.new_call("")
            self._decision = (call, self.enc.effect(call, tools=self.tools))
        return self._decision


def _deep_lint_per_rule(policy: Policy, *, timeout: float = 2.0) -> list[str]:
    """``deep_lint`` as first written: one solver per rule and per scope. Slow (every
    question rebuilds the rules about its tools); kept as the reference the fast path is
    tested against."""
    Z = z3()
    enc = Encoder(policy)
    out: list[str] = []
    for r in policy.compiled_rules:
        if r.effect is RuleEffect.DENY or not r.permits:
            if r.effect is RuleEffect.DENY:
                out += _empty_scopes_per_rule(enc, r, timeout)
            continue
        call = enc.new_call("")
        effect = enc.effect(call, tools=r.tools)
        on = enc.about(r, call)
        m, _ = enc.outcome(r, call)

        solver = Z.Solver()
        solver.set("timeout", int(timeout * 1000))
        solver.add(*call.domain, call.agent != "", call.tool != "")
        possible = functools.partial(_possible, solver)
        out += _rule_findings(r, possible, on, m, effect, _empty_scopes_per_rule(enc, r, timeout))
    return out + undelegable(policy, timeout)


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


def _possible_hinted(solver: Any, hints: list[Any], *extra: Any) -> bool | None:
    """``_possible``, trying each hint first: satisfiable under a hint is satisfiable; the
    question itself is asked only when no hint makes it so."""
    Z = z3()
    for hint in hints:
        if solver.check(*extra, hint) == Z.sat:
            return True
    return _possible(solver, *extra)


def _possible(solver: Any, *extra: Any) -> bool | None:
    """Whether ``extra`` can hold (``None``: the solver gave up)."""
    Z = z3()
    verdict = solver.check(*extra)
    return None if verdict == Z.unknown else bool(verdict == Z.sat)


def _empty_scopes(enc: Encoder, r: Rule, timeout: float) -> list[str]:
    Z = z3()
    out: list[str] = []
    for name, scope in r.args.items():
        call = enc.new_call("")
        acc, _ = enc.scope(scope, call.args[name], call)
        solver = Z.Solver()
        solver.set("timeout", int(timeout * 1000))
        solver.add(*call.domain)
        if _possible_hinted(solver, _hints([(name, scope)], call), acc) is False:
            out.append(f"rule {r.id!r}: the scope of {name!r} ({scope!r}) accepts nothing")
    return out


def _empty_scopes_per_rule(enc: Encoder, r: Rule, timeout: float) -> list[str]:
    Z = z3()
    out: list[str] = []
    for name, scope in r.args.items():
        call = enc.new_call("")
        acc, _ = enc.scope(scope, call.args[name], call)
        solver = Z.Solver()
        solver.set("timeout", int(timeout * 1000))
        solver.add(*call.domain, acc)
        if solver.check() == Z.unsat:
            out.append(f"rule {r.id!r}: the scope of {name!r} ({scope!r}) accepts nothing")
    return out
