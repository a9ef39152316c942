"""Names and glob patterns for tools and agents, compiled once."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Sequence

_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(pattern)


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


@functools.lru_cache(maxsize=1024)
def _compile(globs: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(fnmatch.translate(p) for p in globs))


class NameSet:
    """A set of exact names and glob patterns (``*``, ``?``, ``[abc]``), matched case-sensitively.

    The globs' regular expression is compiled the first time a name needs it: a policy of
    50,000 rules is read and linted without compiling one per rule (``fnmatch.translate``
    always gives a valid expression, so compiling later cannot fail where earlier would not)."""

    __slots__ = ("_exact", "_globs", "_regex", "everything", "patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self.everything = "*" in self.patterns
        self._exact = frozenset(p for p in self.patterns if not is_glob(p))
        self._globs = tuple(p for p in self.patterns if is_glob(p))
        self._regex: re.Pattern[str] | None = None

    def matches(self, name: str) -> bool:
        if self.everything or name in self._exact:
            return True
        if not self._globs:
            return False
        regex = self._regex
        if regex is None:
            regex = self._regex = _compile(self._globs)
        return regex.match(name) is not None

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


@functools.lru_cache(maxsize=4096)
def name_set(patterns: tuple[str, ...]) -> NameSet:
    """The :class:`NameSet` of ``patterns``, shared by every rule that names the same ones
    (most rules of a large policy are for every agent, ``("*",)``)."""
    return NameSet(patterns)
