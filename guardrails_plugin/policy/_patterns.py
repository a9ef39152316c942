"""Names and glob patterns for tools and agents, compiled once."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence

_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def as_names(
    value: str | Iterable[str] | None, *, what: str, default: tuple[str, ...] = ("*",)
) -> tuple[str, ...]:
    """Normalize ``"x"`` / ``["x", "y"]`` / ``None`` to a tuple of non-empty names."""
    if value is None:
        return default
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{what} must be non-empty strings, found {name!r}")
    if not names:
        raise TypeError(f"{what} must name at least one {what.rstrip('s')}")
    return names


class NameSet:
    """A set of exact names and glob patterns (``*``, ``?``, ``[abc]``), matched case-sensitively."""

    __slots__ = ("_exact", "_globs", "_regex", "everything", "patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self.everything = "*" in self.patterns
        self._exact = frozenset(p for p in self.patterns if not is_glob(p))
        self._globs = tuple(p for p in self.patterns if is_glob(p))
        self._regex = (
            re.compile("|".join(fnmatch.translate(p) for p in self._globs)) if self._globs else None
        )

    def matches(self, name: str) -> bool:
        if self.everything or name in self._exact:
            return True
        return self._regex is not None and self._regex.match(name) is not None

    def covers(self, pattern: str) -> bool:
        """Whether every name ``pattern`` matches is matched here too (conservative)."""
        if self.everything or pattern in self.patterns:
            return True
        if not is_glob(pattern):
            return self.matches(pattern)
        # A glob is covered by a prefix glob "abc*" when it starts with "abc" literally.
        for parent in self._globs:
            stem = parent[:-1]
            if parent.endswith("*") and not is_glob(stem) and pattern.startswith(stem):
                return True
        return False

    def __repr__(self) -> str:
        return f"NameSet({list(self.patterns)!r})"
