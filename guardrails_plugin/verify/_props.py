"""The property language: what a person asks of a policy, one sentence each.

Grammar (words in capitals are names; ``[...]`` is optional; names and globs may be quoted)::

    property  := ("no agent calls" | "agent" AGENT "never calls") TOOL [with] [bound] [approval]
               | "agents together never call" TOOL [with] bound [approval]
               | "no delegation lets" ("agent" AGENT | "any agent") "call" TOOL [with] [approval]
               | "every call of" TOOL ["by" who1] [with] "is" ("denied" | "asked" | "allowed")
               | "no agent reaches" TOOL "." ARG "outside" VALUES [approval]
               | "untrusted content" ["from" TOOL] "never reaches" ("a sink" | TOOL) [approval]
               | "agent" AGENT "never reaches" ("agent" AGENT | TOOL [with] [approval])
    who1      := "agent" AGENT | AGENT
    with      := "with" cond ("and" cond)*
    bound     := "more than" N "times" [per] | "and"? "total" ARG (">" | ">=") N [per]
    per       := "per run" | "per thread" | "in total" | "ever"
    cond      := ARG ("<" | "<=" | ">" | ">=" | "=" | "==" | "!=") VALUE
               | ARG ("outside" | "inside") VALUES
               | ARG "matches" REGEX | ARG "is" ("absent" | "present")
    approval  := "without an ask" | "without approval"
    VALUES    := VALUE ("," VALUE)* | VALUE ("or" VALUE)*

``never calls`` means every such call is denied; ``without an ask`` / ``without approval``
narrows it to "never allowed without a person" (asks are fine). ``outside`` reads the
argument the way its scopes do: recipients' domains for an email argument (some recipient
outside every listed domain or its subdomains), the host for a URL, the normalized path
(not under any listed root) for a path, and otherwise the string itself (not one of the
values). ``agent A never reaches ...`` follows hand-offs: a call of ``handoff`` with
``to: B``, or of ``transfer_to_B``, that the policy does not deny, moves the work from A to
B, up to ``depth`` hand-offs.

A *bound* turns a property into one about a sequence of calls in one run (``per run``, the
default), one thread (its runs may differ) or anywhere (``in total``): "more than N times"
counts the calls (of one agent; ``agents together``: of all agents), ``total ARG > N`` sums
the argument's numbers over them (the condition is written among the ``with`` conditions:
``with reason = fraud and total amount > 5000``). A counterexample is a sequence of calls
the guard permits in order, budgets charged. ``no delegation lets agent X call TOOL``
asks whether some chain of delegations the policy's rules allow (``Guard.delegate``)
gives X a grant under which the call is permitted (the chain may be empty).
"""

from __future__ import annotations

import builtins
import re
import shlex
from dataclasses import dataclass, field

from .._errors import GuardrailsError


class PropertyError(GuardrailsError):
    """A property the language cannot read (the message says where)."""


@dataclass(frozen=True)
class Cond:
    """One condition on an argument of the call."""

    arg: str
    op: str
    values: tuple[object, ...] = ()

    def __str__(self) -> str:
        if self.op in ("absent", "present"):
            return f"{self.arg} is {self.op}"
        shown = ", ".join(map(repr, self.values))
        return f"{self.arg} {self.op} {shown}"


@dataclass(frozen=True)
class Property:
    """A parsed property (see the module docstring). ``kind`` is ``never``, ``every``,
    ``untrusted``, ``reach_agent`` or ``reach_tool``."""

    text: str
    kind: str
    tool: str = "*"
    agent: str | None = None
    target: str | None = None
    conds: tuple[Cond, ...] = ()
    effects: frozenset[str] = field(default_factory=lambda: frozenset({"allow", "ask"}))
    """The effects a counterexample has (``never``: what must not happen)."""
    sources: str | None = None
    count: int | None = None
    """A bound: the property is broken by more than ``count`` permitted calls."""
    total: tuple[str, str, float] | None = None
    """A bound: (argument, ``>`` or ``>=``, N): the sum of the argument over permitted calls."""
    per: str = "run"
    """Where a bound counts: ``run``, ``thread`` or ``total`` (anywhere)."""
    together: bool = False
    """A bound counts the calls of all agents together (else of one agent)."""

    @builtins.property
    def bounded(self) -> bool:
        """Whether the property is about a sequence of calls (a count or a total)."""
        return self.count is not None or self.total is not None

    def __str__(self) -> str:
        return self.text


_OPS = ("<=", ">=", "==", "!=", "<", ">", "=")


def _tokens(text: str) -> list[str]:
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars="<>=!,")
        lexer.whitespace_split = True
        lexer.wordchars += "*?[]./:@-_+~'^$()|{}\\"
        return list(lexer)
    except ValueError as exc:
        raise PropertyError(f"cannot read {text!r}: {exc}") from None


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.total: tuple[str, str, float] | None = None

    def peek(self, *words: str) -> bool:
        n = len(words)
        return [t.lower() for t in self.toks[self.i : self.i + n]] == list(words)

    def take(self, *words: str) -> bool:
        if self.peek(*words):
            self.i += len(words)
            return True
        return False

    def need(self, *words: str) -> None:
        if not self.take(*words):
            self.fail(f"expected {' '.join(words)!r}")

    def name(self, what: str) -> str:
        if self.i >= len(self.toks):
            self.fail(f"expected {what}")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def done(self) -> bool:
        return self.i >= len(self.toks)

    def fail(self, why: str) -> None:
        at = " ".join(self.toks[self.i : self.i + 3]) or "the end"
        raise PropertyError(f"cannot read property {self.text!r}: {why} at {at!r}")


def _value(tok: str) -> object:
    low = tok.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    for cast in (int, float):
        try:
            return cast(tok)
        except ValueError:
            pass
    return tok


def _values(r: _Reader) -> tuple[object, ...]:
    out = [_value(r.name("a value"))]
    while r.take(",") or r.take("or"):
        out.append(_value(r.name("a value")))
    return tuple(out)


def _conds(r: _Reader) -> tuple[Cond, ...]:
    if not r.take("with"):
        return ()
    out: list[Cond] = []
    while True:
        arg = r.name("an argument name")
        if (
            arg.lower() == "total"
            and r.i + 1 < len(r.toks)
            and r.toks[r.i + 1] in (">", ">=")
            and r.toks[r.i] not in (">", ">=", "<", "=", "!")
        ):
            if r.total is not None:
                r.fail("one total per property")
            summed = r.name("an argument name")
            op = r.name("> or >=")
            if op == ">" and r.take("="):
                op = ">="
            bound = _value(r.name("a number"))
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                r.fail("a total needs a number")
            r.total = (summed, op, float(bound))  # type: ignore[arg-type]
        elif r.take("outside"):
            out.append(Cond(arg, "outside", _values(r)))
        elif r.take("inside"):
            out.append(Cond(arg, "inside", _values(r)))
        elif r.take("matches"):
            regex = r.name("a regular expression")
            try:
                re.compile(regex)
            except re.error as exc:
                r.fail(f"bad regular expression: {exc}")
            out.append(Cond(arg, "matches", (regex,)))
        elif r.take("is", "absent"):
            out.append(Cond(arg, "absent"))
        elif r.take("is", "present"):
            out.append(Cond(arg, "present"))
        else:
            op = ""
            while r.i < len(r.toks) and set(r.toks[r.i]) <= set("<>=!") and len(op) < 2:
                op += r.toks[r.i]
                r.i += 1
            if op not in _OPS:
                r.fail("expected a comparison (< <= > >= = != outside inside matches is)")
            op = "==" if op == "=" else op
            value = _value(r.name("a value"))
            if op in ("<", "<=", ">", ">=") and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                r.fail(f"{op} needs a number")
            out.append(Cond(arg, op, (value,)))
        if not r.take("and"):
            return tuple(out)


def _bound(r: _Reader) -> tuple[int | None, str]:
    """``more than N times`` and where a bound counts (``per run`` by default)."""
    count: int | None = None
    if r.take("more", "than"):
        tok = r.name("a number of calls")
        try:
            count = int(tok)
        except ValueError:
            r.fail("expected a whole number of calls")
        if count is None or count < 0:
            r.fail("expected a whole number of calls >= 0")
        r.need("times")
    per = "run"
    if r.take("per", "run"):
        per = "run"
    elif r.take("per", "thread"):
        per = "thread"
    elif r.take("in", "total") or r.take("ever") or r.take("across", "runs"):
        per = "total"
    elif count is None and r.total is None:
        return None, per
    if count is None and r.total is None:
        r.fail("'per run', 'per thread' or 'in total' needs 'more than N times' or a total")
    return count, per


def _approval(r: _Reader) -> bool:
    return r.take("without", "an", "ask") or r.take("without", "approval")


def parse(text: str) -> Property:
    """Read one property (``PropertyError`` with the place it stopped making sense)."""
    if not isinstance(text, str) or not text.strip():
        raise PropertyError("an empty property")
    r = _Reader(text.strip())
    prop = _parse(r)
    if not r.done():
        r.fail("unexpected words")
    if r.total is not None and not prop.bounded:
        raise PropertyError(
            f"cannot read property {text.strip()!r}: a total belongs to 'never calls' properties"
        )
    return prop


def _parse(r: _Reader) -> Property:
    text = r.text
    if r.take("every", "call", "of"):
        tool = r.name("a tool")
        by: str | None = None
        if r.take("by"):
            r.take("agent")
            by = r.name("an agent")
        conds = _conds(r)
        r.need("is")
        word = r.name("denied, asked or allowed").lower()
        wanted = {"denied": "deny", "asked": "ask", "allowed": "allow"}.get(word)
        if wanted is None:
            r.fail("expected denied, asked or allowed")
        others = frozenset({"deny", "ask", "allow"} - {wanted})
        return Property(text, "never", tool, by, conds=conds, effects=others)
    if r.take("untrusted", "content"):
        sources = r.name("a source tool") if r.take("from") else None
        r.need("never", "reaches")
        tool = "*" if r.take("a", "sink") or r.take("any", "sink") else r.name("a tool")
        conds = _conds(r)
        approval = _approval(r)
        effects = frozenset({"allow"}) if approval else frozenset({"allow", "ask"})
        return Property(text, "untrusted", tool, conds=conds, effects=effects, sources=sources)
    if r.take("no", "agent", "reaches"):
        target = r.name("TOOL.ARG")
        tool, dot, arg = target.rpartition(".")
        if not dot or not tool or not arg:
            r.fail("expected TOOL.ARG (as in send_email.to)")
        r.need("outside")
        cond = Cond(arg, "outside", _values(r))
        effects = frozenset({"allow"}) if _approval(r) else frozenset({"allow", "ask"})
        return Property(text, "never", tool, None, conds=(cond,), effects=effects)
    if r.take("agents", "together", "never", "call"):
        tool = r.name("a tool")
        conds = _conds(r)
        count, per = _bound(r)
        if count is None and r.total is None:
            r.fail("'agents together' needs 'more than N times' or a total")
        effects = frozenset({"allow"}) if _approval(r) else frozenset({"allow", "ask"})
        return Property(
            text,
            "never",
            tool,
            None,
            conds=conds,
            effects=effects,
            count=count,
            total=r.total,
            per=per,
            together=True,
        )
    if r.take("no", "delegation", "lets"):
        who: str | None = None
        if not (r.take("any", "agent") or r.take("an", "agent")):
            r.need("agent")
            who = r.name("an agent")
        r.need("call")
        tool = r.name("a tool")
        conds = _conds(r)
        if r.total is not None:
            r.fail("a delegation property has no total")
        effects = frozenset({"allow"}) if _approval(r) else frozenset({"allow", "ask"})
        return Property(text, "delegation", tool, who, conds=conds, effects=effects)
    agent: str | None
    if r.take("no", "agent"):
        agent = None
    elif r.take("agent"):
        agent = r.name("an agent")
    else:
        r.fail(
            "a property starts with 'no agent', 'agent NAME', 'agents together', "
            "'no delegation', 'every call of' or 'untrusted content'"
        )
        raise AssertionError  # pragma: no cover
    if r.take("never", "calls") or (agent is None and r.take("calls")):
        tool = r.name("a tool")
        conds = _conds(r)
        count, per = _bound(r)
        effects = frozenset({"allow"}) if _approval(r) else frozenset({"allow", "ask"})
        return Property(
            text,
            "never",
            tool,
            agent,
            conds=conds,
            effects=effects,
            count=count,
            total=r.total,
            per=per,
        )
    if agent is not None and r.take("never", "reaches"):
        if r.take("agent"):
            return Property(text, "reach_agent", agent=agent, target=r.name("an agent"))
        tool = r.name("a tool")
        conds = _conds(r)
        effects = frozenset({"allow"}) if _approval(r) else frozenset({"allow", "ask"})
        return Property(text, "reach_tool", tool, agent, conds=conds, effects=effects)
    r.fail("expected 'never calls' or 'never reaches'")
    raise AssertionError  # pragma: no cover
