"""Replay at scale: time linear and memory flat in the length of the recorded history.

Run:  python benchmarks/bench_replay.py [--sizes 10000,50000,100000]

For each size, a child process writes that many calls as JSON Lines (the cookbook's
support-team tools, 50 threads, 5 agents, one call a second, results inline for half of
them), then replays the file with ``cookbook/policy.yaml`` through ``from_jsonl``. It
reports CPU seconds, calls per second and the peak resident memory of the child (each size
in a fresh process, so the peaks compare). Beside it, in the same child: the CPU time of
reading and parsing the file alone (``json.loads`` per line), and of ``Guard.check`` on the
same calls already in memory, so the replay's own share is visible.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CHILD = r"""
import json, random, resource, sys, time
from guardrails_plugin import Guard, Policy, ToolCall
from guardrails_plugin.replay import from_jsonl, replay

n, path, policy_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = random.Random(7)
tools = [
    ("read_file", lambda: {"path": rng.choice(["/srv/tickets/1.txt", "/etc/passwd"])}),
    ("fetch_url", lambda: {"url": rng.choice(["https://docs.example.com/a", "http://x.test/"])}),
    ("refund", lambda: {"amount": rng.choice([5, 50, 150, 900])}),
    ("send_email", lambda: {"to": rng.choice(["ann@example.com", "eve@evil.test"]), "body": "hi"}),
    ("run_sql", lambda: {"query": "SELECT * FROM tickets"}),
]
with open(path, "w") as f:
    for i in range(n):
        tool, args = rng.choice(tools)
        line = {"tool": tool, "args": args(), "agent": rng.choice(["support", "billing", "analyst", "scout", "mailer"]),
                "thread_id": f"t-{rng.randrange(50)}", "call_id": f"c-{i}", "at": 1.7e9 + i, "outcome": "allow"}
        if i % 2:
            line["result"] = "ok " * 20
        f.write(json.dumps(line) + "\n")
policy = Policy.from_yaml(policy_path)

t0 = time.process_time()
with open(path) as f:
    calls = [json.loads(line) for line in f]
parse = time.process_time() - t0

now = [0.0]
guard = Guard(policy, clock=lambda: now[0])
events = [ToolCall(c["tool"], c["args"], agent=c["agent"], thread_id=c["thread_id"]) for c in calls]
del calls
t0 = time.process_time()
for i, e in enumerate(events):
    now[0] = 1.7e9 + i
    guard.check(e)
checks = time.process_time() - t0
del events, guard

rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.process_time()
report = replay(policy, from_jsonl(path))
spent = time.process_time() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "replay": spent, "parse": parse, "checks": checks,
                  "rss_before_kb": rss0, "rss_after_kb": rss, "changed": report.changed}))
"""

# The replay runs last in the child, after the in-memory comparison (which holds every
# call): its peak is measured as a second child without that comparison.
CHILD_REPLAY_ONLY = (
    CHILD.split("t0 = time.process_time()\nwith open(path)")[0]
    + r"""
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.process_time()
report = replay(policy, from_jsonl(path))
spent = time.process_time() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "replay": spent, "rss_before_kb": rss0, "rss_after_kb": rss}))
"""
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,50000,100000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    policy = str(ROOT / "cookbook" / "policy.yaml")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}; CPU seconds (process time)"
    )
    print(
        f"{'calls':>8} {'replay s':>9} {'calls/s':>9} {'µs/call':>8} {'parse µs':>9} "
        f"{'check µs':>9} {'peak MB (replay only)':>22}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = os.path.join(tmp, f"calls-{n}.jsonl")
            full = json.loads(
                subprocess.run(
                    [sys.executable, "-c", CHILD, str(n), path, policy],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            only = json.loads(
                subprocess.run(
                    [sys.executable, "-c", CHILD_REPLAY_ONLY, str(n), path, policy],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            per = full["replay"] / n * 1e6
            print(
                f"{n:>8,} {full['replay']:>9.2f} {n / full['replay']:>9,.0f} {per:>8.1f} "
                f"{full['parse'] / n * 1e6:>9.1f} {full['checks'] / n * 1e6:>9.1f} "
                f"{only['rss_after_kb'] / 1024:>13.1f} (+{(only['rss_after_kb'] - only['rss_before_kb']) / 1024:.1f})"
            )


if __name__ == "__main__":
    main()
