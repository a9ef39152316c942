"""Secrets out of the audit trail, before anything is hashed or written.

A ``Redactor`` returns a JSON-ready copy of a value: under a key that names a secret
(``password``, ``api_key``, ``Authorization``...) the whole value is replaced; in every other
string (mapping keys included), the substrings that look like a secret (a bearer token, an
``sk-...`` API key, an AWS access key id, a PEM private key, a password in a URL or query
string) are replaced, and so is the value written after a secret-named key in text: JSON a
tool returned (``"access_token": "..."``), arguments that were not valid JSON, an object's
repr (``password='...'``), a header line (``X-Api-Key: ...``). What cannot be written as JSON
becomes a string: bytes are decoded, NaN and infinities spelled out, other objects
``str()``-ed (then redacted like any string), tuples and sets listed.

Redaction runs before hashing: the log never holds the secret, and the chain still verifies.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["DEFAULT_KEYS", "DEFAULT_PATTERNS", "Redactor"]

DEFAULT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "authorization",
    "cookie",
    "private_key",
    "credential",
)
"""Key names whose values are hidden: matched case-insensitively, anywhere in the key
(``access_token``, ``X-Api-Key``, ``client_secret``), ``-`` read as ``_``. Broad on purpose:
``max_tokens`` is hidden too."""

DEFAULT_PATTERNS: tuple[str, ...] = (
    # Authorization header values: "Bearer <token>", "Basic <base64>" (the scheme is kept).
    r"(?i)\b(?:bearer|basic)\s+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)",
    # OpenAI / Anthropic style API keys: sk-..., sk-proj-..., sk-ant-...
    r"\bsk-[A-Za-z0-9_\-]{16,}",
    # AWS access key ids (long-term AKIA, temporary ASIA).
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    # GitHub tokens.
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",
    # PEM private keys, whole blocks.
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
    # password=..., token=... in query strings and config lines.
    r"(?i)\b(?:password|passwd|pwd|secret|token|api_?key|access_?token)=(?P<secret>[^&\s\"']+)",
    # user:password@ in URLs.
    r"://[^/\s:@]+:(?P<secret>[^@\s/]+)@",
)
"""Regular expressions for secrets inside strings. When a pattern has a group named
``secret`` only that group is replaced (``Bearer [REDACTED]``), else the whole match."""

_MAX_DEPTH = 32


class Redactor:
    """Replaces secrets in audit data; ``Redactor()`` uses the defaults.

    >>> r = Redactor()
    >>> r({"user": "ann", "Password": "hunter2", "headers": {"Authorization": "Bearer abc"}})
    {'user': 'ann', 'Password': '[REDACTED]', 'headers': {'Authorization': '[REDACTED]'}}
    >>> r("curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x'")
    "curl -H 'Authorization: Bearer [REDACTED]'"

    ``keys`` and ``patterns`` replace the defaults (extend them with
    ``[*DEFAULT_KEYS, "ssn"]``); ``Redactor(keys=(), patterns=())`` only makes values
    JSON-ready. Patterns are strings or compiled ``re.Pattern`` objects. ``keys`` are also
    looked for in text, followed by ``:`` or ``=``: the value after one is replaced.
    """

    def __init__(
        self,
        keys: Iterable[str] = DEFAULT_KEYS,
        patterns: Iterable[str | re.Pattern[str]] = DEFAULT_PATTERNS,
        replacement: str = "[REDACTED]",
    ) -> None:
        if isinstance(keys, str):
            raise TypeError(f"keys must be a list of key names, not one string: {keys!r}")
        if isinstance(patterns, str | re.Pattern):
            raise TypeError(f"patterns must be a list, not one pattern: {patterns!r}")
        self.keys = tuple(_norm_key(k) for k in keys)
        compiled: list[re.Pattern[str]] = []
        for p in patterns:
            try:
                compiled.append(p if isinstance(p, re.Pattern) else re.compile(p))
            except re.error as exc:
                raise ValueError(
                    f"redaction pattern {p!r} is not a regular expression: {exc}"
                ) from None
        self.patterns = tuple(compiled)
        self.replacement = replacement
        self._keyed = _keyed_values(self.keys, replacement)
        self._screen = _screen(self.patterns)
        self._key_cache: dict[str, bool] = {}
        self._names: dict[str, tuple[str, bool]] = {}  # mapping key -> (as written, hidden?)

    def __repr__(self) -> str:
        return (
            f"Redactor(keys={list(self.keys)!r}, {len(self.patterns)} patterns, "
            f"replacement={self.replacement!r})"
        )

    def __call__(self, value: Any) -> Any:
        """A JSON-ready copy of ``value`` with secrets replaced."""
        return self._clean(value, 0)

    def text(self, text: str) -> str:
        """``text`` with every secret-looking substring replaced."""
        # Most strings: one search instead of one per pattern.
        if self._screen is None or self._screen.search(text) is not None:
            for pattern in self.patterns:
                if "secret" in pattern.groupindex:
                    text = pattern.sub(self._keep_around, text)
                else:
                    text = pattern.sub(self.replacement, text)
        # Last, so "Authorization: Bearer [REDACTED]" stays readable; every key-value it
        # replaces has a ":" or "=", so most strings skip the search.
        if self._keyed is not None and (":" in text or "=" in text):
            text = self._keyed.sub(self._keep_quotes, text)
        return text

    def hides(self, key: str) -> bool:
        """Whether the value under ``key`` is replaced whole."""
        found = self._key_cache.get(key)
        if found is None:
            norm = _norm_key(key)
            found = any(k in norm for k in self.keys)
            if len(self._key_cache) < 4096:
                self._key_cache[key] = found
        return found

    def _keep_around(self, match: re.Match[str]) -> str:
        whole, start = match.group(0), match.start()
        return (
            whole[: match.start("secret") - start]
            + self.replacement
            + whole[match.end("secret") - start :]
        )

    def _keep_quotes(self, match: re.Match[str]) -> str:
        """The value after a secret-named key replaced, its quotes (``"``, ``'``, ``\\"``)
        kept."""
        value = match.group("secret")
        quote = value[:2] if value.startswith('\\"') else value[:1] if value[:1] in "\"'" else ""
        inner = f"{quote}{self.replacement}{quote}"
        whole, start = match.group(0), match.start()
        return whole[: match.start("secret") - start] + inner

    def _clean(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            return self.text(_utf8(value))
        if value is None or kind is bool or kind is int:
            return value
        if kind is dict:
            return self._mapping(value, depth)
        if isinstance(value, str):
            return self.text(_utf8(str(value)))
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else str(value)
        if depth >= _MAX_DEPTH:
            return "[too deep]"
        if isinstance(value, Mapping):
            return self._mapping(value, depth)
        if isinstance(value, list | tuple):
            return [self._clean(v, depth + 1) for v in value]
        if isinstance(value, set | frozenset):
            return sorted((self._clean(v, depth + 1) for v in value), key=repr)
        if isinstance(value, bytes | bytearray):
            return self.text(bytes(value).decode("utf-8", "backslashreplace"))
        if isinstance(value, os.PathLike):
            return self.text(_utf8(str(os.fspath(value))))
        return self.text(_utf8(_str(value)))

    def _mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        if depth >= _MAX_DEPTH:
            return {"[too deep]": True}
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(k, bytes | bytearray):
                k = bytes(k).decode("utf-8", "backslashreplace")
            key, hidden = self._name(_utf8(k if isinstance(k, str) else _str(k)))
            if key in out:  # two keys redacted alike: keep both values
                n = 2
                while f"{key} ({n})" in out:
                    n += 1
                key = f"{key} ({n})"
            out[key] = self.replacement if hidden else self._clean(v, depth + 1)
        return out

    def _name(self, name: str) -> tuple[str, bool]:
        """A mapping key as written (a key can hold a secret too: ``{"sk-...": "prod"}``),
        and whether its value is hidden. Keys repeat: cached, unless they held a secret
        (this object must not keep one)."""
        found = self._names.get(name)
        if found is None:
            written = self.text(name)
            if written != name:
                return written, any(k in _norm_key(name) for k in self.keys)
            found = (written, self.hides(name))
            if len(self._names) < 4096:
                self._names[name] = found
        return found


_FLAG_LETTERS = (
    (re.IGNORECASE, "i"),
    (re.MULTILINE, "m"),
    (re.DOTALL, "s"),
    (re.VERBOSE, "x"),
    (re.ASCII, "a"),
)
_GLOBAL_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")
_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_]\w*>")
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")


def _screen(patterns: tuple[re.Pattern[str], ...]) -> re.Pattern[str] | None:
    """One alternation of all the patterns (named groups made plain, flags scoped): a string
    it does not match, none of them matches. None when the patterns cannot be combined
    safely (back-references), and then each pattern runs on every string."""
    if not patterns:
        return None
    parts = []
    for p in patterns:
        src = p.pattern
        if _BACKREFERENCE.search(src):
            return None
        while (m := _GLOBAL_FLAGS.match(src)) is not None:
            src = src[m.end() :]
        src, n = _NAMED_GROUP.subn("(?:", src)
        if n != len(p.groupindex):
            return None
        flags = "".join(letter for flag, letter in _FLAG_LETTERS if p.flags & flag)
        parts.append(f"(?{flags}:{src})" if flags else f"(?:{src})")
    try:
        return re.compile("|".join(parts))
    except re.error:
        return None


def _keyed_values(keys: tuple[str, ...], replacement: str) -> re.Pattern[str] | None:
    """The value after a secret-named key in text: ``"api_key": "..."`` (JSON, JSON inside
    a JSON string), ``password='...'`` (a repr), ``X-Api-Key: ...`` (a header, YAML).

    The match starts at the key word (``client_secret`` matches at ``secret``) and every
    repetition before the value is bounded, so a long string costs linear time."""
    if not keys:
        return None
    words = "|".join(re.escape(k).replace("_", "[-_]") for k in sorted(keys, key=len)[::-1])
    scheme = r"(?:bearer|basic|token)[ \t]+"  # Authorization: Bearer <the secret>
    value = (
        r'"(?:[^"\\\n]|\\.)*(?:"|$|(?=\n))'  # a JSON string (or cut short: an excerpt)
        r"|'(?:[^'\\\n]|\\.)*(?:'|$|(?=\n))"  # a Python string in a repr
        r'|\\"(?:[^"\\\n]|\\[^"\n])*\\"'  # a JSON string inside a JSON string
        rf"|(?![{{\[]|{re.escape(replacement)}|{scheme})[^\s\"',;&}}]+"  # a bare word
    )
    return re.compile(
        rf"(?i)(?:{words})[\w.\-]{{0,40}}(?:\\?[\"'])?[ \t]{{0,8}}[:=][ \t]{{0,8}}"
        rf"(?:{scheme})?(?P<secret>{value})"
    )


def _norm_key(key: str) -> str:
    return key.lower().replace("-", "_")


def _utf8(text: str) -> str:
    """``text`` without lone surrogates (they cannot be written as UTF-8)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not lose the record
        return f"<{type(value).__name__} object>"
