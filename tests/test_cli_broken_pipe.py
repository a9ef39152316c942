"""``guardrails-plugin ... | head``: when the reader of the output goes away, the command
stops without a word on standard error (no ``error: [Errno 32] Broken pipe``, no "Exception
ignored" from the interpreter's last flush) and exits with ``BROKEN_PIPE``, the status a
shell shows for a program SIGPIPE stopped. Real pipes, real processes: the reader takes a
few bytes (or none) and closes its end."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from guardrails_plugin.audit import AuditLog
from guardrails_plugin.cli import BROKEN_PIPE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A generated policy and audit log whose printouts are far larger than a pipe holds."""
    root = tmp_path_factory.mktemp("pipes")
    rng = random.Random(32)
    policy = root / "big.yaml"
    lines = ["rules:"]
    for i in range(3000):
        word = "".join(rng.choice("abcdefgh_") for _ in range(rng.randrange(1, 30)))
        lines += [f"  - allow: tool_{i}_{word}", f"    reason: 'rule {i} {word}'"]
    policy.write_text("\n".join(lines) + "\n")
    audit = root / "audit.db"
    with AuditLog(audit) as log:
        for i in range(3000):
            log.append("decision", outcome=rng.choice(["allow", "deny"]), tool=f"t{i}", agent="a")
    return {"policy": str(policy), "audit": str(audit)}


# (argv, the status of a run read to the end, whether the output is far larger than a pipe)
COMMANDS = [
    (["schema"], 0, False),
    (["schema", "--markdown"], 0, False),
    (["lint", "{policy}"], 0, True),
    (["audit", "export", "--log", "{audit}"], 0, True),
    (["audit", "tail", "-n", "3000", "--log", "{audit}"], 0, True),
]


@pytest.mark.parametrize("taken", [0, 4097])
@pytest.mark.parametrize(("argv", "status", "large"), COMMANDS)
def test_a_reader_that_goes_away_ends_the_command_quietly(
    files: dict[str, str], argv: list[str], status: int, large: bool, taken: int
) -> None:
    command = [sys.executable, "-m", "guardrails_plugin.cli", *(a.format(**files) for a in argv)]
    run = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.stdout is not None
    assert run.stderr is not None
    got = run.stdout.read(taken) if taken else b""
    run.stdout.close()  # what `head -c` does once it has its bytes
    try:
        stderr = run.stderr.read().decode()
        code = run.wait(timeout=300)
    finally:
        run.kill()
    assert len(got) == taken
    assert stderr == "", stderr
    if large:  # more than the pipe and the buffers hold: some write had to fail
        assert code == BROKEN_PIPE
    else:  # small: it may all have been written before the reader left
        assert code in (status, BROKEN_PIPE)
