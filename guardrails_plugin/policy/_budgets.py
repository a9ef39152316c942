"""Budgets and rates: how much an agent may do, counted in the shared Store.

A budget measures something per call (one call, an argument's amount, distinct values of an
argument, tokens) or per model answer (the tokens a model used, their price: ``of="model"``,
read from the usage the model reports, see ``ModelUsage``) and keeps a running total per *partition* (run, thread, agent, tool, or
everything) that may not go past ``limit``. With ``window`` the total is over the last
``window`` seconds: a rate.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from .._errors import PolicyError
from .._events import ModelCall, ModelUsage, ToolCall, ToolResult
from ._patterns import NameSet, as_names

Partition = Literal["run", "thread", "agent", "tool", "global"]
_PARTITIONS: frozenset[str] = frozenset({"run", "thread", "agent", "tool", "global"})


class Measure(enum.StrEnum):
    """What a budget counts: calls, the sum of an argument, distinct values of one, or
    result tokens."""

    CALLS = "calls"
    SUM = "sum"
    DISTINCT = "distinct"
    TOKENS = "tokens"
    COST = "cost"

    def __str__(self) -> str:
        return self.value


class MeasureError(Exception):
    """A call's arguments cannot be measured by a budget (the guard denies: fail closed)."""


@dataclass(frozen=True, eq=False)
class Budget:
    """A limit on calls, amounts, distinct values or tokens, optionally over a time window.

    Prefer the constructors::

        Budget.calls(10, tools="search_*", per="run")
        Budget.sum("amount", 1000, tools="transfer", per="thread")
        Budget.distinct("to", 5, tools="send_email", items="email")
        Budget.tokens(50_000, of="results")
        Budget.tokens(200_000, of="model", per="thread")
        Budget.cost(5.0, prices={"gpt-4o-mini*": (0.15, 0.60), "gpt-4o*": (2.50, 10.00)})
        rate(5, seconds=60, tools="send_email")

    Model budgets (``of="model"``: tokens, or cost in dollars from ``prices``, per million
    input and output tokens, model-name globs, first match wins) are charged when an adapter
    records what a model answer used (``Guard.record_usage``), after the fact: once the total
    reaches ``limit``, the next model call and every tool call the budget covers are denied.
    """

    limit: float
    measure: Measure = Measure.CALLS
    arg: str | None = None
    tools: tuple[str, ...] = ("*",)
    agents: tuple[str, ...] = ("*",)
    per: tuple[Partition, ...] = ("run",)
    window: float | None = None
    of: Literal["args", "results", "model"] = "args"
    items: Literal["value", "email"] = "value"
    encoding: str = "o200k_base"
    id: str = ""
    prices: Any = ()
    """Cost budgets: ``((model glob, dollars per 1M input tokens, per 1M output), ...)``;
    a mapping ``{glob: (input, output)}`` is accepted and kept in this form."""
    _tools: NameSet = field(init=False, repr=False, compare=False)
    _agents: NameSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "measure", Measure(self.measure))
        object.__setattr__(self, "tools", as_names(self.tools, what="tools"))
        object.__setattr__(self, "agents", as_names(self.agents, what="agents"))
        per = (self.per,) if isinstance(self.per, str) else tuple(self.per)
        bad = [p for p in per if p not in _PARTITIONS]
        if bad or not per:
            raise PolicyError(
                f"budget per= must be some of {sorted(_PARTITIONS)}, found {list(per)!r}"
            )
        object.__setattr__(self, "per", per)
        if (
            isinstance(self.limit, bool)
            or not isinstance(self.limit, int | float)
            or not (self.limit >= 0 and math.isfinite(self.limit))
        ):
            raise PolicyError(f"budget limit must be a finite number >= 0, found {self.limit!r}")
        if self.window is not None and not (
            isinstance(self.window, int | float) and self.window > 0 and math.isfinite(self.window)
        ):
            raise PolicyError(
                f"budget window must be a positive number of seconds, found {self.window!r}"
            )
        if self.measure in (Measure.SUM, Measure.DISTINCT) and not self.arg:
            raise PolicyError(f"a {self.measure} budget needs arg=, the argument to measure")
        if self.measure is Measure.DISTINCT and self.window is not None:
            raise PolicyError("a distinct budget cannot have a window")
        if self.measure is Measure.COST:
            object.__setattr__(self, "of", "model")
        if self.of not in ("args", "results", "model"):
            raise PolicyError(f"budget of= must be 'args', 'results' or 'model', found {self.of!r}")
        if self.of == "results" and self.measure is not Measure.TOKENS:
            raise PolicyError("only token budgets can count results (of='results')")
        if self.of == "model":
            _check_model_budget(self)
        elif self.prices:
            raise PolicyError("only cost budgets take prices=")
        if self.items not in ("value", "email"):
            raise PolicyError(f"budget items= must be 'value' or 'email', found {self.items!r}")
        if not self.id:
            object.__setattr__(self, "id", self.default_id())
        object.__setattr__(self, "_tools", NameSet(self.tools))
        object.__setattr__(self, "_agents", NameSet(self.agents))

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def calls(cls, limit: int, **kwargs: Any) -> Budget:
        """At most ``limit`` calls of ``tools`` by ``agents`` per partition."""
        return cls(limit=limit, measure=Measure.CALLS, **_names(kwargs))

    @classmethod
    def sum(cls, arg: str, limit: float, **kwargs: Any) -> Budget:
        """The numbers passed in argument ``arg`` add up to at most ``limit``."""
        return cls(limit=limit, measure=Measure.SUM, arg=arg, **_names(kwargs))

    @classmethod
    def distinct(cls, arg: str, limit: int, **kwargs: Any) -> Budget:
        """At most ``limit`` distinct values of ``arg`` (``items="email"``: addresses in it)."""
        return cls(limit=limit, measure=Measure.DISTINCT, arg=arg, **_names(kwargs))

    @classmethod
    def tokens(cls, limit: int, **kwargs: Any) -> Budget:
        """At most ``limit`` tokens in tool arguments (``of="args"``), results, or the
        model's answers (``of="model"``: input plus output tokens, as the model reports)."""
        return cls(limit=limit, measure=Measure.TOKENS, **_names(kwargs))

    @classmethod
    def cost(cls, limit: float, *, prices: Any, **kwargs: Any) -> Budget:
        """At most ``limit`` dollars of model use: each answer's input and output tokens at
        ``prices`` (``{model glob: (dollars per 1M input tokens, per 1M output)}``)."""
        return cls(limit=limit, measure=Measure.COST, prices=prices, **_names(kwargs))

    # -- identity -------------------------------------------------------------------------

    def default_id(self) -> str:
        """The id a budget gets when none is given: what it counts, its limit and scope."""
        what = {
            Measure.CALLS: "calls",
            Measure.SUM: f"sum of {self.arg}",
            Measure.DISTINCT: f"distinct {self.arg}",
            Measure.TOKENS: f"tokens in {self.of}",
            Measure.COST: "cost of model",
        }[self.measure]
        tools = "" if self.tools == ("*",) else f" of {','.join(self.tools)}"
        agents = "" if self.agents == ("*",) else f" by {','.join(self.agents)}"
        window = f" per {self.window:g}s" if self.window else ""
        return f"{what}{tools}{agents} per {'+'.join(self.per)}{window}"

    def applies(self, agent: str, tool: str) -> bool:
        """Whether this budget counts calls of ``tool`` by ``agent``."""
        return self._tools.matches(tool) and self._agents.matches(agent)

    def key(
        self, event: ToolCall | ToolResult | ModelCall | ModelUsage, agent: str | None = None
    ) -> str:
        """The store key of the partition ``event`` falls in (``agent``: the partition the
        same event would fall in were it ``agent``'s, as a delegated call is charged to its
        delegators).

        ``run`` is the run id, else the thread id (a run with no ids shares ``-``)."""
        parts = []
        for p in self.per:
            if p == "run":
                parts.append(f"run={event.run_id or event.thread_id or '-'}")
            elif p == "thread":
                parts.append(f"thread={event.thread_id or '-'}")
            elif p == "agent":
                parts.append(f"agent={event.agent if agent is None else agent}")
            elif p == "tool":  # never for a model budget (checked when it is built)
                parts.append(f"tool={getattr(event, 'tool', '-')}")
        return f"budget/{self.id}/{'/'.join(parts) or 'global'}"

    # -- measuring ------------------------------------------------------------------------

    def amount(self, call: ToolCall) -> float:
        """How much ``call`` costs against this budget; ``MeasureError`` when unmeasurable."""
        if self.measure is Measure.CALLS:
            return 1.0
        if self.measure is Measure.COST or self.of == "model":
            return 0.0  # charged from the model's usage, not per call
        if self.measure is Measure.TOKENS:
            if self.of == "results":
                return 0.0
            from .._tokens import count_tokens

            return float(count_tokens(_canonical(call.args), self.encoding))
        assert self.arg is not None
        if self.arg not in call.args:
            raise MeasureError(f"argument {self.arg!r} is missing; budget {self.id!r} measures it")
        value = call.args[self.arg]
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise MeasureError(
                f"budget {self.id!r} expects a number in {self.arg!r}, found "
                f"{type(value).__name__} {value!r}"
            )
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise MeasureError(
                f"budget {self.id!r} expects a finite amount >= 0 in {self.arg!r}, found {value!r}"
            )
        return number

    def used_by(self, usage: ModelUsage) -> float:
        """What a model answer's ``usage`` costs against this model budget (tokens, or
        dollars); ``MeasureError`` when a cost budget has no price for the model."""
        if self.measure is Measure.TOKENS:
            return float(usage.input_tokens + usage.output_tokens)
        for pattern, per_input, per_output in self.prices:
            if NameSet((pattern,)).matches(usage.model):
                return (
                    float(usage.input_tokens * per_input + usage.output_tokens * per_output) / 1e6
                )
        raise MeasureError(f"budget {self.id!r} has no price for model {usage.model!r}")

    def members(self, call: ToolCall) -> tuple[str, ...]:
        """The distinct values ``call`` adds (distinct budgets)."""
        assert self.arg is not None
        if self.arg not in call.args:
            raise MeasureError(f"argument {self.arg!r} is missing; budget {self.id!r} counts it")
        value = call.args[self.arg]
        if self.items == "email":
            from ..scopes.emails import addresses_in

            try:
                return tuple(sorted(set(addresses_in(value))))
            except Exception as exc:
                raise MeasureError(
                    f"budget {self.id!r}: cannot read addresses in {self.arg!r}: {exc}"
                ) from exc
        values: Iterable[Any] = value if isinstance(value, list | tuple) else (value,)
        out = set()
        for v in values:
            if not isinstance(v, str | int) or isinstance(v, bool):
                raise MeasureError(
                    f"budget {self.id!r} counts strings or integers in {self.arg!r}, found {v!r}"
                )
            out.add(str(v))
        return tuple(sorted(out))

    def to_dict(self) -> dict[str, Any]:
        """The budget as a policy file writes it (``Policy.from_dict`` reads it back)."""
        data: dict[str, Any] = {"id": self.id}
        if self.measure is Measure.CALLS:
            data["calls" if self.window is None else "rate"] = self.limit
        elif self.measure is Measure.SUM:
            data["sum"] = {"arg": self.arg, "limit": self.limit}
        elif self.measure is Measure.DISTINCT:
            data["distinct"] = {"arg": self.arg, "limit": self.limit, "items": self.items}
        elif self.measure is Measure.COST:
            prices = {p: [i, o] for p, i, o in self.prices}
            data["cost"] = {"limit": self.limit, "prices": prices}
        else:
            data["tokens"] = {"limit": self.limit, "of": self.of, "encoding": self.encoding}
        if self.tools != ("*",):
            data["tools"] = list(self.tools)
        if self.agents != ("*",):
            data["agents"] = list(self.agents)
        data["per"] = list(self.per)
        if self.window is not None:
            data["window"] = self.window
        return data

    def __repr__(self) -> str:
        return f"Budget({self.id!r}, limit={self.limit:g})"


def _check_model_budget(budget: Budget) -> None:
    """A model budget counts answers, not calls: no tool, no argument, no ``per="tool"``;
    a cost budget needs prices (and a price per model name glob)."""
    if budget.measure not in (Measure.TOKENS, Measure.COST):
        raise PolicyError("only token and cost budgets can count model use (of='model')")
    if budget.tools != ("*",) or "tool" in budget.per or budget.window is not None:
        raise PolicyError(
            "a model budget counts a model's answers: no tools=, per='tool' or window="
        )
    raw = budget.prices
    items = list(raw.items()) if isinstance(raw, Mapping) else list(raw or ())
    prices: list[tuple[str, float, float]] = []
    for item in items:
        item = tuple(item) if isinstance(item, list | tuple) else item
        try:
            if len(item) == 3:
                pattern, per_input, per_output = item[0], item[1], item[2]
            else:
                pattern, (per_input, per_output) = item
        except (TypeError, ValueError):
            raise PolicyError(
                f"budget prices: expected model glob -> (input, output) per 1M tokens, "
                f"found {item!r}"
            ) from None
        for value in (per_input, per_output):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and value >= 0)
            ):
                raise PolicyError(f"budget prices for {pattern!r}: {value!r} is not a price >= 0")
        if not isinstance(pattern, str) or not pattern:
            raise PolicyError(f"budget prices: a model glob must be a string, found {pattern!r}")
        prices.append((pattern, float(per_input), float(per_output)))
    if budget.measure is Measure.COST and not prices:
        raise PolicyError("a cost budget needs prices= (model glob -> (input, output) per 1M)")
    if budget.measure is Measure.TOKENS and prices:
        raise PolicyError("only cost budgets take prices=")
    object.__setattr__(budget, "prices", tuple(prices))


def rate(limit: int, *, seconds: float, **kwargs: Any) -> Budget:
    """At most ``limit`` calls in any ``seconds``-long sliding window."""
    kwargs.setdefault("per", ("run",))
    return Budget(limit=limit, measure=Measure.CALLS, window=seconds, **_names(kwargs))


def _names(kwargs: dict[str, Any]) -> dict[str, Any]:
    for key in ("tools", "agents"):
        if key in kwargs:
            kwargs[key] = as_names(kwargs[key], what=key)
    if isinstance(kwargs.get("per"), str):
        kwargs["per"] = (kwargs["per"],)
    return kwargs


def _canonical(args: Any) -> str:
    return json.dumps(dict(args), sort_keys=True, default=str, ensure_ascii=False)
