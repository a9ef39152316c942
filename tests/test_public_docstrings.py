"""Every public name of the package says what it is.

Walks every public module of ``guardrails_plugin`` (no part of its dotted name starts with
an underscore), every name in its ``__all__``, and, for the classes among them, every public
method and property the class defines itself: each needs a docstring of its own (an
override takes its base's, an async twin ``aX`` that of ``X``). Values (constants, type
aliases) are exempt: Python cannot attach a docstring to them.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import pkgutil
from typing import Any

import guardrails_plugin

OPTIONAL = {"guardrails_plugin.otel", "guardrails_plugin.dashboard"}


def public_modules() -> list[Any]:
    found = [guardrails_plugin]
    for info in pkgutil.walk_packages(guardrails_plugin.__path__, "guardrails_plugin."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        try:
            found.append(importlib.import_module(info.name))
        except ImportError:  # an optional extra that is not installed
            assert any(info.name.startswith(o) for o in OPTIONAL), info.name
    return found


def _documented(obj: Any) -> bool:
    doc = obj.__doc__ if not isinstance(obj, property) else (obj.fget.__doc__ if obj.fget else None)
    return bool(doc and doc.strip())


def missing() -> list[str]:
    gaps: list[str] = []
    seen: set[int] = set()
    for module in public_modules():
        if not _documented(module):
            gaps.append(module.__name__)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            where = f"{module.__name__}.{name}"
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            if not _documented(obj) or (inspect.isclass(obj) and obj.__doc__ == _base_doc(obj)):
                gaps.append(where)
            if inspect.isclass(obj) and not issubclass(obj, enum.Enum | BaseException):
                gaps.extend(_members(obj, where))
    return gaps


def _base_doc(cls: type) -> str | None:
    """The docstring a class would show if it had none of its own (a dataclass makes one)."""
    if cls.__doc__ and cls.__doc__.startswith(f"{cls.__name__}("):
        return cls.__doc__
    return None


def _members(cls: type, where: str) -> list[str]:
    gaps = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, staticmethod | classmethod):
            member = member.__func__
        if not (inspect.isfunction(member) or isinstance(member, property)):
            continue
        if _documented(member) or _inherits_doc(cls, name) or _async_twin(cls, name):
            continue
        gaps.append(f"{where}.{name}")
    return gaps


def _async_twin(cls: type, name: str) -> bool:
    """``aX``, the async twin of a documented ``X`` of the same class (the package's
    convention: the twin does what ``X`` says, awaitable)."""
    if not name.startswith("a"):
        return False
    twin = vars(cls).get(name[1:]) or getattr(cls, name[1:], None)
    if isinstance(twin, staticmethod | classmethod):
        twin = twin.__func__
    return twin is not None and (_documented(twin) or _inherits_doc(cls, name[1:]))


def _inherits_doc(cls: type, name: str) -> bool:
    """An override of a documented method of a base class (its contract is the base's)."""
    for base in cls.__mro__[1:]:
        member = vars(base).get(name)
        if member is not None:
            if isinstance(member, staticmethod | classmethod):
                member = member.__func__
            return _documented(member)
    return False


def test_every_public_name_has_a_docstring() -> None:
    gaps = missing()
    assert not gaps, f"{len(gaps)} public names without a docstring:\n" + "\n".join(gaps)


def test_the_walk_finds_what_it_should() -> None:
    """The check itself: it sees the package's public modules and their classes' methods."""
    names = {m.__name__ for m in public_modules()}
    assert {"guardrails_plugin", "guardrails_plugin.langgraph", "guardrails_plugin.scopes"} <= names

    class Undocumented:
        def act(self) -> None:
            pass

    assert _members(Undocumented, "x.Undocumented") == ["x.Undocumented.act"]
