"""Argument scopes: what a tool call's arguments may really touch.

Each scope parses its argument with a real parser before deciding (a path after symlink
resolution, the host a WHATWG client connects to, every recipient of an email header, every
program of a shell line, every table of a SQL statement) and denies what it cannot
understand. Importing this package registers every kind for ``scope_from_spec``.

A refusal is a ``ScopeViolation`` either way; ``unreadable=True`` marks the ones where the
scope could not read the value at all (wrong type, parse error, an expansion or construct it
cannot see into, a crashing predicate) rather than reading it and finding it outside. Deny
and ask rules treat unreadable values as matches, so a value cannot dodge them by being odd.

    >>> from guardrails_plugin.scopes import Urls, scope_from_spec
    >>> scope_from_spec("url", {"hosts": ["api.example.com"]}) == Urls(["api.example.com"])
    True
"""

from ._base import SCOPE_KINDS, Scope, ScopeError, ScopeViolation, scope_from_spec
from .emails import Emails, addresses_in
from .negation import Not
from .optional import OptionalScope, arg_data, arg_scope, is_empty, optional
from .paths import Paths
from .returned import Provenance, Returned
from .shell import Shell
from .sql import Sql
from .text import Text, links_in
from .urls import Urls
from .values import Number, OneOf, Pattern, Predicate

__all__ = [
    "SCOPE_KINDS",
    "Emails",
    "Not",
    "Number",
    "OneOf",
    "OptionalScope",
    "Paths",
    "Pattern",
    "Predicate",
    "Provenance",
    "Returned",
    "Scope",
    "ScopeError",
    "ScopeViolation",
    "Shell",
    "Sql",
    "Text",
    "Urls",
    "addresses_in",
    "arg_data",
    "arg_scope",
    "is_empty",
    "links_in",
    "optional",
    "scope_from_spec",
]
