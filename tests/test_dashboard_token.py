"""The dashboard's banner never shows a token that came from the environment (standard
output ends up in logs); the token still opens the page. A missing store is refused."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from guardrails_plugin.cli import main
from guardrails_plugin.store import SQLiteStore

pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[1]


def test_a_token_from_the_environment_stays_out_of_the_banner(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "guard.db").close()
    token = "env-token-5f1c0e9a77"
    env = {**os.environ, "GUARDRAILS_DASHBOARD_TOKEN": token, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "guardrails_plugin.cli", "dashboard",
        "--store", "guard.db", "--port", "0",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert token not in line
        assert "GUARDRAILS_DASHBOARD_TOKEN" in line
        found = re.match(r"guardrails dashboard: (http://127\.0\.0\.1:\d+)/ ", line)
        assert found is not None, line
        with httpx.Client(base_url=found[1], timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:  # the banner comes as the port is bound; accepting may follow
                try:
                    refused = client.get("/api/state")
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "the dashboard never answered"
                    time.sleep(0.05)
            assert refused.status_code in (401, 403)
            opened = client.get("/api/state", headers={"Authorization": f"Bearer {token}"})
            assert opened.status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        try:
            rest, err = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            rest, err = server.communicate()
    assert token not in rest
    assert token not in err


def test_the_dashboard_refuses_a_store_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard", "--store", str(tmp_path / "typo.db"), "--port", "0"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: SQLite store ")
    assert "does not exist" in captured.err
    assert not (tmp_path / "typo.db").exists()
