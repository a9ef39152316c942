"""GuardMiddleware per tool-call step in counted instructions: a figure the machine's load
cannot move.

Run:  python benchmarks/callgrind_middleware.py [--runs 10] [--other DIR]

Each variant (a bare ``create_agent`` agent, one with a no-op middleware, one with LangChain's
``ToolCallLimitMiddleware``, one with ``GuardMiddleware`` under the 100-rule policy of
``bench_middleware.py``) runs ``--runs`` agent runs of 10 tool-call steps under
``valgrind --tool=callgrind`` with cache and branch simulation, counting only after 3 warm-up
runs, with a fixed hash seed (string hashing changes dict and set work by about 1% from one
process to the next). Per step it reports instructions and an estimate of cycles (instructions + 10 per L1
miss + 100 per last-level miss + 15 per mispredicted branch). ``--other DIR`` also runs the
guard from another tree (``git worktree add --detach DIR <commit>``), for before/after.

Timings on a shared 2-core machine swing by ±30%; instruction counts repeat to the last
digits whatever else runs. They miss what the machine adds (frequency, contention), so they
compare versions of the code, not machines.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEPS = 10

CHILD = r"""
import os, subprocess, sys, time
sys.path.insert(0, sys.argv[3])
import bench_middleware as b
from langchain.agents import create_agent
from langchain.agents.middleware import ToolCallLimitMiddleware
from guardrails_plugin import Guard
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.testing import ScriptedChatModel, tool_call
which, n = sys.argv[1], int(sys.argv[2])
model = ScriptedChatModel([tool_call("lookup", n=i) for i in range(10)] + ["done"])
others = {
    "bare": [],
    "no-op middleware": [b.NoopMiddleware()],
    "ToolCallLimitMiddleware": [ToolCallLimitMiddleware(tool_name="lookup", run_limit=10**9)],
}
middleware = others[which] if which in others else [GuardMiddleware(Guard(b.policy()))]
agent = create_agent(model, [b.lookup], middleware=middleware)
def run(i):
    model.calls = 0; model.seen.clear(); model.bound_tools.clear()
    agent.invoke({"messages": [{"role": "user", "content": "go"}]},
                 config={"configurable": {"thread_id": f"t{i}"}})
def control(flag):  # callgrind_control now and then misses a busy process: try again
    for _ in range(20):
        cmd = ["callgrind_control", "-i", flag, str(os.getpid())]
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            return
        time.sleep(0.5)
    raise SystemExit("callgrind_control failed")
for i in range(3):
    run(i)
control("on")
for i in range(n):
    run(100 + i)
control("off")
"""


def measure(tree: Path, variant: str, runs: int, tmp: str) -> tuple[float, float]:
    out = os.path.join(tmp, f"cg.{abs(hash((str(tree), variant)))}")
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--cache-sim=yes",
            "--branch-sim=yes",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-c",
            CHILD,
            variant,
            str(runs),
            str(HERE),
        ],
        env={**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"},
        cwd=tmp,
        capture_output=True,
        check=True,
    )
    totals = subprocess.run(
        ["callgrind_annotate", out], capture_output=True, text=True, check=True
    ).stdout
    line = next(x for x in totals.splitlines() if "PROGRAM TOTALS" in x)
    n = [int(v.replace(",", "")) for v in re.findall(r"([\d,]+) \(", line)]
    ir, _dr, _dw, i1, d1r, d1w, lli, lldr, lldw, _bc, bcm, _bi, bim = n[:13]
    cycles = ir + 10 * (i1 + d1r + d1w) + 100 * (lli + lldr + lldw) + 15 * (bcm + bim)
    steps = runs * STEPS
    return ir / steps, cycles / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--other", default=None, help="another tree's guard, for before/after")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("error: valgrind is not installed (apt-get install valgrind)")
    rows = [(v, ROOT) for v in ("bare", "no-op middleware", "ToolCallLimitMiddleware")]
    rows.append(("GuardMiddleware", ROOT))
    if args.other:
        rows.append((f"GuardMiddleware ({args.other})", Path(args.other).resolve()))
    got = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, tree in rows:
            got[name] = measure(tree, name, args.runs, tmp)
    bare = got["bare"][1]
    noop_cy = got["no-op middleware"][1]
    print(f"{args.runs * STEPS} tool-call steps per variant, after 3 warm-up runs")
    print(f"{'variant':<44}{'instr/step':>12}{'est. cycles':>13}{'vs bare':>9}{'own':>11}")
    for name, (ir, cy) in got.items():
        own = "" if name in ("bare", "no-op middleware") else f"{(cy - noop_cy) / 1e3:8.0f} k"
        print(f"{name:<44}{ir / 1e6:>10.3f} M{cy / 1e6:>11.3f} M{cy / bare:>9.3f}{own:>11}")
    limit = got["ToolCallLimitMiddleware"][1]
    print(f"GuardMiddleware / ToolCallLimitMiddleware: {got['GuardMiddleware'][1] / limit:.3f}")
    print("own: estimated cycles above the no-op middleware (what the middleware itself costs)")


if __name__ == "__main__":
    main()
