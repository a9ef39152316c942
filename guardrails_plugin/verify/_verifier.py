"""``Verifier``: prove a property of a policy, or find a call that breaks it.

Every "no" is a concrete call (agent, tool, arguments, the run's untrusted sources, the
hand-offs that led there) replayed through the engine before it is reported: a
counterexample the engine decides otherwise (it rests on an over-approximated scope) is
blocked and the solver asked again; if none survives the answer is ``unknown``, never a
false "proven" nor a false "refuted".

Why this file is long: it holds the answer types (``Result``, ``Counterexample``, ``Step``),
the translation of every property form into constraints (hand-off chains included), the
replay of counterexamples and the concrete evaluation the differential test uses; they share
the symbolic calls, and splitting them would pass those back and forth.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._decision import Decision
from .._events import ToolCall
from ..guard import Guard
from ..policy import Policy
from ..policy._rules import LOST
from ._answers import (
    EFFECT_CODE,
    Counterexample,
    Result,
    Step,
    gave_up_result,
)
from ._encode import ALLOW, ASK, DENY, EFFECTS, Encoder, SymCall, _names, pinned
from ._props import Cond, Property, PropertyError, parse
from ._regex import glob_witness as _glob_witness
from ._regex import python_regex
from ._values import FLOAT, HOST_NAME, INT, STR, Arg, canonical_path, concrete, text
from ._z3 import QUICK, RLIMIT, TIMEOUT, check, limit, z3

HANDOFF_TOOL = "handoff"
TRANSFER_PREFIX = "transfer_to_"
_EFFECT_CODE = EFFECT_CODE


def minimize(
    policy: Policy,
    call: ToolCall,
    tainted: Iterable[str] = (),
    carries: bool = False,
    keep: Iterable[str] = (),
    also: Policy | None = None,
) -> ToolCall:
    """``call`` without the arguments the engine's decision does not need (those in ``keep``
    stay): each is dropped when the decision (of ``policy``, and of ``also``) stays the same."""
    labels = tuple(tainted)

    def decided(c: ToolCall) -> tuple[str, ...]:
        out: tuple[str, ...] = (str(replay(policy, c, labels, carries).effect),)
        if also is not None:
            out += (str(replay(also, c, labels, carries).effect),)
        return out

    want = decided(call)
    args = dict(call.args)
    for name in list(args):
        if name in keep:
            continue
        trial = {k: v for k, v in args.items() if k != name}
        if decided(ToolCall(call.tool, trial, agent=call.agent)) == want:
            args = trial
    return ToolCall(call.tool, args, agent=call.agent)


def replay(
    policy: Policy, call: ToolCall, tainted: Iterable[str] = (), carries: bool = False
) -> Decision:
    """The engine's decision on ``call``: ``Guard(policy).check`` on a fresh guard, or, in a
    run some untrusted sources entered, ``Policy.evaluate`` with those labels (``carries``:
    every argument counts as carrying their content)."""
    labels = frozenset(tainted)
    if not labels:
        return Guard(policy).check(call)
    return policy.evaluate(call, labels | ({LOST} if carries else set()))


class Verifier:
    """Proves properties of ``policy`` with z3 (``check``), or returns a counterexample.

        >>> from guardrails_plugin import Policy, allow
        >>> from guardrails_plugin.scopes import Number
        >>> v = Verifier(Policy([allow("refund", args={"amount": Number(le=100)})]))
        >>> v.check("no agent calls refund with amount > 100").status
        'proven'

    ``depth`` bounds the hand-offs followed (default: the agents the policy names, plus one,
    at most 4). ``rlimit`` bounds each solver call by z3's resource count (its elementary
    steps: the same answer on any machine and under any load; ``0``: no limit), and
    ``timeout`` (seconds, ``None``: none) is a last-resort wall-clock ceiling. An answer
    the solver did not settle is ``unknown`` and says which limit it met
    (``Result.limit``)."""

    def __init__(
        self,
        policy: Policy,
        *,
        depth: int | None = None,
        rlimit: int = RLIMIT,
        timeout: float | None = TIMEOUT,
    ) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"Verifier needs a Policy, found {type(policy).__name__}")
        if rlimit < 0:
            raise ValueError(f"rlimit must be 0 (no limit) or more, found {rlimit}")
        self.policy = policy
        self.rlimit = rlimit
        self.timeout = timeout
        self._depth = depth
        self._encoders: dict[tuple[str, ...], Encoder] = {}
        self._concrete: tuple[Any, Any, Encoder] | None = None

    def __repr__(self) -> str:
        return f"Verifier({self.policy!r}, rlimit={self.rlimit})"

    def limited(self, solver: Any, share: float = 1.0) -> Any:
        """``solver`` with each check limited to ``share`` of the verifier's resource limit
        (at least one step) and its wall-clock ceiling."""
        steps = 0 if not self.rlimit else max(1, int(self.rlimit * share))
        return limit(solver, steps, self.timeout)

    # -- encoders ----------------------------------------------------------------------------

    def encoder(
        self,
        extra_args: Iterable[str] = (),
        *,
        taint: bool = False,
        names: Mapping[str, Iterable[str]] | None = None,
    ) -> Encoder:
        """The encoder of the policy, with ``extra_args`` in its argument universe and
        ``names`` (hosts, mail domains) among the values it considers for an argument."""
        named = {k: tuple(sorted(v)) for k, v in (names or {}).items()}
        key = (*sorted(set(extra_args)), "\0taint" if taint else "", repr(sorted(named.items())))
        found = self._encoders.get(key)
        if found is None:
            found = self._encoders[key] = Encoder(
                self.policy, extra_args=extra_args, taint_slots=1 if taint else 0, names=named
            )
        return found

    @property
    def depth(self) -> int:
        """How many hand-offs ``never reaches`` follows."""
        if self._depth is not None:
            return self._depth
        return min(4, len(self.agents()) + 1)

    def agents(self) -> set[str]:
        """Agent names the policy mentions (rules, roles, hand-off targets)."""
        from ..policy._patterns import is_glob

        names: set[str] = set()
        for r in self.policy.compiled_rules:
            names.update(a for a in r.agents if not is_glob(a))
            members = getattr(r, "_members", None)
            if members is not None:
                names.update(a for a in members.patterns if not is_glob(a))
            names.update(
                t[len(TRANSFER_PREFIX) :]
                for t in r.tools
                if t.startswith(TRANSFER_PREFIX) and not is_glob(t)
            )
        return names

    # -- checking ----------------------------------------------------------------------------

    def check(self, prop: str | Property) -> Result:
        """Prove ``prop`` (a sentence of the property language, see ``_props.py``) or refute
        it with a counterexample the engine confirms."""
        started = time.perf_counter()
        p = parse(prop) if isinstance(prop, str) else prop
        if p.bounded:
            from ._sequences import check_bounded

            result = check_bounded(self, p)
        elif p.kind == "delegation":
            from ._delegation import check_delegable

            result = check_delegable(self, p)
        else:
            result = self._check(p)
        return Result(
            result.property,
            result.status,
            result.counterexample,
            result.assumptions,
            result.approximated,
            result.detail,
            time.perf_counter() - started,
            result.limit,
        )

    def _check(self, p: Property) -> Result:
        Z = z3()
        extra = {c.arg for c in p.conds}
        reach = p.kind in ("reach_agent", "reach_tool")
        if reach:
            extra.add("to")
        named: dict[str, set[str]] = {}
        for c in p.conds:
            if c.op in ("outside", "inside"):
                named.setdefault(c.arg, set()).update(str(v) for v in c.values)
        enc = self.encoder(extra, taint=p.kind == "untrusted", names=named)
        enc.assumptions, enc.approximated = {}, {}
        effects: dict[str, Any] = {}
        solver = self.limited(Z.Solver())
        final = enc.new_call("")
        solver.add(*final.domain)
        solver.add(final.agent != "", final.tool != "")
        notes: list[str] = []
        steps: list[tuple[SymCall, Any, Any, Any]] = []
        if p.kind == "untrusted":
            sinks = tuple(
                s for r in self.policy.compiled_rules for s in (r.tools if r.tainted_by else ())
            )
            if not sinks:
                return Result(p.text, "proven", assumptions=("the policy names no data-flow sink",))
            on, label = final.taint[0]
            solver.add(on, final.carries)
            if p.sources is not None:
                solver.add(_names(label, (p.sources,)))
            if p.tool == "*":
                solver.add(_names(final.tool, sinks))
        if p.kind in ("never", "untrusted", "reach_tool"):
            solver.add(_names(final.tool, (p.tool,)))
            for c in p.conds:
                solver.add(self._cond(c, final.args[c.arg]))
            only = (p.tool,) if p.kind != "untrusted" or p.tool != "*" else None
            eff = effects[""] = enc.effect(final, tools=only)
            solver.add(Z.Or(*[eff == _EFFECT_CODE[e] for e in sorted(p.effects)]))
        if p.kind == "never" and p.agent is not None:
            solver.add(_names(final.agent, (p.agent,)))
        if reach:
            assert p.agent is not None
            here: Any = Z.StringVal(p.agent)
            moved: list[Any] = []
            for i in range(self.depth):
                h = enc.new_call(f"h{i}.")
                solver.add(*h.domain)
                skip = Z.Bool(f"h{i}.skip")
                nxt = Z.String(f"h{i}.next")
                to = h.args["to"]
                effects[h.prefix] = enc.effect(h, tools=(HANDOFF_TOOL, TRANSFER_PREFIX + "*"))
                edge = Z.And(
                    h.agent == here,
                    nxt != "",
                    effects[h.prefix] != DENY,
                    Z.Or(
                        Z.And(h.tool == HANDOFF_TOOL, to.tag == STR, to.s == nxt),
                        h.tool == Z.Concat(Z.StringVal(TRANSFER_PREFIX), nxt),
                    ),
                )
                solver.add(Z.If(skip, nxt == here, edge))
                steps.append((h, skip, nxt, here))
                moved.append(Z.Not(skip))
                here = nxt
            if p.kind == "reach_agent":
                assert p.target is not None
                solver.add(_names(here, (p.target,)), Z.Or(*moved))
            else:
                solver.add(final.agent == here)
            notes.append(f"hand-off chains of at most {self.depth} steps")
            if any(
                r.tools and any(t.startswith(TRANSFER_PREFIX) for t in r.tools)
                for r in self.policy.compiled_rules
            ):
                notes.append(f"a tool named {TRANSFER_PREFIX}X hands the work to agent X")
        assumptions = (*enc.assumptions, *notes)
        approximated = tuple(enc.approximated)
        calls = [final, *(s[0] for s in steps)]
        atoms = [a for c in calls for a in c.atoms.values()]
        blocked = False
        for _attempt in range(8):
            verdict = check(solver)
            if verdict == Z.unsat and not blocked:
                return Result(p.text, "proven", assumptions=assumptions, approximated=approximated)
            if verdict == Z.unsat:
                # Only counterexamples the engine decided otherwise were left out: what the
                # over-approximated scopes really accept may still break the property (a
                # `Returned` value needs a run in which a tool returned it).
                break
            if verdict != Z.sat:
                return gave_up_result(p.text, solver, assumptions, approximated)
            model = self._readable(
                solver,
                [final.agent, *(s[0].agent for s in steps), *(s[2] for s in steps)],
                [final.tool, *(s[0].tool for s in steps)],
            )
            cex, agrees = self._counterexample(p, effects, model, final, steps)
            if agrees:
                return Result(p.text, "refuted", cex, assumptions, approximated)
            if not atoms:
                return Result(
                    p.text,
                    "unknown",
                    cex,
                    assumptions,
                    approximated,
                    detail="the engine decides the solver's counterexample otherwise "
                    f"(an encoding gap: {cex.effect} by {cex.rule!r})",
                )
            solver.add(Z.Or(*[a != model.eval(a, model_completion=True) for a in atoms]))
            blocked = True
        return Result(
            p.text,
            "unknown",
            assumptions=assumptions,
            approximated=approximated,
            detail="counterexamples rest on over-approximated scopes: " + "; ".join(approximated),
        )

    def names(self) -> tuple[list[str], list[str]]:
        """Readable agent and tool names for counterexamples: those the policy lists, a name
        each of its globs matches, and ``agent`` / ``tool``."""
        from ..policy._patterns import is_glob

        agents: dict[str, None] = dict.fromkeys(sorted(self.agents()))
        tools: dict[str, None] = {}
        for r in self.policy.compiled_rules:
            for t in r.tools:
                tools[t if not is_glob(t) else _glob_witness(t)] = None
            for a in r.agents:
                if is_glob(a) and a != "*":
                    agents[_glob_witness(a)] = None
        for b in getattr(self.policy, "_all_budgets", ()):
            for t in b.tools:
                tools[t if not is_glob(t) else _glob_witness(t)] = None
        agents.update({"agent": None, "agent2": None})
        tools["tool"] = None
        agents.pop("", None)
        tools.pop("", None)
        return list(agents), list(tools)

    def _readable(self, solver: Any, agents: Sequence[Any], tools: Sequence[Any]) -> Any:
        """The solver's model, with agent (and tool) names taken from ``names()`` when some
        model allows it (z3 otherwise invents strings such as ``'\\x96'``)."""
        Z = z3()
        model = solver.model()
        agent_names, tool_names = self.names()
        hints = [
            [Z.Or(*[a == Z.StringVal(n) for n in agent_names]) for a in agents]
            + [Z.Or(*[t == Z.StringVal(n) for n in tool_names]) for t in tools],
            [Z.Or(*[a == Z.StringVal(n) for n in agent_names]) for a in agents],
        ]
        self.limited(solver, QUICK)
        try:
            for hint in hints:
                solver.push()
                solver.add(*hint)
                try:
                    if solver.check() == Z.sat:
                        return solver.model()
                finally:
                    solver.pop()
        finally:
            self.limited(solver)
        return model

    def _cond(self, c: Cond, arg: Arg) -> Any:
        Z = z3()
        if c.op == "absent":
            return Z.Not(arg.present)
        if c.op == "present":
            return arg.present
        if c.op in ("<", "<=", ">", ">="):
            (v,) = c.values
            num = Z.RealVal(v) if isinstance(v, int) else Z.RealVal(str(v))
            cmp = {
                "<": arg.num < num,
                "<=": arg.num <= num,
                ">": arg.num > num,
                ">=": arg.num >= num,
            }
            return Z.And(Z.Or(arg.tag == INT, arg.tag == FLOAT), cmp[c.op])
        if c.op in ("==", "!="):
            (v,) = c.values
            from ..scopes import OneOf

            same = self.encoder()._one_of(OneOf([v]), arg)[0]  # type: ignore[list-item]
            return same if c.op == "==" else Z.And(arg.present, Z.Not(same))
        if c.op == "matches":
            regex = python_regex(str(c.values[0]))
            if regex is None or arg.mode in ("url", "email"):
                raise PropertyError(
                    f"cannot decide {c}: use a plain regular expression on a plain argument"
                )
            return Z.And(arg.tag == STR, Z.InRe(arg.s, regex))
        outside = self._outside(arg, [str(v) for v in c.values])
        if c.op == "outside":
            return outside
        return Z.And(arg.present, Z.Not(arg.empty), Z.Not(outside), arg.tag == STR)

    def _outside(self, arg: Arg, values: Sequence[str]) -> Any:
        Z = z3()

        def under(term: Any, v: str) -> Any:
            v = v[2:] if v.startswith("*.") else v
            return Z.Or(term == Z.StringVal(v), Z.SuffixOf(Z.StringVal("." + v), term))

        if arg.mode == "email" and arg.email is not None:
            e = arg.email
            some = [
                Z.And(e.count > i, Z.Not(Z.Or(*[under(d, v) for v in values])))
                for i, d in enumerate(e.domains)
            ]
            return Z.And(arg.tag == STR, e.ok, Z.Or(*some))
        if arg.mode == "url" and arg.url is not None:
            u = arg.url
            named = Z.And(u.kind == HOST_NAME, Z.Not(Z.Or(*[under(u.host, v) for v in values])))
            return Z.And(arg.tag == STR, u.parsed, u.has_host, Z.Or(named, u.kind != HOST_NAME))
        s = arg.s
        if values and all(v.startswith("/") for v in values):
            inside = [
                Z.Or(
                    s == Z.StringVal(v.rstrip("/") or "/"),
                    Z.PrefixOf(Z.StringVal(v.rstrip("/") + "/"), s),
                )
                for v in values
            ]
            canonical = Z.BoolVal(True) if arg.mode == "path" else canonical_path(s)
            return Z.And(
                arg.tag == STR, Z.PrefixOf(Z.StringVal("/"), s), canonical, Z.Not(Z.Or(*inside))
            )
        inside = [
            Z.Or(
                s == Z.StringVal(v),
                Z.SuffixOf(Z.StringVal("@" + v), s),
                Z.SuffixOf(Z.StringVal("." + v), s),
            )
            for v in values
        ]
        return Z.And(arg.tag == STR, s != "", Z.Not(Z.Or(*inside)))

    def _counterexample(
        self,
        p: Property,
        effects: Mapping[str, Any],
        model: Any,
        final: SymCall,
        steps: Sequence[tuple[SymCall, Any, Any, Any]],
    ) -> tuple[Counterexample, bool]:
        Z = z3()
        agrees = True
        chain: list[Step] = []
        for h, skip, nxt, _ in steps:
            if Z.is_true(model.eval(skip, model_completion=True)):
                continue
            call, tainted, carries = self._call(h, model)
            want = EFFECTS[model.eval(effects[h.prefix], model_completion=True).as_long()]
            got = replay(self.policy, call, tainted, carries)
            agrees = agrees and str(got.effect) == want
            chain.append(
                Step(
                    call.agent,
                    call.tool,
                    dict(call.args),
                    text(model.eval(nxt)),
                    str(got.effect),
                )
            )
        call, tainted, carries = self._call(final, model)
        got = replay(self.policy, call, tainted, carries)
        if "" in effects:
            want = EFFECTS[model.eval(effects[""], model_completion=True).as_long()]
            agrees = agrees and str(got.effect) == want
        if p.kind == "reach_agent":
            call = ToolCall("(any)", {}, agent=chain[-1].to if chain else call.agent)
        elif agrees:
            keep = {c.arg for c in p.conds}
            call = minimize(self.policy, call, tainted, carries, keep)
            got = replay(self.policy, call, tainted, carries)
        cex = Counterexample(
            call.agent,
            call.tool,
            dict(call.args),
            str(got.effect),
            got.rule,
            tainted,
            carries,
            tuple(chain),
        )
        return cex, agrees

    def _call(self, c: SymCall, model: Any) -> tuple[ToolCall, tuple[str, ...], bool]:
        Z = z3()
        args: dict[str, Any] = {}
        for name, arg in c.args.items():
            present, value = concrete(arg, model)
            if present:
                args[name] = value
        agent = text(model.eval(c.agent, model_completion=True))
        tool = text(model.eval(c.tool, model_completion=True))
        tainted = tuple(
            text(model.eval(label, model_completion=True))
            for on, label in c.taint
            if Z.is_true(model.eval(on, model_completion=True))
        )
        carries = Z.is_true(model.eval(c.carries, model_completion=True))
        return ToolCall(tool, args, agent=agent), tainted, carries

    # -- concrete evaluation (the differential test's side) -------------------------------------

    def effect_of(self, call: ToolCall, tainted: Iterable[str] = (), carries: bool = False) -> str:
        """The effect the *encoding* gives a concrete call (z3 evaluates the formula with
        the call's values substituted): what the differential test compares with the
        engine's. Raises ``ValueError`` for a call the encoding cannot write down (more
        taint labels than it keeps, more distinct recipients than an email view holds)."""
        Z = z3()
        if self._concrete is None:
            enc = Encoder(self.policy, taint_slots=3)
            sym = enc.new_call("")
            self._concrete = (enc.effect(sym), sym, enc)
        formula, sym, enc = self._concrete
        labels = list(dict.fromkeys(tainted))
        if len(labels) > len(sym.taint):
            raise ValueError(f"{len(labels)} taint labels, the encoding keeps {len(sym.taint)}")
        eqs: list[Any] = [sym.agent == Z.StringVal(call.agent), sym.tool == Z.StringVal(call.tool)]
        for i, (on, label) in enumerate(sym.taint):
            if i < len(labels):
                eqs += [on, label == Z.StringVal(labels[i])]
            else:
                eqs.append(Z.Not(on))
        eqs.append(sym.carries == bool(carries))
        eqs += pinned(sym, call.args)
        value = Z.simplify(Z.substitute(formula, *_assignment(eqs, formula)))
        if not Z.is_int_value(value):  # memberships the simplifier left: ask the solver
            for code in (DENY, ASK, ALLOW):
                solver = Z.Solver()
                solver.add(value == code)
                if solver.check() == Z.sat:  # a closed formula: sat means true
                    value = Z.IntVal(code)
                    break
        if not Z.is_int_value(value):
            raise AssertionError(f"the encoding has no decision for {call!r}: {value}")
        return EFFECTS[value.as_long()]


def _assignment(eqs: Sequence[Any], formula: Any) -> list[tuple[Any, Any]]:
    """Every free constant of ``formula``: the value ``eqs`` fix, else a default (the
    formula does not depend on it then)."""
    Z = z3()
    fixed: dict[Any, Any] = {}
    for eq in eqs:
        if Z.is_eq(eq):
            lhs, rhs = eq.arg(0), eq.arg(1)
            if not _is_variable(lhs):  # z3 writes a constant first sometimes (100 == n.num)
                lhs, rhs = rhs, lhs
            fixed[lhs] = rhs
        elif Z.is_not(eq):
            fixed[eq.arg(0)] = Z.BoolVal(False)
        else:
            fixed[eq] = Z.BoolVal(True)
    out: list[tuple[Any, Any]] = []
    for var in _constants(formula):
        value = fixed.get(var)
        if value is None:
            sort = var.sort()
            if sort == Z.StringSort():
                value = Z.StringVal("")
            elif sort == Z.BoolSort():
                value = Z.BoolVal(False)
            elif sort == Z.RealSort():
                value = Z.RealVal(0)
            else:
                value = Z.IntVal(0)
        out.append((var, value))
    return out


def _is_variable(e: Any) -> bool:
    Z = z3()
    return bool(Z.is_const(e) and e.decl().kind() == Z.Z3_OP_UNINTERPRETED)


def _constants(formula: Any) -> list[Any]:
    Z = z3()
    seen: set[int] = set()
    found: dict[int, Any] = {}
    todo = [formula]
    while todo:
        e = todo.pop()
        key = e.get_id()
        if key in seen:
            continue
        seen.add(key)
        if Z.is_const(e) and e.decl().kind() == Z.Z3_OP_UNINTERPRETED:
            found[key] = e
        else:
            todo.extend(e.children())
    return list(found.values())
