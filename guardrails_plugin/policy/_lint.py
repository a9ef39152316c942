"""Lint: warnings about a valid policy that probably does not say what was meant.

The main check, "rule R can never apply: rule D denies it outright", asks for every allow or
ask rule whether some unconditional deny covers all its tools and all its agents. Asked
pairwise that is quadratic in the rules (minutes at 50,000 rules); here the unconditional
denies are indexed once by what their tool patterns cover, so each rule looks up only the
denies that could cover its first tool:

- exact names and whole patterns, in a dict (``deny: "delete_*"`` covers ``delete_*``);
- prefix globs (``"delete_*"``) by their stem: a name or glob is looked up by each of its
  prefixes;
- ``"*"``: covers everything;
- ``"*"`` followed by literal text (``"*_admin"``) by that suffix: a name is looked up by
  each of its suffixes;
- other globs (``"user_?"``, ``"a*b"``) by the literal text before their first wildcard,
  tested with the glob itself; the rest (a wildcard first, another later: ``"*_x?"``) are
  tested against every name that one regex of them all matches, so only a policy with many
  of those that match many names costs (names x such globs).

The candidates are then checked against the rule's other tools and its agents with the same
``NameSet.covers`` the pairwise check used, and the first in policy order is named, so the
warnings are exactly those of the pairwise check.

The second check, "rule R never takes effect: rule O covers every call it allows", asks for
every allow rule whether an ``ask`` or a conditional ``deny`` (no ``when``, no data-flow
condition) always fires where the allow would: O covers R's tools and agents, and every
argument O scopes R scopes too, within O's scope (``Scope.within``, conservative). Ask and
deny outrank allow, so R is dead. It uses the same index, over those rules. This is simple
syntactic subsumption: rules that overlap in ways only a solver could show are not found.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Sequence

from ..scopes import Emails
from ._budgets import Budget
from ._patterns import is_glob
from ._rules import Rule, RuleEffect


def lint(rules: Sequence[Rule], budgets: Sequence[Budget]) -> list[str]:
    """Warnings about ``rules`` and ``budgets``, in policy order."""
    warnings: list[str] = []
    index = _DenyIndex(rules)
    for r in rules:
        if r.effect is RuleEffect.DENY:
            continue
        d = index.first_covering(r)
        if d is not None:
            warnings.append(f"rule {r.id!r} can never apply: rule {d.id!r} denies it outright")
    overrides = _OverrideIndex(rules)
    for r in rules:
        if r.effect is not RuleEffect.ALLOW or index.first_covering(r) is not None:
            continue
        o = overrides.first_covering(r)
        if o is not None:
            warnings.append(
                f"rule {r.id!r} never takes effect: rule {o.id!r} ({o.effect}) covers every "
                "call it allows (the same or wider tools, agents and argument scopes)"
            )
    for b in budgets:
        if b.limit == 0:
            warnings.append(f"budget {b.id!r} has limit 0: every call it covers is denied")
    return warnings


class _DenyIndex:
    """The unconditional deny rules of a policy, by the tool names and patterns they cover."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._denies: list[Rule] = [r for r in rules if self._keeps(r)]
        self._everything: list[int] = []
        self._by_pattern: defaultdict[str, list[int]] = defaultdict(list)
        self._by_stem: defaultdict[str, list[int]] = defaultdict(list)
        self._by_literal: defaultdict[str, list[int]] = defaultdict(list)
        self._by_suffix: defaultdict[str, list[int]] = defaultdict(list)
        scanned: list[str] = []
        for position, d in enumerate(self._denies):
            if d._tools.everything:
                self._everything.append(position)
                continue
            for pattern in d.tools:
                self._by_pattern[pattern].append(position)
                if not is_glob(pattern):
                    continue
                stem = pattern[:-1]
                if pattern.endswith("*") and not is_glob(stem):
                    self._by_stem[stem].append(position)
                elif pattern.startswith("*") and not is_glob(pattern[1:]):
                    self._by_suffix[pattern[1:]].append(position)
                else:
                    literal = pattern[: min(pattern.find(c) for c in "*?[" if c in pattern)]
                    self._by_literal[literal].append(position)
                    if not literal:
                        scanned.append(pattern)
        # One regex of the globs every name must be tried against: most names match none.
        self._scan = re.compile("|".join(map(fnmatch.translate, scanned)) if scanned else "(?!)")
        self._memo: dict[str, frozenset[int]] = {}

    @staticmethod
    def _keeps(rule: Rule) -> bool:
        """Whether the index holds ``rule``: here, the unconditional denies (not a role's:
        a role binds some agents only)."""
        return rule.effect is RuleEffect.DENY and rule.unconditional and not rule.roles

    @staticmethod
    def _also(candidate: Rule, rule: Rule) -> bool:
        """What else ``candidate`` must satisfy to cover ``rule`` (here, nothing)."""
        return True

    def first_covering(self, rule: Rule) -> Rule | None:
        """The first unconditional deny (in policy order) covering all of ``rule``'s tools
        and agents, if any."""
        if not self._denies:
            return None
        found = [self._covering(t) for t in rule.tools]
        found.sort(key=len)
        best: int | None = None
        for position in found[0]:
            if best is not None and position > best:
                continue
            if (
                all(position in other for other in found[1:])
                and all(self._denies[position]._agents.covers(a) for a in rule.agents)
                and self._also(self._denies[position], rule)
            ):
                best = position
        return None if best is None else self._denies[best]

    def _covering(self, tool: str) -> frozenset[int]:
        """Positions of the denies whose tools cover ``tool`` (``NameSet.covers``)."""
        found = self._memo.get(tool)
        if found is not None:
            return found
        positions = set(self._everything)
        positions.update(self._by_pattern.get(tool, ()))
        glob = is_glob(tool)
        by_stem, by_suffix, by_literal = self._by_stem, self._by_suffix, self._by_literal
        for k in range(len(tool) + 1):
            prefix = tool[:k]
            if prefix in by_stem:
                positions.update(by_stem[prefix])
            if glob:  # a wildcard pattern covers a name it matches, never another glob
                continue
            if tool[k:] in by_suffix:
                positions.update(by_suffix[tool[k:]])
            if prefix in by_literal and (k or self._scan.match(tool)):
                positions.update(
                    p for p in by_literal[prefix] if self._denies[p]._tools.matches(tool)
                )
        found = self._memo[tool] = frozenset(positions)
        return found


class _OverrideIndex(_DenyIndex):
    """The ask and deny rules with no condition but argument scopes, indexed like the
    unconditional denies: a candidate covers an allow whose arguments it scopes no more
    narrowly."""

    @staticmethod
    def _keeps(rule: Rule) -> bool:
        return (
            rule.effect is not RuleEffect.ALLOW
            and rule.when is None
            and not rule.tainted_by
            and (rule.effect is RuleEffect.ASK or bool(rule.args))
        )

    @staticmethod
    def _also(candidate: Rule, rule: Rule) -> bool:
        for name, wide in candidate.args.items():
            narrow = rule.args.get(name)
            if narrow is None:
                return False
            try:
                if not (narrow == wide or narrow.within(wide)):
                    return False
            except Exception:  # a scope that cannot compare: not shown to be covered
                return False
        return True


def _is_email(scope: object) -> bool:
    inner = getattr(scope, "scope", scope)  # optional(...) wraps the scope
    return isinstance(inner, Emails)


RECIPIENT_ARGS = frozenset({"to", "recipient", "recipients", "to_addresses", "emails"})
"""Argument names that say who a message goes to."""
COPY_ARGS = ("cc", "bcc")
"""Arguments that usually sit next to them and send the message elsewhere too."""


def open_recipients(rule: Rule) -> str | None:
    """A warning when a permitting ``rule`` (or grant) scopes a recipient argument (``to``,
    ``recipients``, ...) with an email scope but leaves ``cc`` or ``bcc`` unscoped: under
    ``unscoped_args: any`` a tool that takes them sends the message anywhere they say."""
    if rule.effect is RuleEffect.DENY or not rule.permits:
        return None
    scoped_mail = sorted(
        n for n in RECIPIENT_ARGS.intersection(rule.args) if _is_email(rule.args[n])
    )
    if not scoped_mail:
        return None
    missing = [name for name in COPY_ARGS if name not in rule.args]
    if not missing:
        return None
    scoped = scoped_mail[0]
    return (
        f"rule {rule.id!r} scopes {scoped!r} but not {', '.join(map(repr, missing))}: if "
        f"{'/'.join(rule.tools)} takes them, they are open; scope them with optional: true, or "
        "set unscoped_args: empty"
    )
