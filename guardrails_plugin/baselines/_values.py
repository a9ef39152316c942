"""What a baseline remembers of an argument value: its destination, not its text.

``keys(value)`` reads one argument value into the keys a baseline counts, each prefixed by
its kind so that two readings never collide:

- ``host:docs.example.com``: a ``scheme://`` URL, by the host a WHATWG client connects to
  (``guardrails_plugin.scopes.urls.host_of``: punycode, lower case, IP spellings folded);
- ``email:example.com``: an e-mail address, or a header of several, by each recipient's
  domain (``guardrails_plugin.scopes.emails.addresses_in``: display names, groups, IDN; a
  plain ``local@domain`` the scope refuses to read, by its domain as written);
- ``path:/srv/data``: an absolute path, by its first ``PATH_DEPTH`` components after the
  lexical normalisation ``Paths`` uses without resolving links (``..`` folded); a relative
  path by its first component (``rel:reports``), ``~`` by ``home:``;
- ``value:...``: any other short string, ``bool`` or integer, as written (a mode, a table,
  a channel);
- nothing for floats, long free text (over ``MAX_VALUE`` characters), mappings and
  ``None``: an amount or an e-mail body is not a habit a baseline can count; nothing for a
  string the audit log's ``Redactor`` would hide part of (a bearer token, an API key, a
  password in a query string): a baseline file holds no secret.

A list is read element by element. The result is cached per string (bounded), so a
habitual value costs one dictionary read at run time.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..audit import Redactor
from ..scopes import ScopeViolation, addresses_in
from ..scopes.urls import host_of

__all__ = ["MAX_VALUE", "PATH_DEPTH", "keys", "secret_name"]

MAX_VALUE = 120
"""Strings longer than this are free text: not counted."""
PATH_DEPTH = 2
"""Components of an absolute path a baseline keeps (``/srv/data/x/y.txt`` -> ``/srv/data``)."""
_PLAIN_ADDRESS = re.compile(r"[^@\s<>,;:\"]+@([A-Za-z0-9.-]+)")
_REDACTOR = Redactor()
_CACHE: dict[str, tuple[str, ...]] = {}
_CACHE_MAX = 8_192
_MAX_ITEMS = 16


def keys(value: Any) -> tuple[str, ...]:
    """The keys a baseline counts for one argument value (see the module doc).

    >>> keys("https://Docs.Example.com/a"), keys(["Ann <ann@Corp.io>", "/srv/data/x"])
    (('host:docs.example.com',), ('email:corp.io', 'path:/srv/data'))
    """
    if isinstance(value, str):
        found = _CACHE.get(value)
        if found is None:
            found = _string(value)
            if len(_CACHE) >= _CACHE_MAX:
                _CACHE.clear()
            _CACHE[value] = found
        return found
    if isinstance(value, bool):
        return (f"value:{str(value).lower()}",)
    if isinstance(value, int):
        return (f"value:{value}",) if -(10**12) < value < 10**12 else ()
    if isinstance(value, list | tuple):
        out: list[str] = []
        for item in value[:_MAX_ITEMS]:
            if isinstance(item, str | bool | int):
                out.extend(k for k in keys(item) if k not in out)
        return tuple(out)
    return ()


def _string(value: str) -> tuple[str, ...]:
    if not value or len(value) > MAX_VALUE:
        return ()
    if "://" in value:
        host = host_of(value)
        return (f"host:{host}",) if host is not None else _plain(value)
    if "@" in value and not value.startswith(("/", "~")):
        try:
            domains = dict.fromkeys(a.rpartition("@")[2] for a in addresses_in(value))
        except ScopeViolation:
            # An address the e-mail scope refuses to read (a special-use domain such as
            # .test, a quoted local part) still names where it goes, when it is that plain.
            plain = _PLAIN_ADDRESS.fullmatch(value)
            if plain is None:
                return _plain(value)
            return (f"email:{plain.group(1).lower().rstrip('.')}",)
        return tuple(f"email:{d}" for d in domains)
    if value.startswith("/"):
        path = os.path.normpath(value)
        parts = [p for p in path.split("/") if p][:PATH_DEPTH]
        return ("path:/" + "/".join(parts),)
    if value.startswith("~"):
        return ("home:" + value[1:].partition("/")[0],)
    if value.startswith(("./", "../")) or ("/" in value and " " not in value):
        first = os.path.normpath(value).split("/")[0]
        return (f"rel:{first}",)
    return _plain(value)


def _plain(value: str) -> tuple[str, ...]:
    if _REDACTOR.text(value) != value:
        return ()  # a secret, or holding one: not for the baseline file
    return (f"value:{value}",)


def secret_name(name: str) -> bool:
    """Whether an argument's name says it holds a secret (the audit log's ``Redactor``
    hides such keys: ``password``, ``api_key``, ``token``...): a baseline learns nothing
    of it."""
    return _REDACTOR.hides(name)
