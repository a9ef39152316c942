"""Roles: named groups of agents, inheriting one another's permissions.

.. code-block:: yaml

    roles:
      employee: {agents: ["*"]}
      analyst: {agents: [researcher, "analyst-*"], inherits: [employee]}

A rule with ``roles: [employee]`` applies to the agents of ``employee`` and of every role
that inherits it (``analyst``): a role inherits the permissions (and the prohibitions) of
the roles it names. Membership is resolved once, when the policy is built, into agent
names and globs; a role named by a rule but defined nowhere, and a cycle of ``inherits``,
are errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import PolicyError
from ._patterns import as_names


@dataclass(frozen=True)
class Role:
    """A role: the agents (names or globs) that hold it and the roles it inherits from."""

    name: str
    agents: tuple[str, ...] = ()
    inherits: tuple[str, ...] = ()

    def __init__(
        self, name: str, agents: str | Iterable[str] = (), inherits: str | Iterable[str] = ()
    ) -> None:
        if not isinstance(name, str) or not name:
            raise PolicyError(f"a role needs a non-empty name, found {name!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "agents", as_names(agents, what="agents") if agents else ())
        object.__setattr__(
            self, "inherits", as_names(inherits, what="inherits") if inherits else ()
        )

    def to_dict(self) -> dict[str, Any]:
        """The role as a policy file writes it under ``roles: {name: ...}``."""
        data: dict[str, Any] = {}
        if self.agents:
            data["agents"] = list(self.agents)
        if self.inherits:
            data["inherits"] = list(self.inherits)
        return data

    def merged(self, other: Role) -> Role:
        """This role with ``other``'s agents and parents added (a lower layer's additions)."""
        return Role(
            self.name,
            _union(self.agents, other.agents),
            _union(self.inherits, other.inherits),
        )


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return a + tuple(x for x in b if x not in a)


def role_table(layers: Iterable[Iterable[Role]]) -> dict[str, Role]:
    """The roles of several layers, root first: a role defined twice gains both definitions'
    agents and parents."""
    table: dict[str, Role] = {}
    for roles in layers:
        for role in roles:
            earlier = table.get(role.name)
            table[role.name] = role if earlier is None else earlier.merged(role)
    return table


def members(table: Mapping[str, Role]) -> dict[str, tuple[str, ...]]:
    """For every role, the agents a rule for it applies to: its own and those of every role
    inheriting it, directly or not. Raises ``PolicyError`` on an unknown parent or a cycle."""
    children: dict[str, list[str]] = {name: [] for name in table}
    for role in table.values():
        for parent in role.inherits:
            if parent not in table:
                raise PolicyError(f"role {role.name!r} inherits {parent!r}, which is not a role")
            children[parent].append(role.name)
    _no_cycle(table)
    out: dict[str, tuple[str, ...]] = {}
    for name in table:
        seen = {name}
        todo = [name]
        agents: tuple[str, ...] = ()
        while todo:
            current = todo.pop()
            agents = _union(agents, table[current].agents)
            for child in children[current]:
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        out[name] = agents
    return out


def _no_cycle(table: Mapping[str, Role]) -> None:
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            loop = [*path[path.index(name) :], name]
            raise PolicyError(f"roles inherit in a cycle: {' -> '.join(loop)}")
        state[name] = 1
        for parent in table[name].inherits:
            visit(parent, [*path, name])
        state[name] = 2

    for name in table:
        visit(name, [])
