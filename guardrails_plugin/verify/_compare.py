"""Policy diffs and deep lint, both as solver questions.

``diff(old, new)``: the regions where the two policies decide differently — for each change
of effect (deny to allow, deny to ask, ask to allow: NEW widens; the reverse: NEW narrows),
one region per tool, each with a concrete example call replayed through both engines.

``deep_lint`` (rules that can never fire, and the like) is in ``_lint.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._events import ToolCall
from ..policy import Policy
from ._encode import ALLOW, ASK, DENY, EFFECTS, Encoder
from ._values import concrete, text
from ._verifier import minimize, replay
from ._z3 import RLIMIT, TIMEOUT, check, gave_up, limit, z3

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


def diff(
    old: Policy,
    new: Policy,
    *,
    per_change: int = 20,
    rlimit: int = RLIMIT,
    timeout: float | None = TIMEOUT,
) -> Diff:
    """Where ``new`` decides differently from ``old`` (see the module docstring). Every
    example is replayed through both engines; one the engines do not confirm (it rests on
    an over-approximated scope) is not reported, and the change it was found for is then
    listed in ``Diff.unsettled`` unless the search ended with the solver proving no
    other call exists; so is every change the solver gave up on. ``rlimit`` bounds each
    solver call by z3's resource count (the same answer on any machine; ``0``: no limit),
    ``timeout`` (seconds, ``None``: none) is a last-resort wall-clock ceiling."""
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
            solver = limit(Z.Solver(), rlimit, timeout)
            solver.add(*call.domain, call.agent != "", call.tool != "")
            solver.add(e_old == before, e_new == after)
            pair = (EFFECTS[before], EFFECTS[after])
            misses: dict[str, int] = {}
            for _ in range(per_change):
                verdict = check(solver)
                if verdict == Z.unknown:
                    unsettled.append(f"{change}: the solver gave up ({gave_up(solver)})")
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
