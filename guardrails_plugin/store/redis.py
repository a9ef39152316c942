"""The many-hosts store: a Redis (or Valkey) server that every worker shares.

Why this file is long: every verb exists three times (its Lua script, the sync call, the
async call on ``redis.asyncio``), and the scripts are the store's logic; splitting them from
the calls that pass their arguments would put one contract in two files.

Every verb is one server-side step: a single command, or a Lua script registered once and
run by ``EVALSHA`` (a server that lost its script cache, after a restart, gets the script
again: ``NOSCRIPT`` means it did not run, so nothing runs twice). No verb reads a value to
the client and writes it back. Numbers cross as ``repr(float)`` text and are kept as
``%.17g`` text, so totals are the exact doubles ``MemoryStore`` computes.

Keys, all under ``prefix`` (``guardrails:`` by default; it may not contain braces):

- ``<prefix>c:<key>``: a counter (a string holding the number);
- ``<prefix>w:{<key>}`` and ``<prefix>W:{<key>}``: a sliding window, a sorted set of
  ``seq:amount`` entries scored by time and a hash holding the running sum and the entry
  sequence. The braces are a Redis Cluster hash tag, so both live in one slot and one script
  may touch them; a key that contains a brace itself (or is empty) is tagged by a digest of
  it instead, ``{~<sha1>}<key>``. An idle window expires after twice its length plus a minute;
- ``<prefix>s:<key>``: a set of members;
- ``<prefix>d:{<prefix>docs}``, ``<prefix>k:{<prefix>docs}``, ``<prefix>i:{<prefix>docs}``:
  documents, as a hash of JSON texts, a hash of their canonical forms (sorted keys: what
  ``put_if`` compares, so ``{"a": 1, "b": 2}`` equals ``{"b": 2, "a": 1}`` and ``1`` does not
  equal ``1.0`` or ``true``, as in every store) and a sorted-set index of their keys;
- ``<prefix>meta``: the schema version, written when the store is created.

Every script touches one key or keys of one hash tag, so the store works on Redis Cluster
(pass a ``redis.cluster.RedisCluster`` as ``client``). Documents share one tag, so they live
in one slot on one node: ``scan(prefix)`` is then one script over the index
(``ZRANGEBYLEX``, O(log n + found)) and one atomic snapshot, on a cluster as on one server.
Documents are few and small (grants, flags, approvals); counters, windows and sets, the
busy keys, spread over the slots.

Every change of a counter, window, set or document is published, in the same script, on
the channel ``<prefix>changed:<key>``; ``subscribe`` listens there (one pub/sub connection
and thread per subscription), which is how the kill switch reaches every worker without a
read per step. A ``PUBLISH`` nobody listens to costs the server a dictionary lookup.

Faults fail closed. Connection errors, timeouts and server errors raise ``StoreError``,
which the guard turns into a deny with the reason. There are no automatic retries: a charge
whose answer timed out may have been applied, and retrying it could charge twice, so the
guard denies instead (a budget may then be over-counted, never under-counted). Dead pooled
connections are replaced at the next call, so a restarted server is used again without
restarting the app. Windows without an explicit ``now`` are stamped with the server's
clock (``TIME``), so stamps follow the order of charges across hosts.

``create=False`` opens only a store that exists: the server must answer and hold this
store's schema marker under ``prefix`` (written by any ``create=True`` open, for example
``guardrails-plugin init --store redis://...``), so a mistyped database number or prefix is
an error rather than an empty store no guard reads. Either way the constructor connects once
and raises ``StoreError`` when the server does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.retry import Retry

from .._errors import StoreError
from ._base import JSON, Store, Subscription
from ._codec import (
    check_amount,
    check_window,
    decode_document,
    encode_document,
    unique_members,
)

__all__ = ["RedisStore"]

SCHEMA_VERSION = 1
_ENCODING = ("utf-8", "surrogatepass")  # any Python string round-trips, as in MemoryStore
_CHUNK = 1000  # members or keys per Lua unpack(): the Lua stack is small

_LUA_COMMON = """
local function num(s)
  if s == 'inf' then return math.huge end
  if s == '-inf' then return -math.huge end
  if s == 'nan' then return 0/0 end
  local n = tonumber(s)
  if n == nil then error('not a number: ' .. tostring(s)) end
  return n
end
local function fmt(x) return string.format('%.17g', x) end
"""

# KEYS: counter. ARGV: amount, limit, channel.
_CHARGE = (
    _LUA_COMMON
    + """
local amount, limit = num(ARGV[1]), num(ARGV[2])
local total = num(redis.call('GET', KEYS[1]) or '0') + amount
if amount < 0 or total <= limit then
  redis.call('SET', KEYS[1], fmt(total))
  redis.call('PUBLISH', ARGV[3], '')
  return 1
end
return 0
"""
)

# Prunes the window in KEYS[1]/KEYS[2] at ``now``; returns the sum of what is left. Entries
# leave in time order (ties in insertion order), subtracted one by one as MemoryStore does.
_WINDOW_PRUNE = """
local function stamp(arg)
  if arg ~= '' then return num(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function pruned(entries, meta, now, window, write)
  local sum = num(redis.call('HGET', meta, 'sum') or '0')
  local cutoff = fmt(now - window)
  local old = redis.call('ZRANGEBYSCORE', entries, '-inf', cutoff)
  for _, member in ipairs(old) do
    sum = sum - num(string.sub(member, string.find(member, ':', 1, true) + 1))
  end
  if #old > 0 then
    if write then redis.call('ZREMRANGEBYSCORE', entries, '-inf', cutoff) end
    if redis.call('ZCARD', entries) == #old then sum = 0 end
  end
  return sum
end
"""

# KEYS: entries, meta. ARGV: amount, limit, window, now ('' = server time), channel, ttl ms.
_CHARGE_WINDOW = (
    _LUA_COMMON
    + _WINDOW_PRUNE
    + """
local amount, limit, window = num(ARGV[1]), num(ARGV[2]), num(ARGV[3])
local now = stamp(ARGV[4])
local sum = pruned(KEYS[1], KEYS[2], now, window, true)
local allowed = amount < 0 or sum + amount <= limit
if allowed and amount ~= 0 then
  local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
  redis.call('ZADD', KEYS[1], fmt(now), string.format('%012x', seq) .. ':' .. fmt(amount))
  sum = sum + amount
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
else
  redis.call('HSET', KEYS[2], 'sum', fmt(sum))
  if ARGV[6] ~= '' then
    redis.call('PEXPIRE', KEYS[1], ARGV[6])
    redis.call('PEXPIRE', KEYS[2], ARGV[6])
  end
end
if allowed and amount ~= 0 then redis.call('PUBLISH', ARGV[5], '') end
if allowed then return 1 end
return 0
"""
)

# KEYS: entries, meta. ARGV: window, now ('' = server time). Reads only.
_TOTAL_WINDOW = (
    "#!lua flags=no-writes\n"
    + _LUA_COMMON
    + _WINDOW_PRUNE
    + """
return fmt(pruned(KEYS[1], KEYS[2], stamp(ARGV[2]), num(ARGV[1]), false))
"""
)

# KEYS: set. ARGV: limit ('' = none), channel, members... Returns the new members, or false.
_ADD_MEMBERS = (
    _LUA_COMMON
    + """
local new = {}
for i = 3, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then new[#new + 1] = ARGV[i] end
end
if ARGV[1] ~= '' and not (redis.call('SCARD', KEYS[1]) + #new <= num(ARGV[1])) then
  return false
end
for i = 1, #new, 1000 do
  redis.call('SADD', KEYS[1], unpack(new, i, math.min(i + 999, #new)))
end
if #new > 0 then redis.call('PUBLISH', ARGV[2], '') end
return new
"""
)

# KEYS: set. ARGV: channel, members...
_REMOVE_MEMBERS = """
local removed = 0
for i = 2, #ARGV, 1000 do
  removed = removed + redis.call('SREM', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if removed > 0 then redis.call('PUBLISH', ARGV[1], '') end
return removed
"""

# KEYS: texts, canonical forms, index. ARGV: key, text, canonical form, channel.
_PUT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('PUBLISH', ARGV[4], '')
return 1
"""

# KEYS: texts, canonical forms, index. ARGV: key, channel.
_DELETE = """
local found = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if found > 0 then redis.call('PUBLISH', ARGV[2], '') end
return found
"""

# KEYS: texts, canonical forms, index. ARGV: key, expected canonical form ('null' also
# matches no document, as a decoded absent document is None), channel, then either
# 'delete' or 'put', text, canonical form.
_PUT_IF = """
local found = redis.call('HGET', KEYS[2], ARGV[1]) or 'null'
if found ~= ARGV[2] then return 0 end
if ARGV[4] == 'delete' then
  if redis.call('HDEL', KEYS[1], ARGV[1]) > 0 then
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('ZREM', KEYS[3], ARGV[1])
    redis.call('PUBLISH', ARGV[3], '')
  end
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[6])
  redis.call('ZADD', KEYS[3], 0, ARGV[1])
  redis.call('PUBLISH', ARGV[3], '')
end
return 1
"""

# KEYS: texts, index. ARGV: min, max (ZRANGEBYLEX bounds). Returns key, text, key, text...
_SCAN = """#!lua flags=no-writes
local keys = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2])
local out = {}
for i = 1, #keys, 1000 do
  local last = math.min(i + 999, #keys)
  local texts = redis.call('HMGET', KEYS[1], unpack(keys, i, last))
  for j = i, last do
    local text = texts[j - i + 1]
    if text then
      out[#out + 1] = keys[j]
      out[#out + 1] = text
    end
  end
end
return out
"""

_SCRIPTS = {
    "charge": _CHARGE,
    "charge_window": _CHARGE_WINDOW,
    "total_window": _TOTAL_WINDOW,
    "add_members": _ADD_MEMBERS,
    "remove_members": _REMOVE_MEMBERS,
    "put": _PUT,
    "delete": _DELETE,
    "put_if": _PUT_IF,
    "scan": _SCAN,
}


def _b(text: str) -> bytes:
    return text.encode(*_ENCODING)


def _s(data: bytes) -> str:
    return data.decode(*_ENCODING)


def _num(value: float) -> str:
    return repr(float(value))


def _canonical(key: str, value: JSON) -> str:
    """What ``put_if`` compares: JSON with sorted keys (equal iff ``same_document``)."""
    try:
        return json.dumps(
            value, ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
        )
    except (TypeError, ValueError) as exc:
        raise TypeError(f"document {key!r} is not JSON-serializable: {exc}") from exc


def _redact(url: str) -> str:
    """``url`` without its password, for messages and reprs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}://{user + ':***' if ':' in credentials else credentials}@{host}"


class RedisStore(Store):
    """Budgets, rates, sets and documents in a Redis server shared by every worker.

    ``url``: ``redis://[user:password@]host:port/db`` or ``rediss://`` (TLS), or a
    ``unix://`` socket, as redis-py reads them. ``prefix`` namespaces every key (several
    stores can share a database). ``timeout``: seconds to wait for an answer;
    ``connect_timeout``: for a connection. ``client`` / ``async_client``: ready-made clients
    instead of ``url`` (a ``RedisCluster``, say); they should not retry commands on their own
    (a retried charge may charge twice). ``ping_interval``: how often an idle subscription
    checks its connection (a connection that died silently counts as lost after
    ``ping_interval + timeout``).

    >>> store = RedisStore("redis://127.0.0.1:6379/0")  # doctest: +SKIP
    >>> store.charge("calls/run-1", 1, limit=2)  # doctest: +SKIP
    True
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "guardrails:",
        timeout: float = 2.0,
        connect_timeout: float = 2.0,
        create: bool = True,
        client: Any = None,
        async_client: Any = None,
        max_connections: int | None = None,
        ping_interval: float = 1.0,
    ) -> None:
        if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a string without braces, found {prefix!r}")
        if url is None and client is None:
            raise ValueError("pass a url (redis://host:port/db) or a client")
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self._closed = False
        self._settings: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout,
            "retry": Retry(NoBackoff(), 0),
            "retry_on_timeout": False,
            "encoding_errors": "surrogatepass",
        }
        if max_connections is not None:
            self._settings["max_connections"] = max_connections
        self._where = _redact(url) if url is not None else repr(client)
        try:
            self._client = client if client is not None else self._new_client()
        except (redis.RedisError, ValueError) as exc:
            raise StoreError(f"Redis store {self._where}: cannot open: {exc}") from exc
        self._given_async = async_client
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._async_lock = threading.Lock()
        self._scripts = {name: self._client.register_script(src) for name, src in _SCRIPTS.items()}
        self._docs = self._doc_keys(prefix)
        self._meta = _b(prefix) + b"meta"
        self._subscriptions: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._check_schema(create)

    def __repr__(self) -> str:
        state = " (closed)" if self._closed else ""
        return f"RedisStore({self._where!r}, prefix={self.prefix!r}){state}"

    def _new_client(self) -> Any:
        assert self.url is not None
        return redis.Redis.from_url(self.url, **self._settings)

    def _check_schema(self, create: bool) -> None:
        with self._errors("open", self.prefix):
            if create:
                self._client.hsetnx(self._meta, "schema_version", str(SCHEMA_VERSION))
            found = self._client.hget(self._meta, "schema_version")
        if found is None:
            raise StoreError(
                f"Redis store {self._where}: holds no guardrails store under prefix "
                f"{self.prefix!r} (create one with `guardrails-plugin init --store URL`)"
            )
        if found != str(SCHEMA_VERSION).encode():
            raise StoreError(
                f"Redis store {self._where}: holds guardrails schema version {_s(found)!r} "
                f"under prefix {self.prefix!r}; this version of guardrails-plugin reads "
                f"version {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        """Close the connections and every subscription; the store cannot be used afterwards."""
        self._closed = True
        for sub in list(self._subscriptions):
            sub.close()
        with contextlib.suppress(redis.RedisError, OSError):
            self._client.close()

    # -- keys -----------------------------------------------------------------------------

    @staticmethod
    def _doc_keys(prefix: str) -> tuple[bytes, bytes, bytes]:
        """The documents' texts, canonical forms and index: one hash tag, one slot."""
        p = _b(prefix)
        tag = b"{" + p + b"docs}"
        return (p + b"d:" + tag, p + b"k:" + tag, p + b"i:" + tag)

    def _key(self, kind: str, key: str) -> bytes:
        return _b(self.prefix + kind) + _b(key)

    def _window_keys(self, key: str) -> list[bytes]:
        raw = _b(key)
        if not key or "{" in key or "}" in key:
            tag = b"{~" + hashlib.sha1(raw).hexdigest().encode() + b"}" + raw
        else:
            tag = b"{" + raw + b"}"
        return [_b(self.prefix + "w:") + tag, _b(self.prefix + "W:") + tag]

    def _channel(self, key: str) -> bytes:
        return _b(self.prefix + "changed:") + _b(key)

    @staticmethod
    def _ttl(window: float) -> str:
        ms = (2 * window + 60) * 1000
        return str(math.ceil(ms)) if ms < 2**62 else ""

    @contextlib.contextmanager
    def _errors(self, operation: str, key: str) -> Iterator[None]:
        if self._closed:
            raise StoreError(f"{self!r}: cannot {operation} {key!r}: the store is closed")
        try:
            yield
        except redis.RedisError as exc:
            raise self._error(operation, key, exc) from exc
        except OSError as exc:
            raise self._error(operation, key, exc) from exc

    def _error(self, operation: str, key: str, exc: BaseException) -> StoreError:
        kind = (
            "timed out"
            if isinstance(exc, redis.TimeoutError | TimeoutError)
            else "server unreachable"
            if isinstance(exc, redis.ConnectionError | OSError)
            else "server error"
        )
        return StoreError(f"Redis store {self._where}: cannot {operation} {key!r}: {kind}: {exc}")

    # -- argument lists, shared by the sync and async verbs --------------------------------

    def _charge_call(
        self, key: str, amount: float, limit: float, window: float | None, now: float | None
    ) -> tuple[str, list[bytes], list[Any]]:
        check_amount(amount)
        if window is None:
            return "charge", [self._key("c:", key)], [_num(amount), _num(limit), self._channel(key)]
        check_window(window)
        args = [
            _num(amount),
            _num(limit),
            _num(window),
            "" if now is None else _num(now),
            self._channel(key),
            self._ttl(window),
        ]
        return "charge_window", self._window_keys(key), args

    def _add_call(
        self, key: str, members: Iterable[str], limit: float | None
    ) -> tuple[list[bytes], list[Any]]:
        wanted = unique_members(members)
        head: list[Any] = ["" if limit is None else _num(limit), self._channel(key)]
        return [self._key("s:", key)], head + [_b(m) for m in wanted]

    def _put_if_args(self, key: str, value: JSON | None, expected: JSON | None) -> list[Any]:
        new: list[Any] = ["delete"]
        if value is not None:
            new = ["put", encode_document(key, value), _canonical(key, value)]
        encode_document(key, expected)  # a non-JSON ``expected`` is a caller's error
        return [_b(key), _canonical(key, expected), self._channel(key), *new]

    def _scan_bounds(self, prefix: str) -> list[bytes]:
        if not prefix:
            return [b"-", b"+"]
        raw = _b(prefix)
        return [b"[" + raw, b"(" + raw + b"\xff"]  # no UTF-8 byte is 0xff

    def _scanned(self, flat: list[bytes]) -> dict[str, JSON]:
        out = {}
        for i in range(0, len(flat), 2):
            key = _s(flat[i])
            out[key] = decode_document(key, _s(flat[i + 1]), repr(self))
        return out

    # -- counters and windows -------------------------------------------------------------

    def charge(
        self,
        key: str,
        amount: float,
        limit: float,
        *,
        window: float | None = None,
        now: float | None = None,
    ) -> bool:
        script, keys, args = self._charge_call(key, amount, limit, window, now)
        with self._errors("charge", key):
            return bool(self._scripts[script](keys=keys, args=args))

    def total(self, key: str, *, window: float | None = None, now: float | None = None) -> float:
        if window is None:
            with self._errors("read total of", key):
                found = self._client.get(self._key("c:", key))
            return 0.0 if found is None else float(found)
        check_window(window)
        args = [_num(window), "" if now is None else _num(now)]
        with self._errors("read total of", key):
            found = self._scripts["total_window"](keys=self._window_keys(key), args=args)
        return float(found)

    # -- sets -----------------------------------------------------------------------------

    def add_members(
        self, key: str, members: Iterable[str], limit: float | None = None
    ) -> tuple[str, ...] | None:
        keys, args = self._add_call(key, members, limit)
        with self._errors("add members to", key):
            added = self._scripts["add_members"](keys=keys, args=args)
        return None if added is None else tuple(_s(m) for m in added)

    def remove_members(self, key: str, members: Iterable[str]) -> None:
        unwanted = unique_members(members)
        if not unwanted:
            return
        args = [self._channel(key), *(_b(m) for m in unwanted)]
        with self._errors("remove members from", key):
            self._scripts["remove_members"](keys=[self._key("s:", key)], args=args)

    def members(self, key: str) -> frozenset[str]:
        with self._errors("read members of", key):
            found = self._client.smembers(self._key("s:", key))
        return frozenset(_s(m) for m in found)

    # -- documents ------------------------------------------------------------------------

    def get(self, key: str) -> JSON | None:
        with self._errors("get document", key):
            found = self._client.hget(self._docs[0], _b(key))
        return None if found is None else decode_document(key, _s(found), repr(self))

    def put(self, key: str, value: JSON) -> None:
        args = [_b(key), encode_document(key, value), _canonical(key, value), self._channel(key)]
        with self._errors("put document", key):
            self._scripts["put"](keys=list(self._docs), args=args)

    def delete(self, key: str) -> bool:
        with self._errors("delete document", key):
            found = self._scripts["delete"](
                keys=list(self._docs), args=[_b(key), self._channel(key)]
            )
        return bool(found)

    def put_if(self, key: str, value: JSON | None, *, expected: JSON | None) -> bool:
        args = self._put_if_args(key, value, expected)
        with self._errors("compare and set document", key):
            return bool(self._scripts["put_if"](keys=list(self._docs), args=args))

    def scan(self, prefix: str) -> Mapping[str, JSON]:
        keys = [self._docs[0], self._docs[2]]
        with self._errors("scan documents with prefix", prefix):
            flat = self._scripts["scan"](keys=keys, args=self._scan_bounds(prefix))
        return self._scanned(flat)

    # -- async twins: redis.asyncio, one client per event loop ------------------------------

    def _ascripts(self) -> tuple[Any, dict[str, Any]]:
        """This event loop's async client and its scripts (an asyncio client is bound to the
        loop it connected on)."""
        given = self._given_async
        if given is not None:
            if not isinstance(given, tuple):
                scripts = {name: given.register_script(src) for name, src in _SCRIPTS.items()}
                self._given_async = given = (given, scripts)
            return given  # type: ignore[no-any-return]
        if self.url is None:
            raise StoreError(f"{self!r}: pass async_client= along with client= for async use")
        loop = asyncio.get_running_loop()
        with self._async_lock:
            found = self._async.get(loop)
            if found is None:
                settings = {**self._settings, "retry": redis.asyncio.retry.Retry(NoBackoff(), 0)}
                client = redis.asyncio.Redis.from_url(self.url, **settings)
                scripts = {name: client.register_script(src) for name, src in _SCRIPTS.items()}
                found = self._async[loop] = (client, scripts)
        return found

    @contextlib.asynccontextmanager
    async def _aerrors(self, operation: str, key: str) -> Any:
        with self._errors(operation, key):
            yield

    async def acharge(
        self,
        key: str,
        amount: float,
        limit: float,
        *,
        window: float | None = None,
        now: float | None = None,
    ) -> bool:
        script, keys, args = self._charge_call(key, amount, limit, window, now)
        async with self._aerrors("charge", key):
            _, scripts = self._ascripts()
            return bool(await scripts[script](keys=keys, args=args))

    async def atotal(
        self, key: str, *, window: float | None = None, now: float | None = None
    ) -> float:
        if window is None:
            async with self._aerrors("read total of", key):
                client, _ = self._ascripts()
                found = await client.get(self._key("c:", key))
            return 0.0 if found is None else float(found)
        check_window(window)
        args = [_num(window), "" if now is None else _num(now)]
        async with self._aerrors("read total of", key):
            _, scripts = self._ascripts()
            found = await scripts["total_window"](keys=self._window_keys(key), args=args)
        return float(found)

    async def aadd_members(
        self, key: str, members: Iterable[str], limit: float | None = None
    ) -> tuple[str, ...] | None:
        keys, args = self._add_call(key, members, limit)
        async with self._aerrors("add members to", key):
            _, scripts = self._ascripts()
            added = await scripts["add_members"](keys=keys, args=args)
        return None if added is None else tuple(_s(m) for m in added)

    async def aremove_members(self, key: str, members: Iterable[str]) -> None:
        unwanted = unique_members(members)
        if not unwanted:
            return
        args = [self._channel(key), *(_b(m) for m in unwanted)]
        async with self._aerrors("remove members from", key):
            _, scripts = self._ascripts()
            await scripts["remove_members"](keys=[self._key("s:", key)], args=args)

    async def amembers(self, key: str) -> frozenset[str]:
        async with self._aerrors("read members of", key):
            client, _ = self._ascripts()
            found = await client.smembers(self._key("s:", key))
        return frozenset(_s(m) for m in found)

    async def aget(self, key: str) -> JSON | None:
        async with self._aerrors("get document", key):
            client, _ = self._ascripts()
            found = await client.hget(self._docs[0], _b(key))
        return None if found is None else decode_document(key, _s(found), repr(self))

    async def aput(self, key: str, value: JSON) -> None:
        args = [_b(key), encode_document(key, value), _canonical(key, value), self._channel(key)]
        async with self._aerrors("put document", key):
            _, scripts = self._ascripts()
            await scripts["put"](keys=list(self._docs), args=args)

    async def adelete(self, key: str) -> bool:
        async with self._aerrors("delete document", key):
            _, scripts = self._ascripts()
            found = await scripts["delete"](
                keys=list(self._docs), args=[_b(key), self._channel(key)]
            )
        return bool(found)

    async def aput_if(self, key: str, value: JSON | None, *, expected: JSON | None) -> bool:
        args = self._put_if_args(key, value, expected)
        async with self._aerrors("compare and set document", key):
            _, scripts = self._ascripts()
            return bool(await scripts["put_if"](keys=list(self._docs), args=args))

    async def ascan(self, prefix: str) -> Mapping[str, JSON]:
        keys = [self._docs[0], self._docs[2]]
        async with self._aerrors("scan documents with prefix", prefix):
            _, scripts = self._ascripts()
            flat = await scripts["scan"](keys=keys, args=self._scan_bounds(prefix))
        return self._scanned(flat)

    # -- push -----------------------------------------------------------------------------

    def subscribe(self, key: str, callback: Callable[[], None]) -> Subscription | None:
        """Listen on ``key``'s change channel in a daemon thread with its own connection;
        reconnects (backing off up to a second) after any failure, calling ``callback``
        once each time the subscription is confirmed again."""
        stop = threading.Event()
        sub = Subscription(key, on_close=stop.set)
        self._subscriptions.add(sub)
        thread = threading.Thread(
            target=self._listen,
            args=(self._channel(key), callback, sub, stop),
            name=f"guardrails-redis-subscription {key}",
            daemon=True,
        )
        thread.start()
        return sub

    def _listen(
        self,
        channel: bytes,
        callback: Callable[[], None],
        sub: Subscription,
        stop: threading.Event,
    ) -> None:
        delay = 0.01
        while not stop.is_set():
            pubsub = None
            try:
                pubsub = self._client.pubsub()
                pubsub.subscribe(channel)
                self._confirmed(pubsub)
                _call(callback)  # whatever changed while unsubscribed: read once more
                sub.alive = True
                delay = 0.01
                self._relay(pubsub, callback, stop)
            except (redis.RedisError, OSError, AttributeError):  # a closed pubsub: AttributeError
                pass
            finally:
                sub.alive = False
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
            stop.wait(delay)
            delay = min(delay * 2, 1.0)

    def _confirmed(self, pubsub: Any) -> None:
        deadline = time.monotonic() + self.timeout + self.connect_timeout
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=self.timeout)
            if message is not None and message["type"] == "subscribe":
                return
        raise redis.TimeoutError("no confirmation of the subscription")

    def _relay(self, pubsub: Any, callback: Callable[[], None], stop: threading.Event) -> None:
        heard = time.monotonic()
        pinged = False
        while not stop.is_set():
            message = pubsub.get_message(timeout=min(self.ping_interval, 0.25))
            now = time.monotonic()
            if message is not None:
                heard, pinged = now, False
                if message["type"] == "message":
                    _call(callback)
                continue
            if now - heard >= self.ping_interval + (self.timeout if pinged else 0):
                if pinged:
                    raise redis.TimeoutError("the subscription's connection stopped answering")
                pubsub.ping()
                pinged = True


def _call(callback: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):  # a failing callback must not end the subscription
        callback()
