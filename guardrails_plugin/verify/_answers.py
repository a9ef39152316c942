"""The answers of the verifier: ``Result``, ``Counterexample`` and what a counterexample is
made of (``Step`` hand-offs, ``Repeated`` calls of a sequence, ``Delegation`` steps)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._events import ToolCall
from ._encode import ALLOW, ASK, DENY
from ._z3 import RESOURCE, TIME, gave_up

Status = Literal["proven", "refuted", "unknown"]
EFFECT_CODE = {"deny": DENY, "ask": ASK, "allow": ALLOW}


@dataclass(frozen=True)
class Step:
    """One hand-off on the way to a counterexample: ``agent`` called ``tool`` with
    ``args`` and the work moved to ``to``; the engine said ``effect``."""

    agent: str
    tool: str
    args: Mapping[str, Any]
    to: str
    effect: str

    def __str__(self) -> str:
        return f"{self.agent} --{self.tool}({_args(self.args)}) [{self.effect}]--> {self.to}"


@dataclass(frozen=True)
class Repeated:
    """Calls of a sequence (a counterexample to a bound): ``times`` identical calls of
    ``tool`` by ``agent`` with ``args``, each permitted with ``effect`` in turn. ``fresh``
    says where they run: ``""`` all in the sequence's one run, ``"run"`` each in a run of
    its own (of one thread), ``"thread"`` each in a thread of its own. ``under`` names the
    agent whose delegated grant (``Counterexample.delegations``) the calls are made with
    (``""``: the agent's own authority)."""

    agent: str
    tool: str
    args: Mapping[str, Any]
    times: int
    effect: str
    fresh: str = ""
    under: str = ""

    def call(self, i: int = 0) -> ToolCall:
        """The ``i``-th of these calls (``i`` counts over the whole sequence) as an event."""
        run, thread = "r0", "t0"
        if self.fresh:
            run = f"r{i}"
            thread = f"t{i}" if self.fresh == "thread" else "t0"
        return ToolCall(self.tool, dict(self.args), agent=self.agent, run_id=run, thread_id=thread)

    def __str__(self) -> str:
        where = {
            "": "",
            "run": ", each in a run of its own",
            "thread": ", each in a thread of its own",
        }
        grant = f", under a grant from {self.under!r}" if self.under else ""
        return (
            f"{self.times} x agent {self.agent!r} calls {self.tool}({_args(self.args)}) "
            f"[{self.effect}{grant}]{where[self.fresh]}"
        )


@dataclass(frozen=True)
class Delegation:
    """One delegation of a chain: ``delegator`` (holding rule ``rule``, or the grant
    delegated to it before) hands ``agent`` a grant of ``tools`` with argument scopes
    ``args`` and ``effect`` (what ``Guard.delegate`` accepts)."""

    delegator: str
    agent: str
    tools: tuple[str, ...]
    args: Mapping[str, Any]
    effect: str
    rule: str

    def __str__(self) -> str:
        scoped = f" with {_args(self.args)}" if self.args else ""
        return (
            f"{self.delegator} delegates {', '.join(self.tools)}{scoped} ({self.effect}, "
            f"from rule {self.rule!r}) to {self.agent}"
        )


@dataclass(frozen=True)
class Counterexample:
    """A call that breaks a property, as the engine decided it.

    ``tainted`` names the untrusted sources whose results entered the run, ``carries`` says
    the call's arguments carry that content, ``chain`` the hand-offs that brought the work to
    ``agent``; ``effect`` and ``rule`` are the engine's decision when replayed."""

    agent: str
    tool: str
    args: Mapping[str, Any]
    effect: str
    rule: str
    tainted: tuple[str, ...] = ()
    carries: bool = False
    chain: tuple[Step, ...] = ()
    sequence: tuple[Repeated, ...] = ()
    """For a bound: the calls, in order, that the guard permitted (the last is this call)."""
    delegations: tuple[Delegation, ...] = ()
    """For a delegation property: the delegations that gave ``agent`` its grant; for a
    bound: those made before the sequence (``replay_sequence(policy, sequence,
    delegations)`` replays it)."""

    def call(self) -> ToolCall:
        """The counterexample as the engine's event."""
        return ToolCall(self.tool, dict(self.args), agent=self.agent)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``--json``)."""
        return {
            "agent": self.agent,
            "tool": self.tool,
            "args": dict(self.args),
            "effect": self.effect,
            "rule": self.rule,
            "tainted": list(self.tainted),
            "carries": self.carries,
            "chain": [
                {
                    "agent": s.agent,
                    "tool": s.tool,
                    "args": dict(s.args),
                    "to": s.to,
                    "effect": s.effect,
                }
                for s in self.chain
            ],
            "sequence": [
                {
                    "agent": c.agent,
                    "tool": c.tool,
                    "args": dict(c.args),
                    "times": c.times,
                    "effect": c.effect,
                    "fresh": c.fresh,
                    "under": c.under,
                }
                for c in self.sequence
            ],
            "delegations": [
                {
                    "delegator": d.delegator,
                    "agent": d.agent,
                    "tools": list(d.tools),
                    "args": {k: repr(v) for k, v in d.args.items()},
                    "effect": d.effect,
                    "rule": d.rule,
                }
                for d in self.delegations
            ],
        }

    def __str__(self) -> str:
        lines = [str(s) for s in self.chain]
        lines += [str(d) for d in self.delegations]
        if self.sequence:
            n = sum(c.times for c in self.sequence)
            lines.append(f"a sequence of {n} calls, each permitted in turn:")
            lines += ["  " + str(c) for c in self.sequence]
        taint = f" in a run tainted by {', '.join(self.tainted)}" if self.tainted else ""
        if self.tainted and self.carries:
            taint += " (its arguments carry that content)"
        lines.append(
            f"agent {self.agent!r} calls {self.tool}({_args(self.args)}){taint}: "
            f"{self.effect} by rule {self.rule!r}"
        )
        return "\n".join(lines)


def _args(args: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


@dataclass(frozen=True)
class Result:
    """The answer to one property.

    ``status``: ``proven`` (holds for every call; read ``assumptions`` for what a proof rests
    on), ``refuted`` (``counterexample`` breaks it, confirmed by the engine) or ``unknown``
    (``detail`` says why). ``approximated`` lists what the encoding over-approximates.
    ``limit`` says which limit an ``unknown`` met: ``"resource limit"`` (the verifier's
    ``rlimit``: the same answer on every machine; a larger one may settle it), ``"time
    limit"`` (the wall-clock ceiling: the machine was too slow or too loaded, so another
    run may answer), ``""`` (none: the encoding or the replay left it open)."""

    property: str
    status: Status
    counterexample: Counterexample | None = None
    assumptions: tuple[str, ...] = ()
    approximated: tuple[str, ...] = ()
    detail: str = ""
    seconds: float = 0.0
    limit: str = ""

    @builtins.property
    def holds(self) -> bool:
        """Whether the property was proven."""
        return self.status == "proven"

    def summary(self) -> str:
        """One line: the verdict (``holds, assuming ...`` when a proof rests on assumptions)."""
        if self.status == "proven":
            why = f" ({self.detail})" if self.detail else ""
            if self.assumptions:
                return f"holds, assuming {'; '.join(self.assumptions)}{why}"
            return f"proven{why}"
        if self.status == "refuted":
            return "refuted"
        if self.limit:
            return f"unknown ({self.limit}): {self.detail}"
        return f"unknown: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``--json``)."""
        return {
            "property": self.property,
            "status": self.status,
            "summary": self.summary(),
            "counterexample": None
            if self.counterexample is None
            else self.counterexample.to_dict(),
            "assumptions": list(self.assumptions),
            "approximated": list(self.approximated),
            "detail": self.detail,
            "limit": self.limit,
            "seconds": round(self.seconds, 4),
        }

    def __str__(self) -> str:
        text = f"{self.property}: {self.summary()}"
        if self.counterexample is not None:
            text += "\n" + "\n".join("  " + line for line in str(self.counterexample).splitlines())
        return text

    def __repr__(self) -> str:
        return f"Result({self.property!r}, status={self.status!r})"


def gave_up_result(
    prop: str, solver: Any, assumptions: Sequence[str] = (), approximated: Sequence[str] = ()
) -> Result:
    """The ``unknown`` answer of a check ``solver`` gave up on, naming the limit it met."""
    why = gave_up(solver)
    limited = why if why in (RESOURCE, TIME) else ""
    return Result(
        prop,
        "unknown",
        assumptions=tuple(assumptions),
        approximated=tuple(approximated),
        detail=f"the solver gave up ({why})",
        limit=limited,
    )
