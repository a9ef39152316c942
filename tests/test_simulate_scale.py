"""Simulation at scale: shards as Ray tasks on a local Ray instance, and the shards' state
in real stores (Redis, SQLite), each giving the report the in-process run gives."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import RedisServer, RedisServerError, redis_server

from guardrails_plugin.simulate import Scenario, simulate
from guardrails_plugin.store import open_store

ROOT = Path(__file__).resolve().parent.parent
COOKBOOK = ROOT / "cookbook" / "simulation.yaml"


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario.from_yaml(COOKBOOK).replace(interactions=3_000, shards=3)


def test_a_small_simulation_on_a_local_ray_instance_gives_the_in_process_report(
    scenario: Scenario,
) -> None:
    import ray

    here = simulate(scenario)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        done: list[int] = []
        there = simulate(scenario, ray="local", progress=done.append)
        assert ray.is_initialized()  # an instance the caller started is left running
    finally:
        ray.shutdown()
    assert there.workers == "ray local"
    assert there.to_json() == here.to_json()
    assert sum(done) == scenario.interactions  # progress: one report per finished shard
    assert here.harmful_calls > 0  # a simulation with something in it


@pytest.fixture
def server() -> Iterator[RedisServer]:
    try:
        with redis_server() as s:
            yield s
            return
    except RedisServerError as exc:
        problem = str(exc)
    reason = f"no Redis server for tests: {problem}"
    if os.environ.get("GUARDRAILS_REQUIRE_REDIS") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def test_shards_keep_their_state_in_redis(scenario: Scenario, server: RedisServer) -> None:
    import redis

    here = simulate(scenario)
    there = simulate(scenario, store=server.url, workers=2)
    assert there.to_json() == here.to_json()
    # the state really went through Redis: every shard's keys under its own prefix, the
    # breaker's quarantines and trips among them
    client = redis.Redis.from_url(server.url)
    keys = [k.decode() for k in client.scan_iter(count=1_000)]
    assert keys
    shards = {k.split("sim/", 1)[1].split("/")[1] for k in keys if "sim/" in k}
    assert shards == {"s0", "s1", "s2"}
    docs = open_store(server.url).scan("sim/")
    assert any("/cascade/trip/" in k for k in docs)
    assert any("/control/flag/agent/" in k for k in docs)  # the breaker's quarantines
    # a second simulation on the same server starts from a clean namespace: same report
    again = simulate(scenario, store=server.url)
    assert again.to_json() == here.to_json()


def test_shards_share_a_sqlite_store_from_the_command_line(tmp_path: Path) -> None:
    outs = []
    for store in (None, str(tmp_path / "sim.db")):
        out = tmp_path / f"{'mem' if store is None else 'sqlite'}.json"
        command = [
            sys.executable,
            "-m",
            "guardrails_plugin.cli",
            "simulate",
            str(COOKBOOK),
            "--interactions",
            "2000",
            "--workers",
            "2",
            "--json",
            str(out),
            "--quiet",
        ]
        if store is not None:
            command += ["--store", store]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert (tmp_path / "sim.db").stat().st_size > 0


def test_a_bad_store_or_ray_address_is_one_error(tmp_path: Path) -> None:
    for extra in (
        ["--store", "nosuch://x"],
        ["--workers", "0"],
        ["--interactions", "0"],
        ["--ray", "127.0.0.1:1"],  # nothing listens there: fails at once, not after minutes
        ["--ray", "no-port-here"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "guardrails_plugin.cli", "simulate", str(COOKBOOK), *extra],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1, extra
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("error: ")
