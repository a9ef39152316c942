"""Tool and agent globs, and ``Pattern`` regular expressions, as z3 regular expressions.

Globs follow ``fnmatch.translate`` (what ``NameSet`` matches with): ``*`` any run of
characters, ``?`` one character, ``[...]`` a set (``[!...]`` its complement, a ``]`` first is
literal, an unclosed ``[`` is a literal ``[``), case-sensitive, the whole name.

A Python regular expression is translated from ``re``'s own parse tree, so what it means is
Python's reading: ``.`` is any character but a newline, ``\\d``, ``\\w`` and ``\\s`` are
Unicode classes (the character tables are computed from ``str.isdecimal``, ``isalnum`` and
``isspace``, as ``re`` does), ``^``/``\\A`` at the start and ``$``/``\\Z`` at the end are
no-ops under ``fullmatch``. Anything else — flags, look-arounds, back-references, anchors
or word boundaries elsewhere, atomic groups — makes the translation return ``None``: the
scope is then over-approximated, never guessed.

Strings are over z3's alphabet (up to U+2FFFF); characters above it are not generated.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from ._z3 import z3

_sre_c: Any = importlib.import_module("re._constants")
_sre_p: Any = importlib.import_module("re._parser")

MAX_CHAR = 0x2FFFF
"""The largest character z3's string theory holds (its default Unicode alphabet)."""


def _re() -> Any:
    return z3().ReSort(z3().StringSort())


def _all_char() -> Any:
    return z3().AllChar(_re())


def _char(c: str) -> Any:
    return z3().Re(z3().StringVal(c))


def _range(lo: int, hi: int) -> Any:
    Z = z3()
    if lo == hi:
        return _char(chr(lo))
    return Z.Range(Z.StringVal(chr(lo)), Z.StringVal(chr(hi)))


def _union(parts: list[Any]) -> Any:
    Z = z3()
    if not parts:
        return Z.Empty(_re())
    if len(parts) == 1:
        return parts[0]
    return Z.Union(*parts)


def _concat(parts: list[Any]) -> Any:
    Z = z3()
    if not parts:
        return Z.Re(Z.StringVal(""))
    if len(parts) == 1:
        return parts[0]
    return Z.Concat(*parts)


def _complement_class(cls: Any) -> Any:
    Z = z3()
    return Z.Intersect(_all_char(), Z.Complement(cls))


# -- globs -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def glob_regex(pattern: str) -> Any:
    """The z3 regular expression of one glob, as ``fnmatch.translate`` reads it."""
    Z = z3()
    parts: list[Any] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            while i < n and pattern[i] == "*":
                i += 1
            parts.append(Z.Star(_all_char()))
        elif c == "?":
            parts.append(_all_char())
        elif c == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                parts.append(_char("["))
                continue
            body = pattern[i:j]
            i = j + 1
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            parts.append(_glob_class(body, negate))
        else:
            parts.append(_char(c))
    return _concat(parts)


def _glob_class(body: str, negate: bool) -> Any:
    """A ``[...]`` set of a glob (ranges ``a-z``; a reversed range is empty, as in fnmatch)."""
    ranges: list[Any] = []
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            lo, hi = ord(body[k]), ord(body[k + 2])
            if lo <= hi:
                ranges.append(_range(lo, hi))
            k += 3
        else:
            ranges.append(_char(body[k]))
            k += 1
    cls = _union(ranges)
    return _complement_class(cls) if negate else cls


def names_regex(patterns: tuple[str, ...]) -> Any:
    """The names a ``NameSet`` of ``patterns`` matches."""
    Z = z3()
    if "*" in patterns:
        return Z.Full(_re())
    return _union([glob_regex(p) for p in patterns])


# -- Python regular expressions ----------------------------------------------------------------


@functools.cache
def _category_ranges(name: str) -> tuple[tuple[int, int], ...]:
    test = {
        "digit": str.isdecimal,
        "word": lambda c: c.isalnum() or c == "_",
        "space": str.isspace,
    }[name]
    out: list[tuple[int, int]] = []
    start = -1
    for code in range(MAX_CHAR + 1):
        inside = test(chr(code))
        if inside and start < 0:
            start = code
        elif not inside and start >= 0:
            out.append((start, code - 1))
            start = -1
    if start >= 0:
        out.append((start, MAX_CHAR))
    return tuple(out)


@functools.cache
def _category(name: str) -> Any:
    return _union([_range(lo, hi) for lo, hi in _category_ranges(name)])


class _Inexact(Exception):
    pass


_CATEGORIES = {
    "CATEGORY_DIGIT": ("digit", False),
    "CATEGORY_NOT_DIGIT": ("digit", True),
    "CATEGORY_WORD": ("word", False),
    "CATEGORY_NOT_WORD": ("word", True),
    "CATEGORY_SPACE": ("space", False),
    "CATEGORY_NOT_SPACE": ("space", True),
}


def _cat(code: Any) -> Any:
    found = _CATEGORIES.get(str(code))
    if found is None:
        raise _Inexact(str(code))
    name, negate = found
    cls = _category(name)
    return _complement_class(cls) if negate else cls


@functools.lru_cache(maxsize=1024)
def python_regex(pattern: str) -> Any | None:
    """The z3 regular expression ``re.fullmatch(pattern, s)`` accepts, or ``None`` when the
    translation would not be exact."""
    try:
        parsed = _sre_p.parse(pattern)
    except Exception:
        return None
    if parsed.state.flags & ~(_sre_c.SRE_FLAG_UNICODE):
        return None
    try:
        return _seq(list(parsed), top=True)
    except (_Inexact, RecursionError):
        return None


def _seq(items: list[tuple[Any, Any]], *, top: bool = False) -> Any:
    parts: list[Any] = []
    for k, (op, av) in enumerate(items):
        name = str(op)
        if name == "AT":
            at = str(av)
            first, last = k == 0, k == len(items) - 1
            if top and first and at in ("AT_BEGINNING", "AT_BEGINNING_STRING"):
                continue
            if top and last and at in ("AT_END", "AT_END_STRING"):
                continue
            raise _Inexact(at)
        parts.append(_node(name, av))
    return _concat(parts)


def _node(name: str, av: Any) -> Any:
    Z = z3()
    if name == "LITERAL":
        return _char(chr(av))
    if name == "NOT_LITERAL":
        return _complement_class(_char(chr(av)))
    if name == "ANY":
        return _complement_class(_char("\n"))
    if name == "IN":
        return _in(av)
    if name == "CATEGORY":
        return _cat(av)
    if name == "BRANCH":
        _, branches = av
        return _union([_seq(list(b)) for b in branches])
    if name == "SUBPATTERN":
        _group, add_flags, del_flags, sub = av
        if add_flags or del_flags:
            raise _Inexact("flags")
        return _seq(list(sub))
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        if name == "POSSESSIVE_REPEAT":
            raise _Inexact(name)
        lo, hi, sub = av
        inner = _seq(list(sub))
        if hi == _sre_c.MAXREPEAT:
            if lo == 0:
                return Z.Star(inner)
            if lo == 1:
                return Z.Plus(inner)
            return Z.Concat(Z.Loop(inner, lo, lo), Z.Star(inner))
        if lo == 0 and hi == 1:
            return Z.Option(inner)
        if hi == 0:
            return Z.Re(Z.StringVal(""))
        return Z.Loop(inner, lo, hi)
    raise _Inexact(name)


def _in(items: list[tuple[Any, Any]]) -> Any:
    negate = False
    parts: list[Any] = []
    for op, av in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            parts.append(_char(chr(av)))
        elif name == "RANGE":
            lo, hi = av
            if lo <= hi:
                parts.append(_range(lo, min(hi, MAX_CHAR)))
        elif name == "CATEGORY":
            parts.append(_cat(av))
        else:
            raise _Inexact(name)
    cls = _union(parts)
    return _complement_class(cls) if negate else cls


def glob_witness(pattern: str) -> str:
    """A readable name ``pattern`` (an fnmatch glob) matches, or ``""``."""
    import fnmatch
    import re

    name = re.sub(r"\[!?\^?([^\]])[^\]]*\]", lambda m: m.group(1), pattern)
    name = name.replace("*", "").replace("?", "x")
    if not name:
        name = "x"
    return name if fnmatch.fnmatchcase(name, pattern) else ""
