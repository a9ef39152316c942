"""A policy as a z3 formula: the effect ``Policy.evaluate`` gives a symbolic call.

Why this file is long: every scope kind's encoding, a rule's outcome and both precedences
(flat and layered) sit together so that they can be read against ``_rules.py`` and
``_policy.py`` side by side.

The encoding follows the engine step by step (``policy/_policy.py``, ``policy/_rules.py``):

- a rule is *about* a call when the tool matches its tool globs and the agent its agent globs
  (and, for a rule given to roles, the roles' members);
- a rule's outcome is MATCH, MISS or ERROR, decided in the engine's order: the data-flow
  condition (some tainted label matches a source; with ``carries``, an argument carries
  untrusted content), then each scoped argument in order (a missing required argument is a
  miss; a value the scope reads and refuses is a miss; a value it cannot read is an error
  for ask and deny rules, a miss for allow rules), then ``Returned`` scopes, then ``when``;
- ``unscoped_args: empty``: a permitting rule with scopes misses when the call gives an
  argument it does not scope;
- precedence: a matching or failing deny denies; a failing ask denies; then a permitting
  ask or allow must match (for a layered policy, every layer that speaks, unless a
  ``widen`` rule below stands in); an ask that matches makes it ask; else deny.

Scopes are encoded exactly where their semantics allow (see ``docs/verification.md``). The
rest — predicates, custom kinds, ``when`` conditions, shell and SQL scopes, text, returned
values, a URL or email scope on an argument other kinds of scope also read, a path scope
with a ``base`` — become free booleans (*atoms*): the encoding then allows more behaviours
than the engine, never fewer, so a proof still holds and a counterexample is replayed
through the engine before it is believed.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..policy import Policy, Rule, RuleEffect
from ..scopes import (
    Emails,
    Not,
    Number,
    OneOf,
    OptionalScope,
    Paths,
    Pattern,
    Scope,
    Urls,
    is_empty,
)
from ._regex import glob_regex, names_regex, python_regex
from ._values import (
    BOOL,
    FLOAT,
    HOST_NAME,
    HOST_V4,
    HOST_V6,
    INT,
    NONE,
    NONFINITE,
    STR,
    Arg,
    abstract,
    canonical_path,
    default_port,
    new_arg,
)
from ._z3 import z3

DENY, ASK, ALLOW = 0, 1, 2
EFFECTS = ("deny", "ask", "allow")
OTHER_ARG = "_other_argument"
"""Stands for every argument no rule names (they matter under ``unscoped_args: empty``)."""


def _kind(scope: Scope) -> str:
    """The family of a scope for choosing an argument's view."""
    if isinstance(scope, OptionalScope):
        return _kind(scope.scope)
    if isinstance(scope, Not):
        return _kind(scope.inner)
    if isinstance(scope, Paths):
        return "path"
    if isinstance(scope, Urls):
        return "url" if scope.spec().get("default_scheme") is None else "opaque"
    if isinstance(scope, Emails):
        return "email"
    if isinstance(scope, OneOf | Number | Pattern):
        return "plain"
    return "opaque"


def _leaf(scope: Scope) -> Scope:
    while True:
        if isinstance(scope, OptionalScope):
            scope = scope.scope
        elif isinstance(scope, Not):
            scope = scope.inner
        else:
            return scope


@dataclass
class SymCall:
    """A symbolic tool call: agent, tool, arguments, the run's taint and provenance."""

    prefix: str
    agent: Any
    tool: Any
    args: dict[str, Arg]
    taint: list[tuple[Any, Any]]
    """(active, label): tool names whose untrusted results entered the run."""
    carries: Any
    """Whether some argument carries untrusted content (provenance), or it was lost."""
    domain: list[Any] = field(default_factory=list)
    atoms: dict[str, Any] = field(default_factory=dict)
    witnesses: list[tuple[str, Any, Any]] = field(default_factory=list)
    """(argument, accepts atom, a value the scope accepts) for over-approximated scopes."""
    choices: tuple[str, ...] = ()
    """The tool names the call's tool is one of (``tool`` is then the ``index``-th), or
    ``()``: any string."""
    index: Any = None


def pinned(sym: SymCall, args: Mapping[str, Any]) -> list[Any]:
    """Formulas fixing ``sym``'s arguments to the concrete ``args`` (a call's arguments):
    each named argument to its value or its absence, and the one standing for every other
    argument to the first non-empty one of the rest (or any of them, or none)."""
    out: list[Any] = []
    others = [(n, v) for n, v in args.items() if n not in sym.args or n == OTHER_ARG]
    for name, arg in sym.args.items():
        if name == OTHER_ARG:
            given = [v for _, v in others if not is_empty(v)]
            if given:
                out += abstract(arg, True, given[0])
            else:
                out += abstract(arg, bool(others), others[0][1] if others else None)
        else:
            out += abstract(arg, name in args, args.get(name))
    return out


class Encoder:
    """Builds z3 formulas for a policy's decisions (see the module docstring)."""

    def __init__(
        self,
        policy: Policy,
        *,
        extra_args: Iterable[str] = (),
        taint_slots: int = 0,
        names: Mapping[str, Iterable[str]] | None = None,
        also: Policy | None = None,
        tools: Sequence[str] | None = None,
        shadow: bool = False,
    ) -> None:
        self.policy = policy
        self.shadow = shadow
        """Decide as if shadow rules were enforced (deep lint judges a shadow rule as the
        rule it would become); by default they are left out, as the engine enforces none."""
        self.layers: tuple[Policy, ...] = policy.layers
        self.layered = len(self.layers) > 1
        self.rules: tuple[Rule, ...] = policy.compiled_rules
        self.closed = policy.unscoped_args == "empty"
        self.assumptions: dict[str, None] = {}
        """Conditions a proof rests on (not over-approximations: those are sound)."""
        self.approximated: dict[str, None] = {}
        """What is over-approximated (a proof still holds; a counterexample is replayed)."""
        kinds: dict[str, set[str]] = {}
        emails: dict[str, set[str]] = {}
        self.locals: dict[str, set[str]] = {}
        self.names: dict[str, set[str]] = {k: set(v) for k, v in (names or {}).items()}
        """Per argument: the hosts, mail domains and schemes scopes (and properties) name."""
        seen = self.rules if also is None else (*self.rules, *also.compiled_rules)
        self._only = tools
        for r in seen:
            for name, scope in r.args.items():
                kinds.setdefault(name, set()).add(_kind(scope))
                if not self._relevant(r):
                    continue
                leaf = _leaf(scope)
                if isinstance(leaf, Paths):
                    self.names.setdefault(name, set()).update(leaf.roots)
                if isinstance(leaf, Urls):
                    spec = leaf.spec()
                    self.names.setdefault(name, set()).update(spec["hosts"])
                    self.names[name].update("scheme:" + s for s in spec["schemes"])
                if isinstance(leaf, Emails):
                    spec = leaf.spec()
                    self.names.setdefault(name, set()).update(spec["domains"])
                    self.names[name].update(a.rpartition("@")[2] for a in spec["addresses"])
                    emails.setdefault(name, set()).add(repr(leaf))
                    self.locals.setdefault(name, set()).update(
                        a.rpartition("@")[0] for a in leaf.spec()["addresses"]
                    )
        self.modes: dict[str, str] = {}
        for name, found in kinds.items():
            structured = found & {"path", "url", "email"}
            if len(structured) == 1 and not (found & {"plain"}):
                self.modes[name] = structured.pop()
            else:
                self.modes[name] = "raw"
        self.recipients: dict[str, int] = {}
        for name, scopes in emails.items():
            k = len(scopes)
            if k > 3:
                self.assumptions[
                    f"recipient lists of {name!r} hold at most 3 distinct addresses"
                ] = None
            self.recipients[name] = min(max(k, 1), 3)
        named = set(kinds) | set(extra_args)
        named.discard(OTHER_ARG)
        self.arg_names: tuple[str, ...] = (*sorted(named), OTHER_ARG)
        sources = [s for r in seen for s in r.tainted_by]
        self.sources: tuple[str, ...] = tuple(dict.fromkeys(sources))
        flows = {r.tainted_by for r in seen if r.tainted_by}
        self.taint_slots = max(min(len(flows), 3), taint_slots)

    # -- calls -------------------------------------------------------------------------------

    def new_call(self, prefix: str = "", tools: Sequence[str] = ()) -> SymCall:
        """Fresh symbolic variables for one call (``prefix`` keeps several calls apart);
        ``tools``: the tool is one of these names (a tool name test is then a test of its
        index, no string reasoning), else any string."""
        Z = z3()
        args = {
            name: new_arg(
                name,
                prefix,
                self.modes.get(name, "raw"),
                self.recipients.get(name, 1),
                self.locals.get(name, set()),
                self.names.get(name, set()),
            )
            for name in self.arg_names
        }
        taint = [
            (Z.Bool(f"{prefix}taint{i}"), Z.String(f"{prefix}taint{i}.label"))
            for i in range(self.taint_slots)
        ]
        tool: Any = Z.String(f"{prefix}tool")
        index: Any = None
        if tools:
            index = Z.Int(f"{prefix}tool#")
            tool = Z.StringVal(tools[-1])
            for i in reversed(range(len(tools) - 1)):
                tool = Z.If(index == i, Z.StringVal(tools[i]), tool)
        call = SymCall(
            prefix,
            Z.String(f"{prefix}agent"),
            tool,
            args,
            taint,
            Z.Bool(f"{prefix}carries"),
            choices=tuple(tools),
            index=index,
        )
        if tools:
            call.domain += [index >= 0, index < len(tools)]
        for a in args.values():
            call.domain += a.domain
        if self.sources:
            src = names_regex(self.sources)
            call.domain += [Z.Implies(on, Z.InRe(label, src)) for on, label in taint]
        return call

    def _atom(self, call: SymCall, key: str) -> Any:
        found = call.atoms.get(key)
        if found is None:
            found = call.atoms[key] = z3().Bool(f"{call.prefix}?{key}")
        return found

    def _opaque(self, call: SymCall, arg: Arg, scope: Scope, why: str) -> tuple[Any, Any]:
        Z = z3()
        self.approximated[why] = None
        key = f"{arg.name}|{type(scope).__name__}|{scope!r}"
        acc = self._atom(call, key + "|accepts")
        rd = self._atom(call, key + "|reads")
        call.domain.append(Z.Implies(acc, rd))
        example = _witness(scope)
        if example is not None:
            call.witnesses.append((arg.name, acc, example))
        return acc, rd

    # -- scopes ------------------------------------------------------------------------------

    def scope(self, scope: Scope, arg: Arg, call: SymCall) -> tuple[Any, Any]:
        """(accepts, reads) of ``scope`` on ``arg``: ``check`` passes / raises a readable
        violation / raises an unreadable one (or anything else)."""
        Z = z3()
        if isinstance(scope, OptionalScope):
            acc, rd = self.scope(scope.scope, arg, call)
            return Z.Or(arg.empty, acc), Z.Or(arg.empty, rd)
        if isinstance(scope, Not):
            acc, rd = self.scope(scope.inner, arg, call)
            return Z.And(rd, Z.Not(acc)), rd
        if isinstance(scope, OneOf):
            return self._one_of(scope, arg)
        if isinstance(scope, Number):
            return self._number(scope, arg)
        if isinstance(scope, Pattern):
            regex = python_regex(scope.spec()["regex"])
            if regex is None:
                return self._opaque(
                    call,
                    arg,
                    scope,
                    f"pattern {scope.spec()['regex']!r} (not a regular language z3 reads exactly)",
                )
            rd = arg.tag == STR
            return Z.And(rd, Z.InRe(arg.s, regex)), rd
        if isinstance(scope, Paths):
            return self._paths(scope, arg, call)
        if isinstance(scope, Urls) and arg.url is not None and arg.mode == "url":
            return self._urls(scope, arg)
        if isinstance(scope, Emails) and arg.email is not None and arg.mode == "email":
            return self._emails(scope, arg)
        if isinstance(scope, Urls | Emails):
            return self._opaque(
                call,
                arg,
                scope,
                f"{scope.kind} scopes on {arg.name!r} (other kinds of scope read it too, "
                "or it completes a default scheme)",
            )
        return self._opaque(call, arg, scope, f"{scope.kind or type(scope).__name__} scopes")

    def _one_of(self, scope: OneOf, arg: Arg) -> tuple[Any, Any]:
        Z = z3()
        options: list[Any] = []
        for v in scope.spec()["values"]:
            if v is None:
                options.append(arg.tag == NONE)
            elif isinstance(v, bool):
                options.append(Z.And(arg.tag == BOOL, arg.b == v))
            elif isinstance(v, str):
                options.append(Z.And(arg.tag == STR, arg.s == Z.StringVal(v)))
            else:
                num = Z.RealVal(v) if isinstance(v, int) else _real(v)
                options.append(Z.And(Z.Or(arg.tag == INT, arg.tag == FLOAT), arg.num == num))
        rd = Z.Or(*[arg.tag == t for t in (NONE, STR, INT, FLOAT, BOOL, NONFINITE)])
        return Z.Or(*options), rd

    def _number(self, scope: Number, arg: Arg) -> tuple[Any, Any]:
        Z = z3()
        spec = scope.spec()
        rd = arg.tag == INT if spec["integer"] else Z.Or(arg.tag == INT, arg.tag == FLOAT)
        x = arg.num
        bounds = [rd]
        for key, op in (("ge", "__ge__"), ("gt", "__gt__"), ("le", "__le__"), ("lt", "__lt__")):
            if key in spec:
                bound = spec[key]
                b = Z.RealVal(bound) if isinstance(bound, int) else _real(bound)
                bounds.append(getattr(x, op)(b))
        return Z.And(*bounds), rd

    def _paths(self, scope: Paths, arg: Arg, call: SymCall) -> tuple[Any, Any]:
        Z = z3()
        spec = scope.spec()
        if spec["base"] is not None:
            return self._opaque(call, arg, scope, "path scopes with a base directory")
        if spec["resolve_symlinks"]:
            self.assumptions[
                "no symbolic link or extra hard link lies on the paths checked "
                "(path scopes resolve them on the file system)"
            ] = None
        s = arg.s
        rd = Z.And(
            arg.tag == STR,
            s != "",
            Z.Not(Z.Contains(s, Z.StringVal("\x00"))),
            Z.Not(Z.PrefixOf(Z.StringVal("~"), s)),
            Z.PrefixOf(Z.StringVal("/"), s),
        )
        roots = scope.roots
        prefixes = [root if root.endswith("/") else root + "/" for root in roots]
        under = Z.Or(*[Z.PrefixOf(Z.StringVal(p), s) for p in prefixes])
        is_root = Z.Or(*[s == Z.StringVal(r) for r in roots])
        inside = Z.Or(is_root, under) if spec["access"] == "read" else Z.And(under, Z.Not(is_root))
        if arg.mode == "path":
            return Z.And(rd, inside), rd
        approx, _ = self._opaque(
            call,
            arg,
            scope,
            f"path scopes on {arg.name!r} for paths written with '.', '..' or '//'",
        )
        return Z.And(rd, Z.If(canonical_path(s), inside, approx)), rd

    def _urls(self, scope: Urls, arg: Arg) -> tuple[Any, Any]:
        Z = z3()
        v = arg.url
        assert v is not None
        spec = scope.spec()
        scheme_ok = Z.Or(*[v.scheme == Z.StringVal(s) for s in spec["schemes"]])
        names: list[Any] = []
        v4: list[Any] = []
        v6: list[Any] = []
        # a host with an empty label ("a..example.com") matches no "*." pattern
        labelled = Z.And(
            Z.Not(Z.Contains(v.host, Z.StringVal(".."))),
            Z.Not(Z.PrefixOf(Z.StringVal("."), v.host)),
            Z.Not(Z.SuffixOf(Z.StringVal("."), v.host)),
        )
        for h in spec["hosts"]:
            if h.startswith("*."):
                names.append(Z.And(labelled, Z.SuffixOf(Z.StringVal("." + h[2:]), v.host)))
                continue
            try:
                ip = ipaddress.ip_address(h)
            except ValueError:
                names.append(v.host == Z.StringVal(h))
                continue
            (v4 if ip.version == 4 else v6).append(v.ip == int(ip))
        for cidr in spec["networks"]:
            net = ipaddress.ip_network(cidr)
            inside = Z.And(v.ip >= int(net.network_address), v.ip <= int(net.broadcast_address))
            (v4 if net.version == 4 else v6).append(inside)
        host_ok = Z.If(
            v.kind == HOST_NAME,
            Z.Or(*names),
            Z.If(v.kind == HOST_V4, Z.Or(*v4), Z.And(v.kind == HOST_V6, Z.Or(*v6))),
        )
        ports = spec["ports"]
        if ports is None:
            port_ok = v.port == -1
        else:
            dflt = default_port(v.scheme)
            port_ok = Z.If(
                v.port == -1,
                Z.Or(*[dflt == p for p in ports]),
                Z.Or(*[v.port == p for p in ports]),
            )
        ui_ok = Z.BoolVal(True) if spec["allow_userinfo"] else Z.Not(v.userinfo)
        pre = Z.And(arg.tag == STR, v.parsed)
        rd = Z.And(
            pre, Z.Or(Z.Not(scheme_ok), Z.And(v.has_host, Z.Or(Z.Not(host_ok), Z.Not(v.ambiguous))))
        )
        acc = Z.And(pre, scheme_ok, v.has_host, host_ok, Z.Not(v.ambiguous), ui_ok, port_ok)
        return acc, rd

    def _emails(self, scope: Emails, arg: Arg) -> tuple[Any, Any]:
        Z = z3()
        e = arg.email
        assert e is not None
        spec = scope.spec()
        exact = [d for d in spec["domains"] if not d.startswith("*.")]
        wild = [d[2:] for d in spec["domains"] if d.startswith("*.")]
        addresses = [a.rpartition("@") for a in spec["addresses"]]
        rd = Z.And(arg.tag == STR, e.ok)
        each = []
        for i, (loc, dom) in enumerate(zip(e.locals, e.domains, strict=True)):
            ok = Z.Or(
                *[Z.And(loc == Z.StringVal(a), dom == Z.StringVal(d)) for a, _, d in addresses],
                *[dom == Z.StringVal(d) for d in exact],
                *[Z.SuffixOf(Z.StringVal("." + w), dom) for w in wild],
            )
            each.append(Z.Implies(e.count > i, ok))
        return Z.And(rd, *each), rd

    _only: Sequence[str] | None = None

    def _relevant(self, rule: Rule) -> bool:
        only = self._only
        return only is None or any(_overlap(t, o) for t in rule.tools for o in only)

    # -- rules -------------------------------------------------------------------------------

    def about(self, rule: Rule, call: SymCall) -> Any:
        """Whether ``rule`` speaks about the call's tool and agent."""
        Z = z3()
        parts = [tool_in(call, rule.tools), _names(call.agent, rule.agents)]
        members = getattr(rule, "_members", None)
        if members is not None:
            parts.append(
                _names(call.agent, members.patterns) if members.patterns else Z.BoolVal(False)
            )
        return Z.And(*parts)

    def outcome(self, rule: Rule, call: SymCall) -> tuple[Any, Any]:
        """(match, error) of ``rule`` on the call (a miss is neither)."""
        Z = z3()
        rid = rule.id
        match: Any = Z.BoolVal(True)
        error: Any = Z.BoolVal(False)
        fails_closed = rule.effect is not RuleEffect.ALLOW
        if rule.when is not None:
            self.approximated["'when' conditions"] = None
            holds = self._atom(call, f"when|{rid}|holds")
            raised = self._atom(call, f"when|{rid}|raises")
            match, error = Z.And(holds, Z.Not(raised)), raised
        # (name, scope) of the arguments the engine judges on the run's provenance
        returned = [(n, s) for n, s, *_ in getattr(rule, "_returned", ())]
        checked = [(n, s) for n, s in rule.args.items() if n not in dict(returned)]
        for name, scope in reversed([*checked, *returned]):
            arg = call.args[name]
            if (name, scope) in returned:
                acc, rd = self._opaque(call, arg, scope, "returned-value scopes")
                optional = isinstance(scope, OptionalScope)  # absent passes, as in the engine
            else:
                acc, rd = self.scope(scope, arg, call)
                optional = type(scope) is OptionalScope
            passes = Z.Or(Z.Not(arg.present), acc) if optional else Z.And(arg.present, acc)
            err = Z.And(arg.present, Z.Not(rd)) if fails_closed else Z.BoolVal(False)
            match = Z.And(passes, match)
            error = Z.Or(Z.And(passes, error), Z.And(Z.Not(passes), err))
        if rule.tainted_by:
            fired = Z.Or(*[Z.And(on, _names(label, rule.tainted_by)) for on, label in call.taint])
            if rule.carries:
                fired = Z.And(fired, call.carries)
            match, error = Z.And(fired, match), Z.And(fired, error)
        if self.closed and rule.args and rule.permits and rule.effect is not RuleEffect.DENY:
            given = [
                Z.And(a.present, Z.Not(a.empty)) for n, a in call.args.items() if n not in rule.args
            ]
            match = Z.And(match, Z.Not(Z.Or(*given)))
        return match, error

    # -- the decision ------------------------------------------------------------------------

    def effect(
        self,
        call: SymCall,
        extra: Sequence[tuple[Rule, Any]] = (),
        tools: Sequence[str] | None = None,
    ) -> Any:
        """The effect (``DENY``/``ASK``/``ALLOW``) ``Policy.evaluate`` gives the call.

        ``extra`` holds run-time grants as (rule, in force) pairs. ``tools`` (names or
        globs) promises the call's tool is one of them: rules about no such tool are left
        out (they cannot speak about the call)."""
        Z = z3()
        self._only = tools
        if self.layered:
            return self._layered_effect(call, extra)
        denied: list[Any] = []
        failed: list[Any] = []
        escalate: list[Any] = []
        permit: list[Any] = []
        for r in [*self.rules, *(g for g, _ in extra)]:
            if not self._relevant(r) or (r.shadow and not self.shadow):
                continue
            on = self.about(r, call)
            held = {id(g): c for g, c in extra}.get(id(r))
            if held is not None:
                on = Z.And(on, held)
            m, e = self.outcome(r, call)
            if r.effect is RuleEffect.DENY:
                denied.append(Z.And(on, Z.Or(m, e)))
            elif r.effect is RuleEffect.ASK:
                failed.append(Z.And(on, e))
                escalate.append(Z.And(on, m))
                if r.permits:
                    permit.append(Z.And(on, m))
            else:
                permit.append(Z.And(on, m))
        return Z.If(
            Z.Or(*denied, *failed),
            DENY,
            Z.If(Z.Or(*permit), Z.If(Z.Or(*escalate), ASK, ALLOW), DENY),
        )

    def _layered_effect(self, call: SymCall, extra: Sequence[tuple[Rule, Any]]) -> Any:
        Z = z3()
        denied: list[Any] = []
        failed: list[Any] = []
        escalate: list[Any] = []
        found: list[Any] = []
        widen: list[Any] = []
        speaks: list[Any] = []
        for i, layer in enumerate(self.layers):
            own: tuple[Rule, ...] = tuple(
                r for r in layer._own_rules if self._relevant(r) and (self.shadow or not r.shadow)
            )
            chain: list[tuple[Any, bool]] = []
            talk: list[Any] = []
            for r in own:
                on = self.about(r, call)
                m, e = self.outcome(r, call)
                if r.effect is RuleEffect.DENY:
                    denied.append(Z.And(on, Z.Or(m, e)))
                elif r.effect is RuleEffect.ASK:
                    failed.append(Z.And(on, e))
                    escalate.append(Z.And(on, m))
            asks = [r for r in own if r.effect is RuleEffect.ASK and r.permits]
            allows = [r for r in own if r.effect is RuleEffect.ALLOW]
            for r in [*asks, *allows]:
                on = self.about(r, call)
                m, _ = self.outcome(r, call)
                chain.append((Z.And(on, m), r.widen))
                talk.append(on)
            found.append(Z.Or(*[c for c, _ in chain]))
            w: Any = Z.BoolVal(False)
            for c, flag in reversed(chain):
                w = Z.If(c, Z.BoolVal(flag), w)
            widen.append(w)
            speaks.append(Z.BoolVal(True) if i == 0 else Z.Or(*talk))
        granted: list[Any] = []
        for g, held in extra:
            on = Z.And(self.about(g, call), held)
            m, e = self.outcome(g, call)
            granted.append(Z.And(on, m))
            if g.effect is RuleEffect.ASK:
                escalate.append(Z.And(on, m))
        any_grant = Z.Or(*granted)
        n = len(self.layers)
        blocked = [
            Z.And(
                speaks[i],
                Z.Not(found[i]),
                Z.Not(Z.Or(*[Z.And(found[j], widen[j]) for j in range(i, n)])),
                Z.Not(any_grant),
            )
            for i in range(n)
        ]
        permit = Z.Or(*found, any_grant)
        return Z.If(
            Z.Or(*denied, *failed, *blocked),
            DENY,
            Z.If(permit, Z.If(Z.Or(*escalate), ASK, ALLOW), DENY),
        )


def _witness(scope: Scope) -> Any:
    """A value ``scope`` probably accepts (shell and SQL scopes), to try in a counterexample."""
    spec = scope.spec()
    if scope.kind == "shell" and spec.get("programs"):
        return str(spec["programs"][0])
    if scope.kind == "sql" and spec.get("tables"):
        return f"SELECT * FROM {spec['tables'][0]}"
    return None


def _overlap(a: str, b: str) -> bool:
    """Whether names ``a`` and ``b`` (names or globs) may match one tool (conservative)."""
    from ..policy._patterns import is_glob

    if a == "*" or b == "*" or a == b:
        return True
    if is_glob(a) and is_glob(b):
        return True
    if is_glob(a):
        return fnmatch.fnmatchcase(b, a)
    if is_glob(b):
        return fnmatch.fnmatchcase(a, b)
    return False


def _real(value: float) -> Any:
    n, d = float(value).as_integer_ratio()
    return z3().Q(n, d) if d != 1 else z3().RealVal(n)


_MATCHES: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[int, ...]] = {}


def tool_in(call: SymCall, patterns: Iterable[str]) -> Any:
    """The call's tool matches one of the names or globs: ``_names``, or for a tool among
    ``call.choices``, its index is one of those ``_names`` accepts (the same test, decided
    once per name)."""
    if not call.choices:
        return _names(call.tool, patterns)
    Z = z3()
    key = (call.choices, tuple(patterns))
    found = _MATCHES.get(key)
    if found is None:
        found = tuple(
            i
            for i, n in enumerate(call.choices)
            if Z.is_true(Z.simplify(_names(Z.StringVal(n), key[1])))
        )
        if len(_MATCHES) > 4096:
            _MATCHES.clear()
        _MATCHES[key] = found
    return Z.Or(*[call.index == i for i in found])


def same_tool(a: SymCall, b: SymCall) -> Any:
    """The two calls' tools are the same name."""
    if a.choices and a.choices == b.choices:
        return a.index == b.index
    return a.tool == b.tool


def _names(term: Any, patterns: Iterable[str]) -> Any:
    """``term`` matches one of the names or globs (``NameSet.matches``)."""
    Z = z3()
    pats = tuple(patterns)
    if "*" in pats:
        return Z.BoolVal(True)
    from ..policy._patterns import is_glob

    exact = [term == Z.StringVal(p) for p in pats if not is_glob(p)]
    globs = [Z.InRe(term, glob_regex(p)) for p in pats if is_glob(p)]
    return Z.Or(*exact, *globs)
