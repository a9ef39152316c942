"""Instructions a Python snippet executes under callgrind: the harness the benchmarks that
count instructions share (deterministic: ``PYTHONHASHSEED=0``; the load does not enter)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def instructions(code: str, *args: str, cwd: str | None = None) -> int:
    """Run ``python -c code args...`` under ``valgrind --tool=callgrind`` and return the
    instructions it executed (callgrind's ``Collected`` total). Exits with one ``error:``
    line when callgrind printed none."""
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            code,
            *args,
        ],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        sys.exit("error: callgrind printed no instruction count")
    return int(found.group(1))
