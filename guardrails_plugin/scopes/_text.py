"""Small helpers shared by the scope modules: readable reasons and list settings.

A deny reason is read by an operator and fed back to the model, so it must name what was
found without pasting a megabyte of attacker-controlled text into a log line. Settings come
from Python or from YAML, where ``hosts: example.com`` (one string) is as natural as a list,
so list settings accept either.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ._base import ScopeError

__all__ = ["describe", "preview", "string_list"]

_LIMIT = 120


def preview(value: object, limit: int = _LIMIT) -> str:
    """``repr(value)``, cut to about ``limit`` characters with a ``...`` marker."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return text[: limit - 3] + "..."


def describe(value: object) -> str:
    """The type and a preview of ``value``, as in ``str '12'`` (for wrong-type reasons)."""
    return f"{type(value).__name__} {preview(value)}"


def string_list(value: object, setting: str, *, paths: bool = False) -> list[str]:
    """A list setting as a list of strings; one string alone counts as a list of one.

    ``paths=True`` also accepts ``os.PathLike`` items. Raises ``ScopeError`` naming
    ``setting`` when the value is neither a string nor an iterable of strings.
    """
    if isinstance(value, str) or (paths and isinstance(value, os.PathLike)):
        value = [value]
    if isinstance(value, bytes | bytearray | dict) or not isinstance(value, Iterable):
        raise ScopeError(f"{setting} must be a list of strings, found {describe(value)}")
    items: list[str] = []
    for item in value:
        if paths and isinstance(item, os.PathLike):
            item = os.fspath(item)
        if not isinstance(item, str):
            raise ScopeError(f"{setting} must contain strings, found {describe(item)}")
        items.append(item)
    return items
