"""Value provenance: where an argument's value came from, by fingerprint, never by copy.

Two questions a value alone cannot answer, which the guard answers from what it recorded in
the run (its thread, else its run id):

- **Did this value come back from one of these tools?** ``Returned(["create_file"])`` on
  ``delete_file``'s ``id`` allows only ids a ``create_file`` result in this run contained
  ("delete only files this run created"); ``not`` around it holds for a value no such
  result contained (so "ask about any other file" is a second rule), ``optional`` lets an
  absent value pass (:func:`check_in`). The guard keeps, per run and per tool named by
  some ``Returned`` scope, :func:`returned_prints` of each result: a hash of every token,
  of the whole result and of every scalar of a JSON result. A value passes when
  :func:`value_print` of it is among them: the same token (case and surrounding space
  aside), not a part of one (``4`` is not ``42``).
- **Does this argument carry content an untrusted result brought in?** A data flow with
  ``carries=True`` gates a sink only then. The guard keeps :func:`fingerprints` of every
  untrusted result: hashes of its runs of three words (lower case; punctuation, spacing and
  line breaks ignored, as the cascade monitor's infection signal reads them) and of each
  value-like token (six characters or more with a digit, ``@``, ``.``, ``/`` or ``:``: an
  address, a URL, an account number). An argument carries untrusted content when its own
  fingerprints meet them. A person approving such a call declassifies what it carried:
  its fingerprints leave the run's untrusted set.

Hashes are BLAKE2b (8 bytes, hex), stable across processes, so a shared store serves many
workers. A value the guard cannot fingerprint (not text, a number or a list or mapping of
them) is unreadable: ``Returned`` refuses it, and it counts as carrying untrusted content.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._base import Scope, ScopeError, ScopeViolation
from ._text import describe, preview, string_list
from .negation import Not
from .optional import OptionalScope, is_empty

__all__ = [
    "Provenance",
    "Returned",
    "check_in",
    "fingerprints",
    "provenance_tools",
    "returned_prints",
    "value_print",
    "value_prints",
]

_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"[^\s<>()\[\]{}\"'`,;|]+")
_VALUE_LIKE = re.compile(r"[\d@./:]")
MAX_CHARS = 20_000
"""Characters of a result (or argument) fingerprinted; the rest is not read."""
MAX_PRINTS = 4_000
"""Fingerprints kept per result at most."""


def _h(kind: str, text: str) -> str:
    return kind + hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _tokens(text: str) -> list[str]:
    return [t.strip(".:!?") for t in _TOKEN.findall(text.lower())]


def fingerprints(text: str) -> set[str]:
    """Hashes of ``text``'s three-word runs and of its value-like tokens (see the module)."""
    text = text[:MAX_CHARS]
    words = _WORD.findall(text.lower())
    found = {_h("s", " ".join(words[i : i + 3])) for i in range(max(len(words) - 2, 0))}
    if 0 < len(words) < 3:
        found.add(_h("s", " ".join(words)))
    found.update(
        _h("t", t) for t in _tokens(text) if len(t) >= 6 and _VALUE_LIKE.search(t) is not None
    )
    if len(found) > MAX_PRINTS:
        found = set(sorted(found)[:MAX_PRINTS])
    return found


def _texts(value: object, depth: int = 0) -> Iterable[str]:
    """The strings in an argument (numbers as text); ``ValueError`` for anything else."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
    elif value is None or isinstance(value, bool):
        return
    elif isinstance(value, list | tuple) and depth < 8:
        for item in value:
            yield from _texts(item, depth + 1)
    elif isinstance(value, Mapping) and depth < 8:
        for item in value.values():
            yield from _texts(item, depth + 1)
    else:
        raise ValueError(f"cannot read {describe(value)}")


def value_prints(value: object) -> set[str]:
    """:func:`fingerprints` of every string in an argument (``ValueError`` when unreadable)."""
    found: set[str] = set()
    for text in _texts(value):
        found |= fingerprints(text)
        token = text.strip().lower()
        if len(token) >= 6 and _VALUE_LIKE.search(token) and not any(c.isspace() for c in token):
            found.add(_h("t", token.strip(".:!?")))
    return found


def value_print(value: object) -> str | None:
    """The hash :class:`Returned` looks up for a value: a string or an integer, whole (case
    and surrounding space aside); ``None`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip().lower()
    return _h("v", text) if text else None


def returned_prints(content: str) -> set[str]:
    """What a tracked tool's result makes known: every token, the whole result, and every
    scalar of a JSON result, hashed as :func:`value_print` hashes a value."""
    content = content[:MAX_CHARS]
    found = {_h("v", t) for t in _tokens(content) if t}
    whole = content.strip().lower()
    if whole:
        found.add(_h("v", whole))
    if content.lstrip()[:1] in ("{", "["):
        try:
            data = json.loads(content)
        except ValueError:
            data = None
        stack: list[Any] = [data]
        while stack and len(found) < 4 * MAX_PRINTS:
            item = stack.pop()
            if isinstance(item, Mapping):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            else:
                key = value_print(item)
                if key is not None:
                    found.add(key)
    return found


@dataclass(frozen=True, slots=True)
class Provenance:
    """What the guard knows of one run when it decides a call: fingerprints of untrusted
    results (``untrusted``) and :func:`returned_prints` by tool (``returned``)."""

    untrusted: frozenset[str] = frozenset()
    returned: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def carries(self, args: Mapping[str, object]) -> str | None:
        """The first argument whose value carries untrusted content (or cannot be read)."""
        if not self.untrusted:
            return None
        for name, value in args.items():
            try:
                prints = value_prints(value)
            except ValueError:
                return name
            if not self.untrusted.isdisjoint(prints):
                return name
        return None


class Returned(Scope):
    """Values some result of ``tools`` contained, in this run (see the module's docstring).

    Only the guard can check it (it knows the run); :meth:`check` alone refuses every value
    as unreadable. Tool names are exact (no globs)::

        allow("delete_file", args={"file_id": Returned(["create_file"])})
    """

    kind = "returned"

    def __init__(self, tools: str | Iterable[str]) -> None:
        names = string_list(tools, "tools")
        if not names or any(not n or any(c in n for c in "*?[") for n in names):
            raise ScopeError(f"tools must be exact tool names, found {preview(names)}")
        self.tools: tuple[str, ...] = tuple(sorted(set(names)))

    def check(self, value: object) -> None:
        raise ScopeViolation(
            f"{preview(value)}: where a value came from is known only to the guard",
            unreadable=True,
        )

    def check_in(self, value: object, provenance: Provenance | None) -> None:
        """Pass when a result of one of ``tools`` in this run contained ``value``."""
        key = value_print(value)
        if key is None:
            raise ScopeViolation(
                f"expected a string or an integer, found {describe(value)}", unreadable=True
            )
        if provenance is not None:
            for tool in self.tools:
                if key in provenance.returned.get(tool, ()):
                    return
        raise ScopeViolation(
            f"{preview(value)} was not returned by an allowed tool in this run",
            allowed=f"values returned by {list(self.tools)}",
        )

    def spec(self) -> dict[str, Any]:
        return {"tools": list(self.tools)}

    def within(self, other: Scope) -> bool:
        return isinstance(other, Returned) and set(self.tools) <= set(other.tools)


def provenance_tools(scope: Scope) -> tuple[str, ...] | None:
    """The tools ``scope`` looks up when it is a :class:`Returned`, or ``not`` or
    ``optional`` around one (``not: {returned: ...}``: "a value no such result contained");
    ``None`` for a scope that judges the value alone."""
    while isinstance(scope, Not | OptionalScope):
        scope = scope.inner if isinstance(scope, Not) else scope.scope
    return scope.tools if isinstance(scope, Returned) else None


def check_in(scope: Scope, value: object, provenance: Provenance | None) -> None:
    """Judge ``value`` by a scope :func:`provenance_tools` accepts, with the run's
    ``provenance``: ``Returned`` looks it up; ``optional`` passes an empty value; ``not``
    passes what its scope read and refused, and refuses what it could not read."""
    if isinstance(scope, OptionalScope):
        if not is_empty(value):
            check_in(scope.scope, value, provenance)
        return
    if isinstance(scope, Not):
        try:
            check_in(scope.inner, value, provenance)
        except ScopeViolation as exc:
            if exc.unreadable:
                raise ScopeViolation(f"not {scope.inner.kind}: {exc}", unreadable=True) from exc
            return
        raise ScopeViolation(
            f"inside the {scope.inner.kind} scope this rule excludes",
            allowed=f"excluded: {scope.inner!r}",
        )
    if not isinstance(scope, Returned):
        raise TypeError(f"{scope!r} does not look values up in a run")
    scope.check_in(value, provenance)
