"""The policy-file sections beside rules, budgets and flows: ``imports:``, ``lists:`` (and
the ``{list: name}`` references rules make to them) and ``roles:``.

Kept apart from ``_files.py`` (which calls these while reading a file) so each section reads
on its own; every error names the file and where in it, like the rest of the loader.
"""

from __future__ import annotations

import importlib
import reprlib
from collections.abc import Mapping
from typing import Any

from .._errors import PolicyError, PolicyFileError
from ._roles import Role

_ROLE_KEYS = {"agents", "inherits"}


def imports_of(source: str, value: Any, run: bool) -> tuple[str, ...]:
    """The modules ``imports:`` names, imported when ``run`` (importing runs their code: a
    file's ``imports`` are trusted as much as the code they name)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    names = _as_list(source, "imports", value)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")):
            raise PolicyFileError(
                source,
                f"imports[{i}]",
                f"expected a module name like 'my_app.scopes', found {_kind(name)}",
            )
        if run:
            try:
                importlib.import_module(name)
            except Exception as exc:
                raise PolicyFileError(
                    source, f"imports[{i}]", f"cannot import {name!r}: {type(exc).__name__}: {exc}"
                ) from exc
    return tuple(names)


def lists_of(source: str, value: Any) -> dict[str, Any]:
    """The named values of ``lists:`` (plain data; no reference inside a list)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PolicyFileError(
            source, "lists", f"expected a mapping of names to values, found {_kind(value)}"
        )
    for name, item in value.items():
        if not isinstance(name, str) or not name:
            raise PolicyFileError(
                source, "lists", f"a list name must be a string, found {_kind(name)}"
            )
        if has_ref(item):
            raise PolicyFileError(source, f"lists.{name}", "a list cannot refer to another list")
    return dict(value)


def has_ref(value: Any) -> bool:
    if is_ref(value):
        return True
    if isinstance(value, Mapping):
        return any(has_ref(v) for v in value.values())
    if isinstance(value, list):
        return any(has_ref(v) for v in value)
    return False


def is_ref(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and "list" in value


def resolve(
    source: str,
    where: str,
    value: Any,
    lists: Mapping[str, Any],
    path: tuple[str, ...],
    refs: list[tuple[tuple[str, ...], str]],
) -> Any:
    """``value`` with every ``{list: name}`` replaced by the named value, each reference's
    place recorded in ``refs`` (so the rule prints back as written)."""
    if is_ref(value):
        name = value["list"]
        if not isinstance(name, str) or name not in lists:
            known = ", ".join(sorted(lists)) or "none defined"
            raise PolicyFileError(
                source, where, f"{{list: {name!r}}} names no list in 'lists' ({known})"
            )
        refs.append((path, name))
        return lists[name]
    if isinstance(value, Mapping):
        return {
            k: resolve(source, where, v, lists, (*path, str(k)), refs) for k, v in value.items()
        }
    if isinstance(value, list) and any(has_ref(v) for v in value):
        raise PolicyFileError(
            source, where, "a {list: name} reference stands for a whole value, not an item of one"
        )
    return value


def roles_of(source: str, value: Any) -> tuple[Role, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise PolicyFileError(
            source, "roles", f"expected a mapping of role names to roles, found {_kind(value)}"
        )
    out = []
    for name, spec in value.items():
        where = f"roles.{name}"
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            raise PolicyFileError(source, where, f"expected a mapping, found {_kind(spec)}")
        unknown = sorted(set(map(str, spec)) - _ROLE_KEYS)
        if unknown:
            raise PolicyFileError(
                source, where, f"unknown key {unknown[0]!r}; expected one of {sorted(_ROLE_KEYS)}"
            )
        try:
            out.append(Role(name, spec.get("agents") or (), spec.get("inherits") or ()))
        except (PolicyError, TypeError) as exc:
            raise PolicyFileError(source, where, str(exc)) from exc
    return tuple(out)


def _as_list(source: str, key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise PolicyFileError(source, key, f"expected a list, found {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {reprlib.repr(value):.60}"
