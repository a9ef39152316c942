"""The ``Store`` contract, checked on every backend.

Every backend runs every test here; a new backend joins by adding itself to ``BACKENDS``
(or, on a server the tests start, ``SERVER_BACKENDS``).

Sliding windows count the amounts stamped after ``now - window``: an amount charged at ``t``
counts until just before ``t + window`` and no longer at exactly ``t + window`` (the window is
open at its old end). Amounts stamped *later* than ``now`` count too: they were recorded by a
caller that read its clock after this one but reached the store first, and leaving them out
would let racing callers together pass a limit.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin.store import MemoryStore, SQLiteStore, Store, open_store

BACKENDS: dict[str, Callable[[Path], Store]] = {
    "memory": lambda tmp_path: MemoryStore(),
    "sqlite": lambda tmp_path: SQLiteStore(tmp_path / "store.db"),
}
# Backends on a real server: the fixture (tests/conftest.py) giving an empty server's URL,
# and how to open the store on it.
SERVER_BACKENDS: dict[str, tuple[str, Callable[[str], Store]]] = {
    "redis": ("redis_url", lambda url: open_store(url)),
    # A schema of its own per test, on the session's throwaway cluster.
    "postgres": ("postgres_url", lambda url: _postgres_store(url)),
}


def _postgres_store(url: str) -> Store:
    from guardrails_plugin.store.postgres import PostgresStore

    return PostgresStore(url, schema=f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=sorted(BACKENDS) + sorted(SERVER_BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param in SERVER_BACKENDS:
        fixture, opener = SERVER_BACKENDS[request.param]
        backend = opener(request.getfixturevalue(fixture))
    else:
        backend = BACKENDS[request.param](tmp_path)
    yield backend
    backend.close()


# -- counters -----------------------------------------------------------------------------


def test_absent_counter_totals_zero(store: Store) -> None:
    assert store.total("nothing") == 0.0


def test_charge_within_limit_is_added(store: Store) -> None:
    assert store.charge("k", 3, limit=10) is True
    assert store.charge("k", 4.5, limit=10) is True
    assert store.total("k") == 7.5


def test_charge_up_to_exactly_the_limit_is_allowed(store: Store) -> None:
    assert store.charge("k", 6, limit=10) is True
    assert store.charge("k", 4, limit=10) is True
    assert store.total("k") == 10.0


def test_charge_over_limit_is_refused_and_adds_nothing(store: Store) -> None:
    assert store.charge("k", 8, limit=10) is True
    assert store.charge("k", 3, limit=10) is False
    assert store.total("k") == 8.0
    assert store.charge("fresh", 11, limit=10) is False
    assert store.total("fresh") == 0.0


def test_refund_frees_room_for_a_later_charge(store: Store) -> None:
    assert store.charge("k", 10, limit=10) is True
    assert store.charge("k", 1, limit=10) is False
    assert store.charge("k", -4, limit=10) is True
    assert store.total("k") == 6.0
    assert store.charge("k", 4, limit=10) is True


def test_refund_is_recorded_even_when_the_total_stays_over_the_limit(store: Store) -> None:
    store.charge("k", 10, limit=10)
    assert store.charge("k", -2, limit=5) is True  # the limit was lowered meanwhile
    assert store.total("k") == 8.0


def test_zero_charge_asks_whether_there_is_room(store: Store) -> None:
    store.charge("k", 5, limit=5)
    assert store.charge("k", 0, limit=5) is True
    assert store.charge("k", 0, limit=4) is False
    assert store.total("k") == 5.0


def test_counters_are_independent_per_key(store: Store) -> None:
    store.charge("a", 5, limit=5)
    assert store.charge("b", 5, limit=5) is True
    assert (store.total("a"), store.total("b")) == (5.0, 5.0)


def test_infinite_limit_is_unlimited(store: Store) -> None:
    assert store.charge("k", 1e300, limit=float("inf")) is True


def test_nan_limit_refuses_every_charge(store: Store) -> None:
    assert store.charge("k", 1, limit=float("nan")) is False
    assert store.total("k") == 0.0


@pytest.mark.parametrize("amount", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_amount_is_an_error(store: Store, amount: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        store.charge("k", amount, limit=10)
    with pytest.raises(ValueError, match="finite"):
        store.charge("k", amount, limit=10, window=60, now=1000.0)
    assert store.total("k") == 0.0


# -- sliding windows ----------------------------------------------------------------------


def test_window_counts_only_amounts_inside_it(store: Store) -> None:
    assert store.charge("r", 3, limit=5, window=10, now=100.0) is True
    assert store.charge("r", 2, limit=5, window=10, now=105.0) is True
    assert store.charge("r", 1, limit=5, window=10, now=109.0) is False
    assert store.total("r", window=10, now=109.0) == 5.0
    assert store.total("r", window=10, now=112.0) == 2.0
    assert store.charge("r", 3, limit=5, window=10, now=112.0) is True
    assert store.total("r", window=10, now=125.0) == 0.0


def test_window_entry_counts_until_just_before_the_boundary(store: Store) -> None:
    store.charge("r", 1, limit=1, window=10, now=100.0)
    assert store.total("r", window=10, now=109.999) == 1.0
    assert store.charge("r", 1, limit=1, window=10, now=109.999) is False


def test_window_entry_ages_out_exactly_at_the_boundary(store: Store) -> None:
    store.charge("r", 1, limit=1, window=10, now=100.0)
    assert store.total("r", window=10, now=110.0) == 0.0
    assert store.charge("r", 1, limit=1, window=10, now=110.0) is True


def test_windowed_charge_over_limit_adds_nothing(store: Store) -> None:
    assert store.charge("r", 4, limit=5, window=60, now=1000.0) is True
    assert store.charge("r", 2, limit=5, window=60, now=1001.0) is False
    assert store.total("r", window=60, now=1001.0) == 4.0
    # Had the refused charge been recorded, it would still count here.
    assert store.total("r", window=60, now=1060.5) == 0.0


def test_windowed_refund_ages_out_together_with_its_charge(store: Store) -> None:
    assert store.charge("r", 5, limit=10, window=10, now=100.0) is True
    assert store.charge("r", 3, limit=10, window=10, now=104.0) is True
    # The call charged at t=100 failed: refund it, stamped with the original time.
    assert store.charge("r", -5, limit=10, window=10, now=100.0) is True
    assert store.total("r", window=10, now=105.0) == 3.0
    # At 110.5 both the charge and its refund are gone; only the t=104 charge remains.
    assert store.total("r", window=10, now=110.5) == 3.0
    assert store.charge("r", 8, limit=10, window=10, now=110.5) is False
    assert store.charge("r", 7, limit=10, window=10, now=110.5) is True


def test_window_counts_amounts_stamped_later_by_callers_that_got_there_first(
    store: Store,
) -> None:
    # Two callers read the clock (104, then 105); the second reaches the store first.
    assert store.charge("r", 1, limit=1, window=10, now=105.0) is True
    assert store.charge("r", 1, limit=1, window=10, now=104.0) is False
    assert store.total("r", window=10, now=104.0) == 1.0
    assert store.total("r", window=10, now=114.0) == 1.0
    assert store.total("r", window=10, now=115.0) == 0.0


def test_window_defaults_to_the_current_time(store: Store) -> None:
    assert store.charge("r", 2, limit=2, window=3600) is True
    assert store.charge("r", 1, limit=2, window=3600) is False
    assert store.total("r", window=3600) == 2.0


def test_windows_are_independent_per_key(store: Store) -> None:
    store.charge("a", 1, limit=1, window=10, now=100.0)
    assert store.charge("b", 1, limit=1, window=10, now=100.0) is True


@pytest.mark.parametrize("window", [0, -1, float("nan"), float("inf")])
def test_window_must_be_a_positive_finite_number_of_seconds(store: Store, window: float) -> None:
    with pytest.raises(ValueError, match="window"):
        store.charge("r", 1, limit=1, window=window, now=100.0)
    with pytest.raises(ValueError, match="window"):
        store.total("r", window=window, now=100.0)


# -- sets ---------------------------------------------------------------------------------


def test_absent_set_has_no_members(store: Store) -> None:
    assert store.members("nobody") == frozenset()


def test_add_members_returns_the_newly_added_in_order(store: Store) -> None:
    assert store.add_members("to", ["bob", "alice"]) == ("bob", "alice")
    assert store.add_members("to", ["alice", "carol", "carol"]) == ("carol",)
    assert store.members("to") == frozenset({"alice", "bob", "carol"})


def test_adding_only_existing_members_returns_empty(store: Store) -> None:
    store.add_members("to", ["alice"])
    assert store.add_members("to", ["alice"]) == ()
    assert store.add_members("to", []) == ()


def test_add_members_up_to_the_limit_is_allowed(store: Store) -> None:
    assert store.add_members("to", ["a", "b"], limit=3) == ("a", "b")
    assert store.add_members("to", ["c"], limit=3) == ("c",)
    assert store.members("to") == frozenset("abc")


def test_add_members_over_the_limit_adds_none_of_them(store: Store) -> None:
    store.add_members("to", ["a", "b"], limit=3)
    assert store.add_members("to", ["c", "d"], limit=3) is None
    assert store.members("to") == frozenset("ab")
    assert store.add_members("fresh", ["x", "y"], limit=1) is None
    assert store.members("fresh") == frozenset()


def test_re_adding_existing_members_does_not_count_against_the_limit(store: Store) -> None:
    store.add_members("to", ["a", "b"], limit=2)
    assert store.add_members("to", ["a", "b", "a"], limit=2) == ()
    assert store.add_members("to", ["b", "c"], limit=3) == ("c",)
    assert store.add_members("to", ["a", "d"], limit=3) is None
    assert store.members("to") == frozenset("abc")


def test_set_already_over_a_lowered_limit_refuses_even_known_members(store: Store) -> None:
    store.add_members("to", ["a", "b", "c"])
    assert store.add_members("to", ["a"], limit=2) is None


def test_remove_members_ignores_absent_ones(store: Store) -> None:
    store.add_members("to", ["a", "b", "c"])
    store.remove_members("to", ["b", "zzz"])
    store.remove_members("nobody", ["a"])
    assert store.members("to") == frozenset("ac")
    store.remove_members("to", ["a", "c"])
    assert store.members("to") == frozenset()


def test_removed_members_free_room_under_the_limit(store: Store) -> None:
    store.add_members("to", ["a", "b"], limit=2)
    store.remove_members("to", ["a"])
    assert store.add_members("to", ["c"], limit=2) == ("c",)


def test_a_single_string_is_not_taken_for_a_set_of_letters(store: Store) -> None:
    with pytest.raises(TypeError, match="one string"):
        store.add_members("to", "alice")
    with pytest.raises(TypeError, match="one string"):
        store.remove_members("to", "alice")
    with pytest.raises(TypeError, match="strings"):
        store.add_members("to", [1])  # type: ignore[list-item]
    assert store.members("to") == frozenset()


def test_members_may_be_any_text(store: Store) -> None:
    odd = ["", "a'b", 'q"uote', "naïve ☃", "x\x00y", "%_*"]
    assert store.add_members("odd", odd) == tuple(odd)
    assert store.add_members("odd", odd, limit=len(odd)) == ()
    assert store.members("odd") == frozenset(odd)
    store.remove_members("odd", ["%_*", "a'b", "x\x00y"])
    assert store.members("odd") == frozenset(odd) - {"%_*", "a'b", "x\x00y"}


# -- documents ----------------------------------------------------------------------------


def test_absent_document_is_none(store: Store) -> None:
    assert store.get("nothing") is None


def test_document_round_trips(store: Store) -> None:
    doc = {"tool": "send_email", "args": {"to": ["a@x.org"]}, "n": 3, "f": 0.5, "ok": None}
    store.put("grant/1", doc)
    assert store.get("grant/1") == doc
    store.put("flag", True)
    assert store.get("flag") is True
    store.put("text", "naïve ☃")
    assert store.get("text") == "naïve ☃"


def test_documents_come_back_as_json_reads_them(store: Store) -> None:
    store.put("k", {"pair": (1, 2)})
    assert store.get("k") == {"pair": [1, 2]}


def test_put_replaces_the_document(store: Store) -> None:
    store.put("k", {"v": 1})
    store.put("k", [1, 2])
    assert store.get("k") == [1, 2]


def test_delete_says_whether_there_was_a_document(store: Store) -> None:
    store.put("k", 1)
    assert store.delete("k") is True
    assert store.get("k") is None
    assert store.delete("k") is False


def test_stored_null_is_indistinguishable_from_absent(store: Store) -> None:
    store.put("k", None)
    assert store.get("k") is None
    assert store.delete("k") is True


def test_documents_are_copies(store: Store) -> None:
    doc = {"tools": ["read"], "limits": {"n": 1}}
    store.put("g", doc)
    doc["tools"].append("write")
    assert store.get("g") == {"tools": ["read"], "limits": {"n": 1}}
    got = store.get("g")
    got["tools"].append("delete")
    got["limits"]["n"] = 99
    assert store.get("g") == {"tools": ["read"], "limits": {"n": 1}}
    scanned = store.scan("g")
    scanned["g"]["tools"].clear()
    assert store.get("g") == {"tools": ["read"], "limits": {"n": 1}}


@pytest.mark.parametrize("value", [{"s": {1, 2}}, object(), {"x": float("nan")}])
def test_non_json_document_is_refused_with_its_key(store: Store, value: object) -> None:
    with pytest.raises(TypeError, match="'bad'"):
        store.put("bad", value)
    assert store.get("bad") is None


def test_document_keys_and_text_may_hold_any_characters(store: Store) -> None:
    keys = ["x\x00y", "x\x00z", "x'", "☃", ""]
    for key in keys:
        store.put(key, {"key": key, "text": key + "\x00\n\t\"'"})
    for key in keys:
        assert store.get(key) == {"key": key, "text": key + "\x00\n\t\"'"}
    assert set(store.scan("x\x00")) == {"x\x00y", "x\x00z"}


def test_scan_returns_documents_whose_key_starts_with_the_prefix(store: Store) -> None:
    for key in ["grant/a", "grant/b", "grants", "grant", "flag/grant/c", "Grant/d"]:
        store.put(key, key)
    assert store.scan("grant/") == {"grant/a": "grant/a", "grant/b": "grant/b"}
    assert set(store.scan("grant")) == {"grant", "grant/a", "grant/b", "grants"}
    assert store.scan("nothing/") == {}


def test_scan_with_empty_prefix_returns_every_document(store: Store) -> None:
    store.put("a", 1)
    store.put("b", 2)
    assert store.scan("") == {"a": 1, "b": 2}


def test_scan_matches_prefixes_literally_across_unicode(store: Store) -> None:
    keys = ["a", "a%", "a_", "ab", "a\uffff", "a\U0001d11e", "a\x7f", "b", "\u00e9", "A"]
    for key in keys:
        store.put(key, key)
    assert set(store.scan("a")) == {k for k in keys if k.startswith("a")}
    assert set(store.scan("a_")) == {"a_"}
    assert set(store.scan("a%")) == {"a%"}
    assert set(store.scan("a\uffff")) == {"a\uffff"}


# -- the four kinds of state ----------------------------------------------------------------


def test_counters_sets_and_documents_do_not_share_keys(store: Store) -> None:
    store.charge("k", 1, limit=10)
    store.add_members("k", ["m"])
    store.put("k", {"doc": True})
    assert store.total("k") == 1.0
    assert store.members("k") == frozenset({"m"})
    assert store.get("k") == {"doc": True}
    assert store.scan("") == {"k": {"doc": True}}
    assert store.delete("k") is True
    assert store.total("k") == 1.0
    assert store.members("k") == frozenset({"m"})


# -- async twins ----------------------------------------------------------------------------


async def test_async_twins_keep_the_same_contract(store: Store) -> None:
    assert await store.acharge("k", 2, limit=3) is True
    assert await store.acharge("k", 2, limit=3) is False
    assert await store.atotal("k") == 2.0
    assert await store.acharge("r", 1, limit=1, window=10, now=100.0) is True
    assert await store.acharge("r", 1, limit=1, window=10, now=105.0) is False
    assert await store.atotal("r", window=10, now=110.0) == 0.0
    assert await store.aadd_members("s", ["a", "b"], limit=2) == ("a", "b")
    assert await store.aadd_members("s", ["c"], limit=2) is None
    await store.aremove_members("s", ["a"])
    assert await store.amembers("s") == frozenset({"b"})
    await store.aput("doc/1", {"v": [1]})
    got = await store.aget("doc/1")
    assert got == {"v": [1]}
    got["v"].append(2)
    assert await store.ascan("doc/") == {"doc/1": {"v": [1]}}
    assert await store.adelete("doc/1") is True
    assert await store.aget("doc/1") is None
    assert await store.adelete("doc/1") is False


# -- concurrency ----------------------------------------------------------------------------


def _hammer(work: Callable[[], object], threads: int, times: int) -> list[object]:
    """Run ``work`` ``times`` times in each of ``threads`` threads, all released at once."""
    start = threading.Barrier(threads)
    results: list[object] = []
    lock = threading.Lock()

    def run() -> None:
        start.wait()
        mine = [work() for _ in range(times)]
        with lock:
            results.extend(mine)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def test_concurrent_charges_never_pass_the_limit(store: Store) -> None:
    results = _hammer(lambda: store.charge("budget", 1, limit=100), threads=8, times=50)
    assert results.count(True) == 100
    assert results.count(False) == 300
    assert store.total("budget") == 100.0


def test_concurrent_windowed_charges_never_pass_the_limit(store: Store) -> None:
    # Like the guard, each caller reads the clock first, then charges: stamps interleave.
    results = _hammer(
        lambda: store.charge("rate", 1, limit=100, window=3600, now=time.time()),
        threads=8,
        times=50,
    )
    assert results.count(True) == 100
    assert store.total("rate", window=3600) == 100.0


def test_concurrent_distinct_members_never_pass_the_limit(store: Store) -> None:
    counter = iter(range(10_000))
    lock = threading.Lock()

    def add_one() -> object:
        with lock:
            member = f"m{next(counter)}"
        return store.add_members("recipients", [member], limit=30)

    results = _hammer(add_one, threads=8, times=10)
    assert sum(result is not None for result in results) == 30
    assert len(store.members("recipients")) == 30


def test_close_can_be_called_twice(store: Store) -> None:
    store.close()
    store.close()


# -- open_store -----------------------------------------------------------------------------


def test_open_store_understands_memory_urls() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)


def test_open_store_understands_sqlite_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db")  # tmp_path starts with "/"
    assert isinstance(absolute, SQLiteStore)
    assert absolute.path == f"{tmp_path}/abs.db"
    absolute.close()
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///rel.db")
    assert isinstance(relative, SQLiteStore)
    assert relative.path == "rel.db"
    assert (tmp_path / "rel.db").exists()
    relative.close()
    for url in ("sqlite://:memory:", "sqlite:///:memory:"):
        in_memory = open_store(url)
        assert isinstance(in_memory, SQLiteStore)
        assert in_memory.path == ":memory:"
        in_memory.close()


@pytest.mark.parametrize("url", ["valkey://localhost", "mysql:///x", "memory", "file.db", ""])
def test_open_store_names_the_supported_schemes_for_unknown_ones(url: str) -> None:
    with pytest.raises(ValueError, match=r"memory://.*sqlite:///path/to/file\.db"):
        open_store(url)


@pytest.mark.parametrize(
    "url", ["memory://x", "sqlite://", "sqlite:///", "sqlite://host/x.db", "sqlite:///x.db?mode=ro"]
)
def test_open_store_refuses_malformed_urls(url: str) -> None:
    with pytest.raises(ValueError, match="store URL"):
        open_store(url)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["put", "delete"]),
            st.sampled_from(["a", "a/", "a/b", "ab", "b", "a/b/c", ""]),
        ),
        max_size=30,
    ),
    st.sampled_from(["", "a", "a/", "a/b", "b", "z"]),
)
def test_memory_scan_matches_a_plain_dict(ops: list[tuple[str, str]], prefix: str) -> None:
    """The memory store keeps a sorted key index for prefix scans; it must agree with a dict."""
    store, model = MemoryStore(), dict[str, int]()
    for i, (op, key) in enumerate(ops):
        if op == "put":
            store.put(key, i)
            model[key] = i
        else:
            assert store.delete(key) == (model.pop(key, None) is not None)
    expected = {k: v for k, v in sorted(model.items()) if k.startswith(prefix)}
    assert dict(store.scan(prefix)) == expected
    assert list(store.scan(prefix)) == list(expected)


# -- compare and set --------------------------------------------------------------------------


def test_put_if_absent_claims_a_free_key_once(store: Store) -> None:
    assert store.put_if("claim/x", {"by": "a"}, expected=None) is True
    assert store.put_if("claim/x", {"by": "b"}, expected=None) is False
    assert store.get("claim/x") == {"by": "a"}


def test_put_if_replaces_only_the_expected_document(store: Store) -> None:
    store.put("doc", {"n": 1, "who": "a"})
    assert store.put_if("doc", {"n": 2}, expected={"n": 2}) is False
    assert store.put_if("doc", {"n": 2}, expected={"who": "a", "n": 1}) is True  # key order
    assert store.get("doc") == {"n": 2}


def test_put_if_tells_true_from_one(store: Store) -> None:
    store.put("doc", {"n": True})
    assert store.put_if("doc", {"n": 2}, expected={"n": 1}) is False
    assert store.get("doc") == {"n": True}


def test_put_if_with_none_value_releases_only_the_holders_claim(store: Store) -> None:
    store.put("claim/x", {"by": "a"})
    assert store.put_if("claim/x", None, expected={"by": "b"}) is False
    assert store.get("claim/x") == {"by": "a"}
    assert store.put_if("claim/x", None, expected={"by": "a"}) is True
    assert store.get("claim/x") is None
    assert store.scan("claim/") == {}
    assert store.put_if("claim/x", {"by": "b"}, expected=None) is True


def test_put_if_refuses_non_json_documents(store: Store) -> None:
    with pytest.raises(TypeError, match="claim"):
        store.put_if("claim", {1, 2}, expected=None)
    assert store.get("claim") is None


async def test_aput_if_keeps_the_contract(store: Store) -> None:
    assert await store.aput_if("claim", 1, expected=None) is True
    assert await store.aput_if("claim", 2, expected=None) is False
    assert await store.aput_if("claim", None, expected=1) is True
    assert await store.aget("claim") is None


def test_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    counter = iter(range(10_000))
    lock = threading.Lock()

    def claim() -> object:
        with lock:
            me = next(counter)
        return store.put_if(f"claim/{me // 8}", {"by": me}, expected=None)

    results = _hammer(claim, threads=8, times=10)
    assert results.count(True) == 10
    assert len(store.scan("claim/")) == 10
