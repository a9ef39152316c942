"""Data flow: untrusted content must not drive actions on the outside world unchecked."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .._errors import PolicyError
from ._patterns import as_names
from ._rules import Rule, RuleEffect


@dataclass(frozen=True)
class DataFlow:
    """Once a ``sources`` tool (web fetch, inbox read, ...) returned content into a run, calls
    to ``sinks`` (send email, HTTP POST, payments, ...) are denied or need approval.

    The label sticks to the run (its thread, else its run id) and every agent in it::

        DataFlow(sources=["fetch_url", "read_inbox"], sinks=["send_email"], effect="ask")
    """

    sources: tuple[str, ...]
    sinks: tuple[str, ...]
    effect: Literal["ask", "deny"] = "ask"
    id: str = ""

    def __init__(
        self,
        sources: str | Iterable[str],
        sinks: str | Iterable[str],
        effect: Literal["ask", "deny"] = "ask",
        id: str = "",
    ) -> None:
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
            reason=(
                f"untrusted content from {', '.join(self.sources)} entered this run; "
                f"{{tool}} acts on the outside world"
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """The flow rule as a policy file writes it (``Policy.from_dict`` reads it back)."""
        return {
            "id": self.id,
            "sources": list(self.sources),
            "sinks": list(self.sinks),
            "effect": self.effect,
        }
