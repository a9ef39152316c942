"""Recipe: two worker processes share one budget through Redis.

    python cookbook/redis_workers.py                                # starts a throwaway redis-server
    python cookbook/redis_workers.py --store redis://127.0.0.1:6379/0   # or use yours

Workers on one host can share a SQLite file; workers on many hosts share a server. Here two
worker processes each run a ``create_agent`` agent that wants to send five emails, under
one policy: at most six emails, for the whole fleet (``Budget.calls(6, per="global")``).
Each worker opens the same ``redis://`` URL; every charge is one script on the server, so
the two never send more than six between them, however their calls interleave.

What to start: any Redis (or Valkey) server the workers reach, e.g.
``redis-server --port 6379 --bind 127.0.0.1``; what to pass: its URL, as ``open_store(url)``
in the app and ``--store URL`` to ``guardrails-plugin`` (``init`` once, then ``kill``,
``flags``, ``dashboard`` ...). Without ``--store`` this recipe starts a ``redis-server`` of
its own on a free loopback port, in a temporary directory, and stops it at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from langchain.agents import create_agent
from langchain_core.tools import tool

from guardrails_plugin import Budget, Guard, Policy, allow, open_store
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.testing import ScriptedChatModel, tool_call

POLICY = Policy(
    [allow("send_email", id="mail")],
    budgets=[Budget.calls(6, tools="send_email", per="global", id="fleet-mail")],
)
EMAILS_PER_WORKER = 5


def worker(name: str, url: str) -> None:
    """One worker process: its own store connection, its own agent; waits for "go"."""
    sent: list[str] = []

    @tool
    def send_email(to: str, body: str) -> str:
        """Send an email."""
        sent.append(to)
        return f"sent to {to}"

    guard = Guard(POLICY, store=open_store(url, create=False))
    script: list[object] = [
        tool_call("send_email", to=f"{name}-{i}@example.com", body="hello", id=f"{name}-{i}")
        for i in range(EMAILS_PER_WORKER)
    ]
    agent = create_agent(
        ScriptedChatModel([*script, "done"]),
        tools=[send_email],
        middleware=[GuardMiddleware(guard)],
        name=name,
    )
    print("ready", flush=True)
    sys.stdin.readline()  # start together with the other worker
    agent.invoke(
        {"messages": [{"role": "user", "content": "Send the newsletter."}]},
        config={"configurable": {"thread_id": f"newsletter-{name}"}},
    )
    print(json.dumps({"worker": name, "sent": sent}), flush=True)


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str]:
    """A ``redis-server`` on a free loopback port, nothing kept on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("error: redis-server not found: install it, or pass --store redis://...")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp]
        server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(500):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.01)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.kill()
            server.wait()


def run(url: str) -> None:
    store = open_store(url)  # create=True: marks the store as a guardrails store
    print(f"store: {store!r}")
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", name, "--store", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    for process in workers:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise SystemExit("error: a worker failed to start")
    for process in workers:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    total = 0
    for process in workers:
        out, _ = process.communicate(timeout=300)
        report = json.loads(out.strip().splitlines()[-1])
        total += len(report["sent"])
        print(f"worker {report['worker']}: sent {len(report['sent'])} of {EMAILS_PER_WORKER}")
    print(f"sent in all: {total} (budget: 6 for the fleet)")
    store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Two workers share a budget through Redis.")
    parser.add_argument("--store", help="redis://host:port/db (default: start a throwaway one)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        worker(options.worker, options.store)
    elif options.store:
        run(options.store)
    else:
        with throwaway_redis() as url:
            run(url)


if __name__ == "__main__":
    main()
