"""Concrete calls a policy's own names suggest: a rule's tool and agents, and for each of its
scoped arguments values built from what the scope lists (its hosts, mail domains, roots,
values, bounds, the strings its regular expression spells).

``deep_lint`` runs them through the engine and the encoding before asking the solver
anything: a call the engine decides as the encoding does *shows* a question satisfiable,
and most questions about a real policy are. Nothing here proves anything unsatisfiable;
a scope no sample fits just leaves its questions to the solver.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import itertools
import math
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

from .._events import ToolCall
from ..policy import Rule
from ..scopes import Emails, Not, Number, OneOf, OptionalScope, Paths, Pattern, Scope, Urls
from ._encode import _witness
from ._values import FRESH, NOWHERE

_sre_c: Any = __import__("re._constants", fromlist=["_"])
_sre_p: Any = __import__("re._parser", fromlist=["_"])

PER_RULE = 6
"""Samples built per rule at most."""
FRESH_AGENT = "x0-agent"
"""An agent name no policy lists."""
_OTHERS: tuple[Any, ...] = (
    FRESH,
    f"https://{NOWHERE}/",
    f"/{FRESH}-nowhere",
    f"{FRESH}@{NOWHERE}",
    0,
    -1,
    None,
)


def samples(rule: Rule, agents: Iterable[str]) -> Iterator[tuple[ToolCall, tuple[str, ...]]]:
    """Up to ``PER_RULE`` calls that may match ``rule``, each with the run's untrusted
    sources (one the rule's data flow names, if it has one): its first tool, an agent it
    speaks about (``agents``: names or globs the policy lists elsewhere, tried when the
    rule speaks about them), and values each scope accepts (``Scope.check``), the first
    ones first."""
    tool = instance(rule.tools[0])
    names = [instance(a) for a in rule.agents if a != "*"]
    members = getattr(rule, "_members", None)
    if members is not None:
        names = [instance(a) for a in members.patterns]
    if "*" in rule.agents and members is None:
        names += [*sorted({instance(a) for a in agents}), FRESH_AGENT]
    names = [a for a in dict.fromkeys(names) if rule.for_agent(a)]
    if not names:
        return
    per_arg: list[list[tuple[bool, Any]]] = []
    for scope in rule.args.values():
        values = [(True, v) for v in values_for(scope) if plain(v) and _accepts(scope, v)][:3]
        if type(scope) is OptionalScope:
            values.append((False, None))
        if not values:
            return
        per_arg.append(values)
    first = tuple(values[0] for values in per_arg)
    tried = [(a, first) for a in names]
    tried += [(names[0], combo) for combo in itertools.product(*per_arg)]
    tainted = (instance(rule.tainted_by[0]),) if rule.tainted_by else ()
    seen: set[str] = set()
    for agent, combo in tried:
        if repr((agent, combo)) in seen:
            continue
        seen.add(repr((agent, combo)))
        if len(seen) > PER_RULE:
            return
        args = {n: v for n, (present, v) in zip(rule.args, combo, strict=True) if present}
        yield ToolCall(tool, args, agent=agent), tainted


def instance(pattern: str) -> str:
    """A name the glob ``pattern`` matches (``pattern`` itself when it is no glob)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(FRESH)
        elif c == "?":
            out.append("x")
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append("[")
            else:
                body = pattern[i + 1 : end]
                choice = next(
                    (ch for ch in "x0aZ_-." if fnmatch.fnmatchcase(ch, pattern[i : end + 1])),
                    body[-1] if not body.startswith("!") else "x",
                )
                out.append(choice)
                i = end
        else:
            out.append(c)
        i += 1
    name = "".join(out)
    return name if fnmatch.fnmatchcase(name, pattern) else pattern


def values_for(scope: Scope) -> list[Any]:
    """Values ``scope`` may accept, the likeliest first (the caller checks them)."""
    if isinstance(scope, OptionalScope):
        return values_for(scope.scope)
    if isinstance(scope, Not):
        return list(_OTHERS)
    if isinstance(scope, OneOf):
        return list(scope.spec()["values"])
    if isinstance(scope, Number):
        return _numbers(scope.spec())
    if isinstance(scope, Pattern):
        found = spell(scope.spec()["regex"])
        return [] if found is None else [found]
    if isinstance(scope, Paths):
        roots = [r.rstrip("/") or "/" for r in scope.roots if r.startswith("/")]
        return [*(f"{r.rstrip('/')}/{FRESH}" for r in roots), *roots]
    if isinstance(scope, Urls):
        spec = scope.spec()
        scheme = sorted(spec["schemes"])[0] if spec["schemes"] else "https"
        ports = spec["ports"]
        port = "" if ports is None else f":{sorted(ports)[0]}"
        hosts: list[str] = []
        for h in spec["hosts"]:
            if h.startswith("*."):
                hosts.append(f"{FRESH}.{h[2:]}")
            else:
                hosts.append(f"[{h}]" if ":" in h else h)
        for cidr in spec["networks"]:
            addr = ipaddress.ip_network(cidr).network_address
            hosts.append(f"[{addr}]" if addr.version == 6 else str(addr))
        return [f"{scheme}://{h}{port}/" for h in hosts]
    if isinstance(scope, Emails):
        spec = scope.spec()
        out = list(spec["addresses"])
        for d in spec["domains"]:
            out.append(f"{FRESH}@{FRESH}.{d[2:]}" if d.startswith("*.") else f"{FRESH}@{d}")
        return out
    example = _witness(scope)
    return [*([] if example is None else [example]), *_OTHERS]


def _numbers(spec: dict[str, Any]) -> list[Any]:
    lo = spec.get("ge", spec.get("gt"))
    hi = spec.get("le", spec.get("lt"))
    out: list[Any] = []
    if lo is not None:
        out += [lo, math.floor(lo) + 1]
    if hi is not None:
        out += [hi, math.ceil(hi) - 1]
    if lo is not None and hi is not None:
        out.append((lo + hi) / 2)
    out += [1, 0]
    if spec.get("integer"):
        out = [int(v) for v in out if float(v).is_integer()]
    return out


def spell(regex: str) -> str | None:
    """A short string ``regex`` may fully match (the caller checks it), or ``None``."""
    try:
        tree = _sre_p.parse(regex)
    except re.error:
        return None
    return _spell(tree)


def _spell(items: Any) -> str | None:
    out: list[str] = []
    for op, av in items:
        if op is _sre_c.LITERAL:
            out.append(chr(av))
        elif op is _sre_c.NOT_LITERAL:
            out.append("x" if av != ord("x") else "y")
        elif op is _sre_c.ANY:
            out.append("x")
        elif op is _sre_c.IN:
            ch = _first_in(av)
            if ch is None:
                return None
            out.append(ch)
        elif op in (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT, _sre_c.POSSESSIVE_REPEAT):
            low, _, sub = av
            part = _spell(sub)
            if part is None:
                return None
            out.append(part * max(low, 1) if low or part else "")
        elif op is _sre_c.SUBPATTERN:
            part = _spell(av[-1])
            if part is None:
                return None
            out.append(part)
        elif op is _sre_c.BRANCH:
            part = _spell(av[1][0])
            if part is None:
                return None
            out.append(part)
        elif op is _sre_c.AT:
            continue
        else:
            return None
    return "".join(out)


def _first_in(av: Any) -> str | None:
    for op, x in av:
        if op is _sre_c.NEGATE:
            return None
        if op is _sre_c.LITERAL:
            return chr(x)
        if op is _sre_c.RANGE:
            return chr(x[0])
        if op is _sre_c.CATEGORY:
            return {
                _sre_c.CATEGORY_DIGIT: "0",
                _sre_c.CATEGORY_WORD: "a",
                _sre_c.CATEGORY_SPACE: " ",
            }.get(x)
    return None


def plain(value: Any) -> bool:
    """Whether ``value`` stays inside what the encoding assumes of real values: text in
    printable ASCII, and no symbolic link on a path it names."""
    if not isinstance(value, str):
        return True
    if not (value.isascii() and value.isprintable()):
        return False
    return not value.startswith("/") or os.path.realpath(value) == os.path.normpath(value)


def _accepts(scope: Scope, value: Any) -> bool:
    try:
        scope.check(value)
    except Exception:
        return False
    return True
