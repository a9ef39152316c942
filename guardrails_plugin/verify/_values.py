"""Symbolic tool-call arguments: what a JSON value looks like to the solver, and back.

Every argument a policy names is one symbolic value: a *tag* (absent, null, string, integer,
float, boolean, empty list, another value no built-in scope reads, a non-finite float), a
string, a number and a boolean. An argument that only path, URL or email scopes read gets a
*view* instead of its raw text: what those scopes see after parsing (a normalized path; a
URL's scheme, host, port, userinfo and whether it is ambiguous; the recipients of a header).
Every raw value has such a reading, and every reading a raw value (:func:`concrete`), so the
view loses nothing the scopes can tell apart; this keeps the solver out of URL and email
parsing. :func:`abstract` maps a concrete value to the view (the differential test holds the
two ends against the engine).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..scopes.emails import addresses_in
from ..scopes.urls import _ambiguity, _parse
from ._z3 import z3

ABSENT, NONE, STR, INT, FLOAT, BOOL, EMPTY, OTHER, NONFINITE = range(9)
TAG_NAMES = ("absent", "null", "string", "integer", "float", "boolean", "[]", "object", "nan")

SPECIAL_SCHEMES = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21, "file": None}
HOST_NAME, HOST_V4, HOST_V6 = 0, 1, 2


@dataclass
class UrlView:
    """A URL as ``Urls`` reads it (``parsed`` false: ada refused it)."""

    parsed: Any
    scheme: Any
    has_host: Any
    kind: Any
    host: Any
    ip: Any
    port: Any
    userinfo: Any
    ambiguous: Any


@dataclass
class EmailView:
    """A recipient list as ``Emails`` reads it (``ok`` false: unreadable)."""

    ok: Any
    count: Any
    locals: list[Any]
    domains: list[Any]


@dataclass
class Arg:
    """One symbolic argument of a call."""

    name: str
    tag: Any
    s: Any
    num: Any
    b: Any
    mode: str = "raw"
    """``raw``, or ``path`` / ``url`` / ``email`` when only scopes of that kind read it."""
    url: UrlView | None = None
    email: EmailView | None = None
    domain: list[Any] = field(default_factory=list)
    """Constraints that keep the solver's values real (not part of any decision)."""

    @property
    def present(self) -> Any:
        return self.tag != ABSENT

    @property
    def empty(self) -> Any:
        """``is_empty``: None, "", [] (a view-mode email value is never "")."""
        Z = z3()
        return Z.Or(self.tag == NONE, self.tag == EMPTY, Z.And(self.tag == STR, self.s == ""))


def _canonical_path_re() -> Any:
    Z = z3()
    R = Z.ReSort(Z.StringSort())
    ch = Z.Intersect(Z.AllChar(R), Z.Complement(Z.Union(Z.Re("/"), Z.Re("\x00"))))
    seg = Z.Intersect(Z.Plus(ch), Z.Complement(Z.Union(Z.Re("."), Z.Re(".."))))
    return Z.Union(Z.Re("/"), Z.Plus(Z.Concat(Z.Re("/"), seg)))


_CANON: list[Any] = []


def canonical_path(s: Any) -> Any:
    """``s`` is an absolute path ``os.path.normpath`` leaves as it is."""
    if not _CANON:
        _CANON.append(_canonical_path_re())
    return z3().InRe(s, _CANON[0])


FRESH = "x0"
"""A label no policy names: ``x0.<name>`` is under ``<name>`` and equal to nothing listed."""
NOWHERE = "x0.nowhere.zz"
"""A name under nothing a policy lists."""


def representatives(names: set[str]) -> list[str]:
    """Names standing for every host or mail domain: a name's verdicts under scopes listing
    ``names`` (exactly, or ``*.`` parents) depend only on which listed name it equals and
    which it lies under, so the listed names, one fresh child of each and one unrelated name
    give every combination a real name can."""
    listed = sorted({n.removeprefix("*.") for n in names if n and not _is_ip(n)})
    return [*listed, *(f"{FRESH}.{n}" for n in listed), NOWHERE]


def path_representatives(roots: set[str]) -> list[str]:
    """Strings standing for every path a path-only argument can hold: a normalized path's
    verdicts depend only on which listed root it equals and which it lies under, so the
    roots, one fresh child of each and one path under none, plus the values every path
    scope refuses unread (empty, relative, ``~``, a NUL byte)."""
    listed = sorted({r.rstrip("/") or "/" for r in roots if r.startswith("/")})
    children = [f"{r.rstrip('/')}/{FRESH}" for r in listed]
    return [*listed, *children, f"/{FRESH}-nowhere", "", "relative", "~/x", "/\x00"]


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def new_arg(
    name: str,
    prefix: str,
    mode: str,
    recipients: int,
    locals_: set[str],
    names: set[str] | None = None,
) -> Arg:
    """A fresh symbolic argument ``name`` (variables named ``prefix``...)."""
    Z = z3()
    p = f"{prefix}{name}"
    arg = Arg(
        name,
        Z.Int(f"{p}.tag"),
        Z.String(f"{p}.s"),
        Z.Real(f"{p}.num"),
        Z.Bool(f"{p}.b"),
        mode,
    )
    arg.domain += [arg.tag >= 0, arg.tag <= NONFINITE]
    arg.domain.append(Z.Implies(arg.tag == INT, Z.IsInt(arg.num)))
    if mode == "path":
        arg.domain.append(
            Z.Implies(
                arg.tag == STR,
                Z.Or(*[arg.s == Z.StringVal(v) for v in path_representatives(set(names or ()))]),
            )
        )
    elif mode == "url":
        v = UrlView(
            Z.Bool(f"{p}.url.parsed"),
            Z.String(f"{p}.url.scheme"),
            Z.Bool(f"{p}.url.has_host"),
            Z.Int(f"{p}.url.kind"),
            Z.String(f"{p}.url.host"),
            Z.Int(f"{p}.url.ip"),
            Z.Int(f"{p}.url.port"),
            Z.Bool(f"{p}.url.userinfo"),
            Z.Bool(f"{p}.url.ambiguous"),
        )
        arg.url = v
        schemes = {n[len("scheme:") :] for n in names or () if n.startswith("scheme:")}
        hosts = {n for n in names or () if not n.startswith("scheme:")}
        special = Z.Or(*[v.scheme == s for s in SPECIAL_SCHEMES])
        default = default_port(v.scheme)
        arg.domain += [
            Z.Or(
                *[v.scheme == Z.StringVal(s) for s in sorted(set(SPECIAL_SCHEMES) | schemes)],
                v.scheme == Z.StringVal("zz-other"),
            ),
            Z.Implies(Z.And(special, v.scheme != "file"), v.has_host),
            v.kind >= HOST_NAME,
            v.kind <= HOST_V6,
            Z.Implies(
                v.kind == HOST_NAME,
                Z.Or(*[v.host == Z.StringVal(h) for h in representatives(hosts)]),
            ),
            Z.Implies(v.kind == HOST_V4, Z.And(special, v.ip >= 0, v.ip < 2**32)),
            Z.Implies(v.kind == HOST_V6, Z.And(v.ip >= 0, v.ip < 2**128)),
            Z.Or(v.port == -1, Z.And(v.port >= 0, v.port <= 65535, v.port != default)),
            Z.Implies(v.parsed, arg.tag == STR),
            Z.Implies(arg.tag == STR, arg.s != ""),
        ]
    elif mode == "email":
        k = max(1, recipients)
        e = EmailView(
            Z.Bool(f"{p}.email.ok"),
            Z.Int(f"{p}.email.n"),
            [Z.String(f"{p}.email.local{i}") for i in range(k)],
            [Z.String(f"{p}.email.domain{i}") for i in range(k)],
        )
        arg.email = e
        domains = representatives(set(names or ()))
        arg.domain += [
            e.count >= 1,
            e.count <= k,
            Z.Implies(e.ok, Z.And(arg.tag == STR, arg.s != "")),
        ]
        for loc, dom in zip(e.locals, e.domains, strict=True):
            arg.domain.append(Z.Or(*[loc == x for x in sorted({*locals_, FRESH})]))
            arg.domain.append(Z.Or(*[dom == Z.StringVal(d) for d in domains]))
    return arg


def default_port(scheme: Any) -> Any:
    """The scheme's default port as a z3 term (-2 when it has none)."""
    Z = z3()
    out: Any = Z.IntVal(-2)
    for name, port in SPECIAL_SCHEMES.items():
        if port is not None:
            out = Z.If(scheme == name, port, out)
    return out


# -- concrete values -> assignments (abstraction) -------------------------------------------------


def _number(value: Any) -> Any:
    Z = z3()
    if isinstance(value, int):
        return Z.RealVal(value)
    if isinstance(value, Decimal):
        return Z.RealVal(str(value))
    n, d = float(value).as_integer_ratio()
    return Z.Q(n, d) if d != 1 else Z.RealVal(n)


def abstract(arg: Arg, present: bool, value: Any) -> list[Any]:
    """Equalities fixing ``arg`` to the concrete ``value`` (``present=False``: absent)."""
    Z = z3()
    if not present:
        return [arg.tag == ABSENT]
    eqs: list[Any] = []
    if value is None:
        eqs.append(arg.tag == NONE)
    elif isinstance(value, bool):
        eqs += [arg.tag == BOOL, arg.b == value]
    elif isinstance(value, int | float | Decimal):
        finite = math.isfinite(value) if isinstance(value, float) else True
        if isinstance(value, Decimal):
            finite = value.is_finite()
        if not finite:
            eqs.append(arg.tag == NONFINITE)
        else:
            eqs += [
                arg.tag == (INT if isinstance(value, int) else FLOAT),
                arg.num == _number(value),
            ]
    elif isinstance(value, str):
        text = value
        if arg.mode == "path" and text.startswith("/") and "\x00" not in text:
            text = normalized_path(text)
        eqs += [arg.tag == STR, arg.s == Z.StringVal(text)]
    elif isinstance(value, list | tuple) and not value:
        eqs.append(arg.tag == EMPTY)
    elif arg.mode == "email" and isinstance(value, list | tuple):
        eqs += [arg.tag == STR, arg.s == Z.StringVal("<list>")]
    else:
        eqs.append(arg.tag == OTHER)
    if arg.mode == "url" and arg.url is not None:
        eqs += _abstract_url(arg.url, value)
    if arg.mode == "email" and arg.email is not None:
        eqs += _abstract_email(arg.email, value)
    return eqs


def _abstract_url(v: UrlView, value: Any) -> list[Any]:
    Z = z3()
    if not isinstance(value, str):
        return [Z.Not(v.parsed)]
    try:
        url = _parse(value)
    except ValueError:
        return [Z.Not(v.parsed)]
    out = [v.parsed, v.scheme == Z.StringVal(url["protocol"][:-1])]
    hostname = str(url["hostname"])
    if not hostname:
        return [*out, Z.Not(v.has_host)]
    out.append(v.has_host)
    host_type = url["host_type"]
    import ada_url

    if host_type == ada_url.HostType.IPV4:
        out += [v.kind == HOST_V4, v.ip == int(ipaddress.ip_address(hostname))]
    elif host_type == ada_url.HostType.IPV6:
        out += [v.kind == HOST_V6, v.ip == int(ipaddress.ip_address(hostname.strip("[]")))]
    else:
        host = hostname[:-1] if hostname.endswith(".") else hostname
        out += [v.kind == HOST_NAME, v.host == Z.StringVal(host)]
    port = str(url["port"])
    out.append(v.port == (int(port) if port else -1))
    out.append(v.userinfo == bool(url["username"] or url["password"]))
    out.append(v.ambiguous == (_ambiguity(value, hostname) is not None))
    return out


def _abstract_email(e: EmailView, value: Any) -> list[Any]:
    Z = z3()
    try:
        found = addresses_in(value)
    except Exception:
        return [Z.Not(e.ok)]
    # the same vector of verdicts: repeated addresses changes nothing; more distinct ones than
    # the view holds cannot be written down (the caller skips such values)
    distinct = list(dict.fromkeys(found))
    if len(distinct) > len(e.locals):
        raise ValueError(f"{len(distinct)} recipients, the view holds {len(e.locals)}")
    out = [e.ok, e.count == len(distinct)]
    for i, address in enumerate(distinct):
        local, _, domain = address.rpartition("@")
        out += [e.locals[i] == Z.StringVal(local), e.domains[i] == Z.StringVal(domain)]
    return out


# -- a model -> a concrete value (concretization) -------------------------------------------------


_ESCAPE = re.compile(r"\\u\{([0-9a-fA-F]{1,6})\}")


def text(value: Any) -> str:
    """A z3 string value as Python text (z3 writes characters outside printable ASCII, and
    the backslash, as ``\\u{...}``)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value.as_string())


def _val(model: Any, term: Any) -> Any:
    return model.eval(term, model_completion=True)


def _py_number(model: Any, term: Any, integer: bool) -> int | float:
    value = _val(model, term)
    if integer:
        return (
            int(value.as_long()) if value.is_int() else int(str(value.as_decimal(30)).rstrip("?"))
        )
    frac = value.as_fraction()
    return float(frac)


def concrete(arg: Arg, model: Any) -> tuple[bool, Any]:
    """(present, value): the JSON value ``model`` gives ``arg``."""
    tag = _val(model, arg.tag).as_long()
    if tag == ABSENT:
        return False, None
    if tag == NONE:
        return True, None
    if tag == BOOL:
        return True, z3().is_true(_val(model, arg.b))
    if tag == INT:
        return True, _py_number(model, arg.num, True)
    if tag == FLOAT:
        return True, _py_number(model, arg.num, False)
    if tag == EMPTY:
        return True, []
    if tag == OTHER:
        return True, {"unreadable": True}
    if tag == NONFINITE:
        return True, float("nan")
    # a string ("" is empty whatever the view says: optional scopes let it through)
    if arg.mode in ("url", "email") and text(_val(model, arg.s)) == "":
        return True, ""
    if arg.mode == "url" and arg.url is not None:
        return True, _concrete_url(arg.url, model, text(_val(model, arg.s)))
    if arg.mode == "email" and arg.email is not None:
        return True, _concrete_email(arg.email, model, text(_val(model, arg.s)))
    return True, text(_val(model, arg.s))


def _concrete_url(v: UrlView, model: Any, raw: str) -> str:
    if not z3().is_true(_val(model, v.parsed)):
        return "not a url"
    scheme = text(_val(model, v.scheme))
    if not z3().is_true(_val(model, v.has_host)):
        return f"{scheme}:nothing"
    kind = _val(model, v.kind).as_long()
    if kind == HOST_V4:
        host = str(ipaddress.IPv4Address(_val(model, v.ip).as_long()))
    elif kind == HOST_V6:
        host = f"[{ipaddress.IPv6Address(_val(model, v.ip).as_long())}]"
    else:
        host = text(_val(model, v.host))
    port = _val(model, v.port).as_long()
    userinfo = "user@" if z3().is_true(_val(model, v.userinfo)) else ""
    ambiguous = "a b" if z3().is_true(_val(model, v.ambiguous)) else ""
    return f"{scheme}://{userinfo}{host}{'' if port < 0 else f':{port}'}/{ambiguous}"


def _concrete_email(e: EmailView, model: Any, raw: str) -> str:
    if not z3().is_true(_val(model, e.ok)):
        return "not an address"
    n = _val(model, e.count).as_long()
    return ", ".join(
        f"{text(_val(model, e.locals[i]))}@{text(_val(model, e.domains[i]))}" for i in range(n)
    )


def normalized_path(raw: str) -> str:
    """What a path-only argument's raw absolute value reads as (``os.path.normpath``)."""
    path = os.path.normpath(raw)
    return "/" + path.lstrip("/") if path.startswith("//") else path
