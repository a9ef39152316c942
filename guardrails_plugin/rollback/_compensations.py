"""Which action undoes which tool, and what it needs to know."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._records import Capture, SideEffect, Undo

# -- compensations ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compensation:
    """How to undo one tool: ``undo(effect)``, and what to ``capture`` when it runs.

    ``idempotent`` promises that running ``undo`` twice for one effect does no more than
    running it once (deleting a file that may be gone, a refund keyed by ``effect.key``).
    Only idempotent undos are re-run after a crash left one half-done.
    """

    tool: str
    undo: Undo
    capture: Capture | None = None
    idempotent: bool = True

    @property
    def is_async(self) -> bool:
        """Whether the undo is a coroutine function (run with ``await``)."""
        return inspect.iscoroutinefunction(self.undo)

    def __repr__(self) -> str:
        name = getattr(self.undo, "__qualname__", repr(self.undo))
        flags = "" if self.idempotent else ", idempotent=False"
        return f"Compensation({self.tool!r}, undo={name}{flags})"


class Compensations:
    """The registry of undo actions, one per tool name.

    >>> compensations = Compensations()
    >>> @compensations.undo("send_email", idempotent=False)
    ... def recall(effect):
    ...     pass
    >>> "send_email" in compensations, "read_file" in compensations
    (True, False)
    >>> compensations
    Compensations(['send_email'])
    """

    def __init__(self) -> None:
        self._by_tool: dict[str, Compensation] = {}

    def register(
        self, tool: str, undo: Undo, *, capture: Capture | None = None, idempotent: bool = True
    ) -> Compensation:
        """Register ``undo`` for ``tool``; ``ValueError`` if the tool already has one."""
        if not isinstance(tool, str) or not tool:
            raise ValueError(f"tool must be a non-empty string, found {tool!r}")
        if not callable(undo):
            raise TypeError(f"the undo for {tool!r} must be callable, found {undo!r}")
        if capture is not None and not callable(capture):
            raise TypeError(f"the capture for {tool!r} must be callable, found {capture!r}")
        if tool in self._by_tool:
            raise ValueError(
                f"tool {tool!r} already has a compensation: {self._by_tool[tool]!r}; "
                "a tool has one undo, which may do several things"
            )
        compensation = Compensation(tool, undo, capture, idempotent)
        self._by_tool[tool] = compensation
        return compensation

    def undo(
        self, tool: str, *, capture: Capture | None = None, idempotent: bool = True
    ) -> Callable[[Callable[[SideEffect], Any]], Callable[[SideEffect], Any]]:
        """Decorator form of ``register``: ``@compensations.undo("send_email")``."""

        def decorate(undo: Callable[[SideEffect], Any]) -> Callable[[SideEffect], Any]:
            self.register(tool, undo, capture=capture, idempotent=idempotent)
            return undo

        return decorate

    def for_tool(self, tool: str) -> Compensation | None:
        """The compensation registered for ``tool``, or ``None``."""
        return self._by_tool.get(tool)

    def capture(self, tool: str, args: Mapping[str, Any], result: Any) -> dict[str, Any]:
        """What to record for a call of ``tool`` that returned ``result``.

        The tool's ``capture(args, result)`` if it has one, else ``{"args": args, "result":
        str(result)}`` (tools without a compensation are recorded too, so that a rollback can
        say it could not undo them). ``TypeError`` when the data is not JSON-serializable.
        """
        compensation = self._by_tool.get(tool)
        if compensation is None or compensation.capture is None:
            return {"args": _jsonable(args), "result": str(result)}
        try:
            data = compensation.capture(args, result)
        except Exception as exc:
            exc.add_note(f"while capturing undo data for tool {tool!r}")
            raise
        if not isinstance(data, Mapping):
            raise TypeError(
                f"capture for tool {tool!r} must return a mapping, found {type(data).__name__}"
            )
        return _checked_json(dict(data), f"undo data captured for tool {tool!r}")

    def __contains__(self, tool: object) -> bool:
        return tool in self._by_tool

    def __iter__(self) -> Iterator[Compensation]:
        return iter(self._by_tool.values())

    def __len__(self) -> int:
        return len(self._by_tool)

    def __repr__(self) -> str:
        return f"Compensations({sorted(self._by_tool)!r})"


def _jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data; what JSON cannot hold is kept as its ``repr``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return repr(value)


def _checked_json(data: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON-serializable: {exc}") from exc
    return data
