"""Data flow: untrusted content must not drive actions on the outside world unchecked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from .._errors import PolicyError
from ..scopes import Scope, arg_data
from ._patterns import as_names
from ._rules import Rule, RuleEffect, _put


@dataclass(frozen=True)
class DataFlow:
    """Once a ``sources`` tool (web fetch, inbox read, ...) returned content into a run, calls
    to ``sinks`` (send email, HTTP POST, payments, ...) are denied or need approval.

    The label sticks to the run (its thread, else its run id) and every agent in it::

        DataFlow(sources=["fetch_url", "read_inbox"], sinks=["send_email"], effect="ask")

    ``carries=True`` narrows it to sink calls one of whose arguments carries content an
    untrusted result brought in (by fingerprint: ``scopes/returned.py``); approving such a
    call declassifies that content for the rest of the run. ``args`` narrows it to sink
    calls whose scoped arguments are inside their scopes (as a ``deny`` rule's do). ``refs``
    records which settings a policy file wrote as ``{list: name}``, so the flow prints back
    as written::

        DataFlow(sources="read_inbox", sinks="send_email", carries=True,
                 args={"to": Emails(domains=["partner.com"])})
    """

    sources: tuple[str, ...]
    sinks: tuple[str, ...]
    effect: Literal["ask", "deny"] = "ask"
    id: str = ""
    carries: bool = False
    args: Mapping[str, Scope] = field(default_factory=dict)
    refs: tuple[tuple[tuple[str, ...], str], ...] = field(default=(), repr=False, compare=False)

    def __init__(
        self,
        sources: str | Iterable[str],
        sinks: str | Iterable[str],
        effect: Literal["ask", "deny"] = "ask",
        id: str = "",
        *,
        carries: bool = False,
        args: Mapping[str, Scope] | None = None,
        refs: Iterable[tuple[tuple[str, ...], str]] = (),
    ) -> None:
        if carries is not True and carries is not False:
            raise PolicyError(f"data flow 'carries' must be true or false, found {carries!r}")
        object.__setattr__(self, "carries", carries)
        object.__setattr__(self, "args", MappingProxyType(dict(args or {})))
        object.__setattr__(self, "refs", tuple(refs))
        object.__setattr__(self, "sources", as_names(sources, what="sources", default=()))
        object.__setattr__(self, "sinks", as_names(sinks, what="sinks", default=()))
        if effect not in ("ask", "deny"):
            raise PolicyError(f"data flow effect must be 'ask' or 'deny', found {effect!r}")
        object.__setattr__(self, "effect", effect)
        object.__setattr__(
            self, "id", id or f"flow {','.join(self.sources)} -> {','.join(self.sinks)}"
        )

    def rule(self) -> Rule:
        """The sink rule this flow compiles to."""
        return Rule(
            effect=RuleEffect(self.effect),
            tools=self.sinks,
            tainted_by=self.sources,
            id=self.id,
            permits=False,
            carries=self.carries,
            args=self.args,
            reason=(
                f"an argument carries untrusted content from {', '.join(self.sources)}; "
                "{tool} acts on the outside world"
                if self.carries
                else f"untrusted content from {', '.join(self.sources)} entered this run; "
                "{tool} acts on the outside world"
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """The flow rule as a policy file writes it (``Policy.from_dict`` reads it back)."""
        data: dict[str, Any] = {
            "id": self.id,
            "sources": list(self.sources),
            "sinks": list(self.sinks),
            "effect": self.effect,
        }
        if self.carries:
            data["carries"] = True
        if self.args:
            data["args"] = {name: arg_data(s) for name, s in self.args.items()}
        for path, name in self.refs:  # list references print as written
            _put(data, path, {"list": name})
        return data
