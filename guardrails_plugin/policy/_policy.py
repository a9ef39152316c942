"""A policy: rules, budgets and data flows, validated and compiled when it is built."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._decision import Decision, Effect
from .._errors import PolicyError, PolicyFileError
from .._events import ToolCall
from ..scopes import Provenance
from ._budgets import Budget
from ._files import PolicyParts, parts_from_data, parts_from_file
from ._flows import DataFlow
from ._lint import lint, open_recipients
from ._patterns import NameSet
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
    ``allow``. ``unscoped_args`` says what an ``allow`` or ``ask`` rule (or grant) that scopes
    some arguments says about the arguments it does not mention: ``"any"`` (any value) or
    ``"empty"`` (each must be absent, ``None``, ``""`` or ``[]``; so a grant that scopes
    ``to`` also keeps ``cc`` and ``bcc`` empty). Rules without ``args`` permit the whole tool
    either way. Rules are compiled into a per-(agent, tool) index, so a decision looks at the
    few rules about that tool only.
    """

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        *,
        budgets: Iterable[Budget] = (),
        flows: Iterable[DataFlow] = (),
        name: str = "policy",
        version: str = "1",
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
        _unique("rule", [r.id for r in self.rules] + [f.id for f in self.flows])
        _unique("budget", [b.id for b in self.budgets])
        self._all_rules = self.rules + tuple(f.rule() for f in self.flows)
        self._sources = NameSet([s for f in self.flows for s in f.sources] or ["\0none"])
        self._result_budgets = tuple(b for b in self.budgets if b.of == "results")
        self._model_budgets = tuple(b for b in self.budgets if b.of == "model")
        self.tracked: frozenset[str] = frozenset(t for r in self.rules for t in r.returned_tools)
        """Tools whose results the guard fingerprints for ``Returned`` scopes (rules only:
        a grant's ``Returned`` scope sees the tools the policy's rules track)."""
        self.carries = any(f.carries for f in self.flows)
        """Whether untrusted results are fingerprinted (a flow with ``carries``)."""
        self._declassifying = frozenset(f.id for f in self.flows if f.carries)
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    # -- compiled lookups -----------------------------------------------------------------

    def bucket(self, agent: str, tool: str) -> _Bucket:
        """The rules about calls of ``tool`` by ``agent``, in policy order (computed once per pair,
        then cached)."""
        key = (agent, tool)
        found = self._buckets.get(key)
        if found is None:
            rules = [r for r in self._all_rules if r.about(agent, tool)]
            found = _Bucket(
                denies=tuple(r for r in rules if r.effect is RuleEffect.DENY),
                asks=tuple(r for r in rules if r.effect is RuleEffect.ASK),
                allows=tuple(r for r in rules if r.effect is RuleEffect.ALLOW),
                budgets=tuple(b for b in self.budgets if b.applies(agent, tool)),
                needs_taint=any(r.tainted_by for r in rules),
                returned=(returned := tuple(sorted({t for r in rules for t in r.returned_tools}))),
                carries=(carries := any(r.carries for r in rules)),
                needs_provenance=carries or bool(returned),
            )
            if len(self._buckets) >= _CACHE_LIMIT:
                self._buckets.clear()
            self._buckets[key] = found
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
        outright. Tools that are not visible are hidden from the model."""
        b = self.bucket(agent, tool)
        if any(r.unconditional for r in b.denies):
            return False
        return any(r.permits for r in (*b.asks, *b.allows)) or any(
            r.about(agent, tool) for r in extra
        )

    # -- deciding -------------------------------------------------------------------------

    def evaluate(
        self,
        call: ToolCall,
        tainted: frozenset[str] = frozenset(),
        extra: Sequence[Rule] = (),
        provenance: Provenance | None = None,
    ) -> Decision:
        """Decide ``call`` on the rules alone (no budgets, no store): pure and fast.

        ``tainted`` holds the sources whose content entered the run; ``extra`` holds rules
        from run-time grants for this agent; ``provenance`` what the run's results said
        (for ``Returned`` scopes and flows with ``carries``).
        """
        if not call.readable:
            problem = call.problem or (
                f"expected an object of named arguments, found {type(call.raw_args).__name__} "
                f"{call.raw_args!r:.200}"
            )
            return _deny(call, MALFORMED, f"cannot read the arguments of {call.tool!r}: {problem}")
        b = self.bucket(call.agent, call.tool)
        for r in b.denies:
            res = r.evaluate(call, tainted, provenance)
            if res.outcome is Outcome.MATCH:
                return _deny(call, r.id, _text(r, call) or f"forbidden by rule {r.id!r}")
            if res.outcome is Outcome.ERROR:
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
        closed = self._closed
        for r in asks:
            res = r.evaluate(call, tainted, provenance)
            if closed and res.outcome is Outcome.MATCH and r.args and r.permits:
                res = _closed(r, call) or res
            if res.outcome is Outcome.MATCH:
                escalate = escalate or r
                if r.permits:
                    permit = permit or r
            elif res.outcome is Outcome.ERROR:
                return _deny(
                    call, r.id, f"fail closed: {res.reason}", f"fail closed: {res.for_model}"
                )
            elif r.permits:
                misses.append((r, res))
        if permit is None:
            for r in allows:
                res = r.evaluate(call, tainted, provenance)
                if closed and res.outcome is Outcome.MATCH and r.args:
                    res = _closed(r, call) or res
                if res.outcome is Outcome.MATCH:
                    permit = r
                    break
                misses.append((r, res))
        if permit is None:
            if misses:
                return _deny(call, DEFAULT_DENY, *_missed(misses))
            return _deny(
                call,
                DEFAULT_DENY,
                f"no rule allows tool {call.tool!r} for agent {call.agent!r}",
            )
        if escalate is not None:
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
        """The compiled policy as plain data in the policy-file shape (what ``lint`` prints)."""
        data: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.unscoped_args != "any":
            data["unscoped_args"] = self.unscoped_args
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
        within limits); ``imports`` as in :meth:`from_dict`."""
        return cls._assemble(parts_from_file(path, imports=imports), path)

    @classmethod
    def _assemble(cls, parts: PolicyParts, source: str) -> Policy:
        try:
            return cls(
                parts.rules,
                budgets=parts.budgets,
                flows=parts.flows,
                name=parts.name,
                version=parts.version,
                unscoped_args=parts.unscoped_args,
            )
        except PolicyError as exc:
            raise PolicyFileError(source, "policy", str(exc)) from exc

    def lint(self) -> list[str]:
        """Warnings about a policy that is valid but probably not what was meant (rules an
        outright deny makes useless, budgets of 0, ``cc`` open next to a scoped ``to``); linear
        in the rules (see ``_lint.py``)."""
        found = lint(self.rules, self.budgets)
        return found + self.open_arguments(self.rules)

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
        return check_tools(self.rules, tools, agent=agent)

    def __repr__(self) -> str:
        return (
            f"Policy(name={self.name!r}, rules={len(self.rules)}, budgets={len(self.budgets)}, "
            f"flows={len(self.flows)})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


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


def _unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise PolicyError(
                f"two {what}s have the id {i!r}; give one of them an explicit id= to tell them apart"
            )
        seen.add(i)
