"""A policy: rules, budgets and data flows, validated and compiled when it is built.

Why this file is long: it holds both ways of deciding, the flat one every single-file policy
takes (the hot path, kept as it was) and the layered one, each with its explain hooks, so the
precedence they share sits in one place (``_conclude``), and the twins that decide a
policy with shadow rules (``_twin``, ``_evaluate_shadowed``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._decision import Decision, Effect
from .._errors import PolicyError, PolicyFileError
from .._events import ToolCall
from ..scopes import Provenance
from ._budgets import Budget
from ._explain import Trace
from ._files import PolicyParts, parts_from_data, parts_from_file
from ._flows import DataFlow
from ._lint import lint, open_recipients
from ._patterns import NameSet
from ._roles import Role, members, role_table
from ._rules import Outcome, Rule, RuleEffect, RuleResult
from ._toolcheck import ToolProblem, check_tools

UnscopedArgs = Literal["any", "empty"]
UNSCOPED_ARGS: tuple[UnscopedArgs, ...] = ("any", "empty")

DEFAULT_DENY = "default-deny"
MALFORMED = "malformed-call"
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class _Bucket:
    """The rules about one (agent, tool) pair, by effect, in policy order."""

    denies: tuple[Rule, ...]
    asks: tuple[Rule, ...]
    allows: tuple[Rule, ...]
    budgets: tuple[Budget, ...]
    needs_taint: bool
    returned: tuple[str, ...] = ()
    """Tools whose recorded results the rules' ``Returned`` scopes look up."""
    carries: bool = False
    """Whether a data-flow rule here gates only arguments that carry untrusted content."""
    needs_provenance: bool = False
    """``carries`` or ``returned``: the guard reads the run's provenance for this bucket."""
    shadowed: bool = False
    """Whether a shadow rule is about this pair (the decision is then marked with what the
    policy would decide with its shadow rules enforced)."""


class Policy:
    """Who may call which tools with which arguments, how often, and what needs a person.

    Build it in Python or load it from YAML (:meth:`from_yaml`); both give the same object,
    which prints (:meth:`to_dict`), lints (:meth:`lint`) and is tested like any value::

        policy = Policy(
            rules=[
                allow("read_file", args={"path": Paths(["/data"])}),
                ask("send_email", args={"to": Emails(domains=["example.com"])}),
                deny("delete_*"),
            ],
            budgets=[Budget.calls(20, tools="search", per="run")],
            flows=[DataFlow(sources="fetch_url", sinks="send_email", effect="ask")],
        )

    Tools no rule names are denied. A matching ``deny`` beats everything, ``ask`` beats
    ``allow``. Rules are compiled into a per-(agent, tool) index, so a decision looks at the
    few rules about that tool only.

    ``roles`` (:class:`Role`) name groups of agents that rules and grants can be given to
    (``allow(..., roles="analyst")``); ``lists`` are named values a policy file refers to
    as ``{list: name}``; ``imports`` name modules that register custom scope kinds.

    ``extends`` makes this policy a *layer* below other policies (an organisation's, then a
    team's, then this agent's). Ancestors come first, each once (a diamond is one layer), and
    the first is the root. Precedence:

    1. a matching ``deny`` in any layer denies (and so do data-flow gates, and any rule that
       cannot be evaluated);
    2. the root must permit the call, and so must every other layer that has allow or ask
       rules about the tool for the agent: a lower layer narrows, never widens (a layer
       silent about a tool leaves it to the others);
    3. an allow or ask rule with ``widen=True`` that matches stands in for the layers above
       its own (lint warns about each one); a run-time grant stands in for every layer;
    4. among permitted calls, an ``ask`` anywhere beats ``allow``.
    """

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        *,
        budgets: Iterable[Budget] = (),
        flows: Iterable[DataFlow] = (),
        name: str = "policy",
        version: str = "1",
        roles: Iterable[Role] = (),
        lists: Mapping[str, Any] | None = None,
        imports: Iterable[str] = (),
        extends: Iterable[Policy] = (),
        unscoped_args: UnscopedArgs = "any",
    ) -> None:
        if unscoped_args not in UNSCOPED_ARGS:
            raise PolicyError(
                f"unscoped_args must be one of {list(UNSCOPED_ARGS)}, found {unscoped_args!r}"
            )
        self.unscoped_args: UnscopedArgs = unscoped_args
        self._closed = unscoped_args == "empty"
        self.name = name
        self.version = str(version)
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.budgets: tuple[Budget, ...] = tuple(budgets)
        self.flows: tuple[DataFlow, ...] = tuple(flows)
        self.roles: tuple[Role, ...] = tuple(roles)
        self.lists: dict[str, Any] = dict(lists or {})
        self.imports: tuple[str, ...] = tuple(imports)
        self.extends: tuple[Policy, ...] = tuple(extends)
        for i, r in enumerate(self.rules):
            if not isinstance(r, Rule):
                raise PolicyError(
                    f"rules[{i}] must be a Rule (use allow(), ask() or deny()), found {r!r}"
                )
        for i, b in enumerate(self.budgets):
            if not isinstance(b, Budget):
                raise PolicyError(f"budgets[{i}] must be a Budget, found {b!r}")
        for i, f in enumerate(self.flows):
            if not isinstance(f, DataFlow):
                raise PolicyError(f"flows[{i}] must be a DataFlow, found {f!r}")
        for i, role in enumerate(self.roles):
            if not isinstance(role, Role):
                raise PolicyError(f"roles[{i}] must be a Role, found {role!r}")
        for i, parent in enumerate(self.extends):
            if not isinstance(parent, Policy):
                raise PolicyError(f"extends[{i}] must be a Policy, found {parent!r}")
        _unique("rule", [r.id for r in self.rules] + [f.id for f in self.flows])
        _unique("budget", [b.id for b in self.budgets])
        _unique("role", [role.name for role in self.roles])
        self._layers: tuple[Policy, ...] = _linearize(self)
        self._layered = len(self._layers) > 1
        ancestors = self._layers[:-1]
        self._role_table = role_table([*(p.roles for p in ancestors), self.roles])
        try:
            self._members = members(self._role_table)
        except PolicyError as exc:
            raise PolicyError(f"policy {self.name!r}: {exc}") from None
        own = [self._bind(r) for r in self.rules + tuple(f.rule() for f in self.flows)]
        self._own_rules: tuple[Rule, ...] = tuple(own)
        if ancestors:
            self._all_rules = tuple(r for p in self._layers for r in p._own_rules)
            self._all_budgets = tuple(b for p in self._layers for b in p.budgets)
            all_flows = [f for p in self._layers for f in p.flows]
            # rules may share an id across layers (explain names the layer); budgets may
            # not: a budget's id is its counter's key in the store
            _unique("budget", [b.id for b in self._all_budgets], across_layers=True)
        else:
            self._all_rules = self._own_rules
            self._all_budgets = self.budgets
            all_flows = list(self.flows)
        self._sources = NameSet([s for f in all_flows for s in f.sources] or ["\0none"])
        self._result_budgets = tuple(b for b in self._all_budgets if b.of == "results")
        self._model_budgets = tuple(b for b in self._all_budgets if b.of == "model")
        self.tracked: frozenset[str] = frozenset(
            t for r in self._all_rules for t in r.returned_tools
        )
        """Tools whose results the guard fingerprints for ``Returned`` scopes (rules only:
        a grant's ``Returned`` scope sees the tools the policy's rules track)."""
        self.carries = any(f.carries for f in all_flows)
        """Whether untrusted results are fingerprinted (a flow with ``carries``)."""
        self._declassifying = frozenset(f.id for f in all_flows if f.carries)
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._layer_buckets: dict[tuple[int, str, str], _Bucket] = {}
        self._shadowing = any(r.shadow for r in self._all_rules)
        self._without: Policy | None = None
        self._enforcing: Policy | None = None
        if self._shadowing:
            # shadow rules: decide without them, mark with what deciding with them says
            self._without = self._twin(enforce=False)
            self._enforcing = self._twin(enforce=True)

    def _twin(self, *, enforce: bool) -> Policy:
        """This policy with its shadow rules (in every layer) enforced, or removed."""
        if enforce:
            rules = [r.enforced() for r in self.rules]
            parents = [p._enforcing or p for p in self.extends]
        else:
            rules = [r for r in self.rules if not r.shadow]
            parents = [p._without or p for p in self.extends]
        return Policy(
            rules,
            budgets=self.budgets,
            flows=self.flows,
            name=self.name,
            version=self.version,
            roles=self.roles,
            lists=self.lists,
            imports=self.imports,
            extends=parents,
            unscoped_args=self.unscoped_args,
        )

    @property
    def shadow_rules(self) -> tuple[Rule, ...]:
        """The rules of every layer marked ``shadow``: decided and marked, not enforced."""
        return tuple(r for r in self._all_rules if r.shadow)

    def bind(self, rule: Rule) -> Rule:
        """``rule`` with its roles bound to their agents (as this policy's own rules are);
        ``PolicyError`` when it names a role no layer defines. Run-time grants given to a
        role are bound this way."""
        return self._bind(rule)

    def _bind(self, rule: Rule) -> Rule:
        """``rule`` with its roles bound to their members in this layer's view of the roles."""
        if not rule.roles:
            return rule
        unknown = [r for r in rule.roles if r not in self._members]
        if unknown:
            raise PolicyError(
                f"rule {rule.id!r} names role {unknown[0]!r}, which no layer defines"
                f" (roles: {sorted(self._members) or 'none'})"
            )
        agents: tuple[str, ...] = ()
        for role in rule.roles:
            agents += tuple(a for a in self._members[role] if a not in agents)
        return rule.with_members(agents)

    # -- compiled lookups -----------------------------------------------------------------

    @property
    def layers(self) -> tuple[Policy, ...]:
        """The layers this policy decides with, root first, this policy last."""
        return self._layers

    @property
    def compiled_rules(self) -> tuple[Rule, ...]:
        """Every rule of every layer (flows as their gate rules), roles bound to agents."""
        return self._all_rules

    def roles_of(self, agent: str) -> tuple[str, ...]:
        """The roles ``agent`` holds, directly or through inheritance, in this layer's view."""
        return tuple(name for name, who in self._members.items() if NameSet(who).matches(agent))

    def bucket(self, agent: str, tool: str) -> _Bucket:
        """The rules about calls of ``tool`` by ``agent``, in policy order (computed once per pair,
        then cached)."""
        key = (agent, tool)
        found = self._buckets.get(key)
        if found is None:
            found = _make_bucket(self._all_rules, self._all_budgets, agent, tool)
            if len(self._buckets) >= _CACHE_LIMIT:
                self._buckets.clear()
            self._buckets[key] = found
        return found

    def _layer_bucket(self, i: int, agent: str, tool: str) -> _Bucket:
        key = (i, agent, tool)
        found = self._layer_buckets.get(key)
        if found is None:
            found = _make_bucket(self._layers[i]._own_rules, (), agent, tool)
            if len(self._layer_buckets) >= _CACHE_LIMIT:
                self._layer_buckets.clear()
            self._layer_buckets[key] = found
        return found

    def declassifies(self, rule: str) -> bool:
        """Whether approving a call ``rule`` asked about clears what its arguments carried."""
        return rule in self._declassifying

    def is_source(self, tool: str) -> bool:
        """Whether ``tool`` brings untrusted content into a run (a data-flow source)."""
        return self._sources.matches(tool)

    def result_budgets(self, agent: str, tool: str) -> tuple[Budget, ...]:
        """The budgets that count the results (tokens) of ``tool`` for ``agent``."""
        return tuple(b for b in self._result_budgets if b.applies(agent, tool))

    def model_budgets(self, agent: str) -> tuple[Budget, ...]:
        """The budgets that count ``agent``'s model use (``of="model"``)."""
        return tuple(b for b in self._model_budgets if b._agents.matches(agent))

    def visible(self, agent: str, tool: str, extra: Sequence[Rule] = ()) -> bool:
        """Whether ``agent`` could ever call ``tool``: some rule permits it, none forbids it
        outright. Tools that are not visible are hidden from the model (shadow rules aside:
        they neither show nor hide a tool)."""
        if self._without is not None:
            return self._without.visible(agent, tool, extra)
        b = self.bucket(agent, tool)
        if any(r.unconditional for r in b.denies):
            return False
        if any(r.about(agent, tool) for r in extra):
            return True
        if len(self._layers) > 1:  # the root, or a widening rule, must permit it
            root = self._layer_bucket(0, agent, tool)
            return any(r.permits for r in (*root.asks, *root.allows)) or any(
                r.widen and r.permits for r in (*b.asks, *b.allows)
            )
        return any(r.permits for r in (*b.asks, *b.allows))

    # -- deciding -------------------------------------------------------------------------

    def evaluate(
        self,
        call: ToolCall,
        tainted: frozenset[str] = frozenset(),
        extra: Sequence[Rule] = (),
        trace: Trace | None = None,
        *,
        provenance: Provenance | None = None,
    ) -> Decision:
        """Decide ``call`` on the rules alone (no budgets, no store): pure and fast.

        ``tainted`` holds the sources whose content entered the run; ``extra`` holds rules
        from run-time grants for this agent; ``provenance`` what the run's results said
        (for ``Returned`` scopes and flows with ``carries``). ``trace`` (see ``_explain.py``) collects every
        rule looked at and what it said; ``None`` costs nothing.
        """
        if not call.readable:
            problem = call.problem or (
                f"expected an object of named arguments, found {type(call.raw_args).__name__} "
                f"{call.raw_args!r:.200}"
            )
            if trace is not None:
                trace.add("call", call.tool, "unreadable", problem)
            return _deny(call, MALFORMED, f"cannot read the arguments of {call.tool!r}: {problem}")
        if self._shadowing:
            return self._evaluate_shadowed(call, tainted, extra, trace, provenance)
        if self._layered:
            return self._evaluate_layers(call, tainted, extra, trace, provenance)
        b = self.bucket(call.agent, call.tool)
        if trace is not None and not (b.denies or b.asks or b.allows or extra):
            trace.add("call", call.tool, "no rule names it", f"for agent {call.agent!r}")
        for r in b.denies:
            res = self._judge(r, call, tainted, provenance)
            if trace is not None:
                trace.rule(r, res)
            if res.outcome is not Outcome.MISS:
                if trace is not None:
                    grants = [g for g in extra if g.about(call.agent, call.tool)]
                    later = b.denies[b.denies.index(r) + 1 :]
                    trace.unreached((*later, *b.asks, *b.allows, *grants), r.id)
                if res.outcome is Outcome.MATCH:
                    return _deny(call, r.id, _text(r, call) or f"forbidden by rule {r.id!r}")
                return _deny(
                    call, r.id, f"fail closed: {res.reason}", f"fail closed: {res.for_model}"
                )
        asks = b.asks
        allows = b.allows
        if extra:
            grants = [r for r in extra if r.about(call.agent, call.tool)]
            asks += tuple(r for r in grants if r.effect is RuleEffect.ASK)
            allows += tuple(r for r in grants if r.effect is RuleEffect.ALLOW)
        permit: Rule | None = None
        escalate: Rule | None = None
        misses: list[tuple[Rule, RuleResult]] = []
        for r in asks:
            res = self._judge(r, call, tainted, provenance)
            if trace is not None:
                trace.rule(r, res)
            if res.outcome is Outcome.MATCH:
                escalate = escalate or r
                if r.permits:
                    permit = permit or r
            elif res.outcome is Outcome.ERROR:
                if trace is not None:
                    trace.unreached((*asks[asks.index(r) + 1 :], *allows), r.id)
                return _deny(
                    call, r.id, f"fail closed: {res.reason}", f"fail closed: {res.for_model}"
                )
            elif r.permits:
                misses.append((r, res))
        if permit is None:
            for r in allows:
                res = self._judge(r, call, tainted, provenance)
                if trace is not None:
                    trace.rule(r, res)
                if res.outcome is Outcome.MATCH:
                    permit = r
                    if trace is not None:
                        trace.unreached(allows[allows.index(r) + 1 :], r.id)
                    break
                misses.append((r, res))
        elif trace is not None:
            for r in allows:
                trace.overridden(r, permit.id, "an ask rule matched first; ask beats allow")
        return _conclude(call, permit, escalate, misses, trace)

    def _evaluate_shadowed(
        self,
        call: ToolCall,
        tainted: frozenset[str],
        extra: Sequence[Rule],
        trace: Trace | None,
        provenance: Provenance | None,
    ) -> Decision:
        """:meth:`evaluate` for a policy with shadow rules: the decision of the policy
        without them, marked (``would``, ``would_rule``) with the decision of the policy
        with them enforced when the two effects differ."""
        without, enforcing = self._without, self._enforcing
        assert without is not None
        assert enforcing is not None
        decided = without.evaluate(call, tainted, extra, trace, provenance=provenance)
        if not self.bucket(call.agent, call.tool).shadowed:
            return decided
        full = enforcing.evaluate(call, tainted, extra, provenance=provenance)
        if full.effect is decided.effect:
            if trace is not None:
                trace.add("shadow", "shadow rules", "change nothing", f"would {full.effect} too")
            return decided
        if trace is not None:
            trace.add(
                "shadow",
                full.rule,
                f"would {full.effect} (not enforced)",
                f"with the shadow rules enforced: {full.reason}",
            )
        return dataclasses.replace(decided, would=str(full.effect), would_rule=full.rule)

    def _judge(
        self,
        r: Rule,
        call: ToolCall,
        tainted: frozenset[str],
        provenance: Provenance | None,
    ) -> RuleResult:
        """What rule ``r`` says of ``call``; under ``unscoped_args="empty"`` a permitting rule
        with scopes also needs every argument it does not scope to be empty (a deny rule
        does not: an extra argument must not dodge it)."""
        res = r.evaluate(call, tainted, provenance)
        if (
            self._closed
            and res.outcome is Outcome.MATCH
            and r.args
            and r.permits
            and r.effect is not RuleEffect.DENY
        ):
            return _closed(r, call) or res
        return res

    def _evaluate_layers(
        self,
        call: ToolCall,
        tainted: frozenset[str],
        extra: Sequence[Rule],
        trace: Trace | None,
        provenance: Provenance | None = None,
    ) -> Decision:
        """:meth:`evaluate` for a layered policy (the precedence in the class docstring)."""
        agent, tool = call.agent, call.tool
        layers = self._layers
        buckets = [self._layer_bucket(i, agent, tool) for i in range(len(layers))]
        for i, b in enumerate(buckets):
            for r in b.denies:
                res = self._judge(r, call, tainted, provenance)
                if trace is not None:
                    trace.rule(r, res, layers[i].name)
                if res.outcome is not Outcome.MISS:
                    if trace is not None:
                        self._unreached(trace, buckets, extra, call, r.id)
                    if res.outcome is Outcome.MATCH:
                        return _deny(call, r.id, _text(r, call) or f"forbidden by rule {r.id!r}")
                    return _deny(
                        call, r.id, f"fail closed: {res.reason}", f"fail closed: {res.for_model}"
                    )
        escalate: Rule | None = None
        widened = -1
        all_misses: list[tuple[Rule, RuleResult]] = []
        matched: list[Rule | None] = []
        for i, b in enumerate(buckets):
            name = layers[i].name
            found: Rule | None = None
            misses: list[tuple[Rule, RuleResult]] = []
            for r in b.asks:
                res = self._judge(r, call, tainted, provenance)
                if trace is not None:
                    trace.rule(r, res, name)
                if res.outcome is Outcome.MATCH:
                    escalate = escalate or r
                    if r.permits:
                        found = found or r
                elif res.outcome is Outcome.ERROR:
                    if trace is not None:
                        self._unreached(trace, buckets, extra, call, r.id)
                    return _deny(
                        call, r.id, f"fail closed: {res.reason}", f"fail closed: {res.for_model}"
                    )
                elif r.permits:
                    misses.append((r, res))
            for r in b.allows:
                if found is not None:
                    if trace is not None:
                        trace.unreached((r,), found.id, name)
                    continue
                res = self._judge(r, call, tainted, provenance)
                if trace is not None:
                    trace.rule(r, res, name)
                if res.outcome is Outcome.MATCH:
                    found = r
                else:
                    misses.append((r, res))
            matched.append(found)
            all_misses += misses
            if found is not None and found.widen:
                widened = i
        grants = [r for r in extra if r.about(agent, tool)]
        granted: Rule | None = None
        for r in grants:
            res = self._judge(r, call, tainted, provenance)
            if trace is not None:
                trace.rule(r, res)
            if res.outcome is Outcome.MATCH:
                granted = granted or r
                if r.effect is RuleEffect.ASK:
                    escalate = escalate or r
        speaks = [
            i == 0 or any(r.permits for r in (*b.asks, *b.allows)) for i, b in enumerate(buckets)
        ]
        blocked = [
            i
            for i in range(len(buckets))
            if speaks[i] and matched[i] is None and i > widened and granted is None
        ]
        if trace is not None:
            for i, found in enumerate(matched):
                if found is not None:
                    said = "permits"
                elif not speaks[i]:
                    said = "is silent"
                else:
                    said = "refuses" if i in blocked else "is stood in for"
                detail = _layer_detail(
                    found, bool(buckets[i].asks or buckets[i].allows), i, widened
                )
                trace.add("layer", layers[i].name, said, detail)
        if blocked:
            first = layers[blocked[0]].name
            full, short = _missed(all_misses)
            none = f"no rule allows tool {tool!r} for agent {agent!r}"
            return _deny(
                call,
                DEFAULT_DENY,
                f"layer {first!r} does not permit it: {full or none}",
                f"layer {first!r} does not permit it: {short or none}",
            )
        permit = next((r for r in reversed(matched) if r is not None), granted)
        return _conclude(call, permit, escalate, all_misses, trace)

    def _unreached(
        self,
        trace: Trace,
        buckets: Sequence[_Bucket],
        extra: Sequence[Rule],
        call: ToolCall,
        by: str,
    ) -> None:
        """Name, as not reached, every rule about ``call`` the trace has not seen yet."""
        seen = {(s.layer, s.name) for s in trace.steps}
        for i, b in enumerate(buckets):
            name = self._layers[i].name
            rest = [r for r in (*b.denies, *b.asks, *b.allows) if (name, r.id) not in seen]
            trace.unreached(rest, by, name)
        grants = [r for r in extra if r.about(call.agent, call.tool)]
        trace.unreached([r for r in grants if ("", r.id) not in seen], by)

    # -- plain data -----------------------------------------------------------------------

    @property
    def digest(self) -> str:
        """A SHA-256 of the policy's plain data (``to_dict``): two policies with the same
        digest decide alike. Audit records carry ``version`` and the digest's first 12 hex
        digits, so a record says exactly which policy decided."""
        found: str | None = self.__dict__.get("_digest")
        if found is None:
            import hashlib
            import json

            text = json.dumps(self.to_dict(), sort_keys=True, default=str, ensure_ascii=False)
            found = self.__dict__["_digest"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return found

    def to_dict(self) -> dict[str, Any]:
        """The compiled policy as plain data in the policy-file shape (what ``lint`` prints).

        A layered policy prints its ``extends`` inline, each parent as its own plain data."""
        data: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.unscoped_args != "any":
            data["unscoped_args"] = self.unscoped_args
        if self.imports:
            data["imports"] = list(self.imports)
        if self.extends:
            data["extends"] = [p.to_dict() for p in self.extends]
        if self.lists:
            data["lists"] = dict(self.lists)
        if self.roles:
            data["roles"] = {role.name: role.to_dict() for role in self.roles}
        data["rules"] = [r.to_dict() for r in self.rules]
        if self.budgets:
            data["budgets"] = [b.to_dict() for b in self.budgets]
        if self.flows:
            data["flows"] = [f.to_dict() for f in self.flows]
        return data

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<dict>", imports: bool = True) -> Policy:
        """Build a policy from plain data (the YAML shape); errors name ``source`` and the rule.

        ``imports=False`` checks the shape of ``when:`` conditions and ``predicate`` scopes
        without importing the modules they name; such a policy prints and lints, and denies
        every call those conditions and scopes guard."""
        return cls._assemble(parts_from_data(data, source=source, imports=imports), source)

    @classmethod
    def from_yaml(cls, path: str, *, imports: bool = True) -> Policy:
        """Load and validate a YAML policy file (UTF-8, no key twice in a mapping, aliases
        within limits); ``imports`` as in :meth:`from_dict`. ``extends:`` paths are read
        relative to the file that names them."""
        return cls._assemble(parts_from_file(path, imports=imports), path)

    @classmethod
    def _assemble(cls, parts: PolicyParts, source: str) -> Policy:
        parents = [cls._assemble(p, s) for s, p in parts.extends]
        try:
            return cls(
                parts.rules,
                budgets=parts.budgets,
                flows=parts.flows,
                name=parts.name,
                version=parts.version,
                roles=parts.roles,
                lists=parts.lists,
                imports=parts.imports,
                extends=parents,
                unscoped_args=parts.unscoped_args,
            )
        except PolicyError as exc:
            raise PolicyFileError(source, "policy", str(exc)) from exc

    def lint(self) -> list[str]:
        """Warnings about a policy that is valid but probably not what was meant (rules an
        outright deny makes useless, budgets of 0, rules that widen a layer above, lists
        nothing refers to, shadow rules: each one is named, and only the enforced rules are
        checked against each other); linear in the rules (see ``_lint.py``)."""
        enforced = tuple(r for r in self._all_rules if not r.shadow)
        warnings = lint(enforced, self._all_budgets)
        warnings += [
            f"rule {r.id!r} has shadow: true: it is decided and marked, never enforced"
            for r in self._all_rules
            if r.shadow
        ]
        root = self._layers[0]
        for r in self._all_rules:
            if r.widen and r.effect is not RuleEffect.DENY:
                if len(self._layers) > 1 and r not in root._own_rules:
                    warnings.append(
                        f"rule {r.id!r} has widen: true: it permits what the layers above "
                        "it do not; make sure that is meant"
                    )
                else:
                    warnings.append(f"rule {r.id!r} has widen: true in the root layer: no effect")
        used = {name for p in self._layers for r in p.rules for _, name in r.refs}
        used |= {name for p in self._layers for f in p.flows for _, name in f.refs}
        for name in self.lists:
            if name not in used:
                warnings.append(f"list {name!r} is defined but no rule or flow refers to it")
        return warnings + self.open_arguments(enforced)

    def open_arguments(self, rules: Iterable[Rule]) -> list[str]:
        """Warnings for permitting ``rules`` (the policy's, or grants') that leave a
        recipient-like argument open: empty under ``unscoped_args="empty"``."""
        if self._closed:
            return []
        return [w for w in map(open_recipients, rules) if w is not None]

    def check_tools(self, tools: Iterable[Any], *, agent: str | None = None) -> list[ToolProblem]:
        """Where the policy does not fit ``tools`` (LangChain tools, or anything with
        ``name`` and ``args``): rules naming no bound tool, tools no rule speaks about,
        scoped arguments a tool does not take, scopes that cannot read an argument's type
        (see ``_toolcheck.py``). With ``agent``, only the rules for that agent count."""
        return check_tools(tuple(r for p in self._layers for r in p.rules), tools, agent=agent)

    def __repr__(self) -> str:
        layered = f", layers={len(self._layers)}" if len(self._layers) > 1 else ""
        return (
            f"Policy(name={self.name!r}, rules={len(self.rules)}, budgets={len(self.budgets)}, "
            f"flows={len(self.flows)}{layered})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _make_bucket(
    rules: Sequence[Rule], budgets: Sequence[Budget], agent: str, tool: str
) -> _Bucket:
    about = [r for r in rules if r.about(agent, tool)]
    return _Bucket(
        denies=tuple(r for r in about if r.effect is RuleEffect.DENY),
        asks=tuple(r for r in about if r.effect is RuleEffect.ASK),
        allows=tuple(r for r in about if r.effect is RuleEffect.ALLOW),
        budgets=tuple(b for b in budgets if b.applies(agent, tool)),
        needs_taint=any(r.tainted_by for r in about),
        returned=(returned := tuple(sorted({t for r in about for t in r.returned_tools}))),
        carries=(carries := any(r.carries for r in about)),
        needs_provenance=carries or bool(returned),
        shadowed=any(r.shadow for r in about),
    )


def _linearize(policy: Policy) -> tuple[Policy, ...]:
    """``policy``'s layers, ancestors first, each once: a layer is known by its digest, so a
    diamond (two parents extending one grandparent) keeps one copy of the grandparent."""
    if not policy.extends:
        return (policy,)
    out: list[Policy] = []
    seen: set[str] = set()
    for parent in policy.extends:
        for layer in parent._layers:
            key = layer.digest
            if key not in seen:
                seen.add(key)
                out.append(layer)
    out.append(policy)
    return tuple(out)


def _layer_detail(found: Rule | None, speaks: bool, i: int, widened: int) -> str:
    if found is not None:
        return f"rule {found.id!r} matched" + (" (widen: true)" if found.widen else "")
    if i <= widened:
        return "a matching widen: true rule below stands in for it"
    if not speaks and i == 0:
        return "the root decides every tool, and no rule of it allows this one"
    if not speaks:
        return "no allow or ask rule about this tool for this agent"
    return "none of its allow or ask rules matched"


def _conclude(
    call: ToolCall,
    permit: Rule | None,
    escalate: Rule | None,
    misses: list[tuple[Rule, RuleResult]],
    trace: Trace | None,
) -> Decision:
    """The decision once the rules have spoken (shared by flat and layered evaluation)."""
    if permit is None:
        if misses:
            # the reasons the closest rules gave, without their names: the denial names
            # one rule, the default deny (``explain`` lists every rule considered)
            return _deny(call, DEFAULT_DENY, *_missed(misses))
        return _deny(
            call,
            DEFAULT_DENY,
            f"no rule allows tool {call.tool!r} for agent {call.agent!r}",
        )
    if escalate is not None:
        if trace is not None and escalate is not permit:
            trace.overridden(permit, escalate.id, "ask beats allow")
        return Decision(
            Effect.ASK,
            escalate.id,
            _text(escalate, call) or f"rule {escalate.id!r} requires a person's approval",
            tool=call.tool,
            agent=call.agent,
            kind=_kind(escalate),
        )
    return Decision(
        Effect.ALLOW,
        permit.id,
        _text(permit, call) or f"within rule {permit.id!r}",
        tool=call.tool,
        agent=call.agent,
        kind=_kind(permit),
    )


def _deny(call: ToolCall, rule: str, reason: str, model_reason: str | None = None) -> Decision:
    return Decision(
        Effect.DENY, rule, reason, tool=call.tool, agent=call.agent, model_reason=model_reason
    )


MODEL_REASON_LIMIT = 400
"""Characters of a denial's model-facing reason at most (the operator's has no limit)."""


def _missed(misses: list[tuple[Rule, RuleResult]]) -> tuple[str, str]:
    """The reasons the closest rules gave, without their names (the denial names one rule,
    the default deny; ``explain`` lists every rule considered), each once: the operator's
    in full, the model's short ones cut to ``MODEL_REASON_LIMIT``."""
    full = "; ".join(dict.fromkeys(res.reason for _, res in misses))
    short = "; ".join(dict.fromkeys(res.for_model for _, res in misses))
    if len(short) > MODEL_REASON_LIMIT:
        short = short[: MODEL_REASON_LIMIT - 3] + "..."
    return full, short


def _closed(rule: Rule, call: ToolCall) -> RuleResult | None:
    """A miss when ``call`` gives an argument ``rule`` does not scope (``unscoped_args="empty"``)."""
    name = rule.unscoped_given(call)
    if name is None:
        return None
    return RuleResult(
        Outcome.MISS,
        f"argument {name!r} is not scoped by rule {rule.id!r}, so it must be absent or empty",
    )


def _kind(rule: Rule) -> str:
    """Run-time grants compile to rules with ids ``grant:<id>``."""
    return "grant" if rule.id.startswith("grant:") else "rule"


def _text(rule: Rule, call: ToolCall) -> str:
    return rule.reason.replace("{tool}", call.tool) if rule.reason else ""


def _unique(what: str, ids: list[str], *, across_layers: bool = False) -> None:
    seen: set[str] = set()
    where = " in different layers" if across_layers else ""
    for i in ids:
        if i in seen:
            label = "name" if what == "role" else "id"
            raise PolicyError(
                f"two {what}s{where} have the {label} {i!r}; give one of them an explicit "
                f"{'id=' if label == 'id' else 'name'} to tell them apart"
            )
        seen.add(i)
