"""Instructions ``GuardedTools.run`` executes per tool call (the guard's share of a plain
``openai`` loop, no HTTP), in this tree and, with ``--other``, in another checkout: an A/B
under callgrind (deterministic; the machine's load does not enter).

Run:  python benchmarks/bench_openai_ab.py [--answers 200] [--other /path/to/checkout]

Each answer is a ``ChatCompletion`` with three calls (two allowed, one denied by a scope),
each answer a fresh id, all built in both runs; the figure is (instructions running N
answers - running none) / (3 N).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _callgrind import instructions

SNIPPET = r"""
import sys
from openai.types.chat import ChatCompletion
from guardrails_plugin import Guard, Policy, allow
from guardrails_plugin.openai import GuardedTools
from guardrails_plugin.scopes import Number

def write(n: int) -> str:
    return "ok"

def completion(k):
    calls = [("a", '{"n": 1}'), ("b", '{"n": 2}'), ("c", '{"n": -3}')]
    return ChatCompletion.model_validate({
        "id": f"chatcmpl-{k}", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [
                {"id": f"{i}{k}", "type": "function", "function": {"name": "write", "arguments": a}}
                for i, a in calls]}}]})

n, built = int(sys.argv[1]), int(sys.argv[2])
answers = [completion(k) for k in range(built)]  # built alike whatever n: not counted
tools = GuardedTools(Guard(Policy([allow("write", args={"n": Number(ge=0)})])), [write])
tools.run(completion(-1))  # warm
for answer in answers[:n]:
    tools.run(answer)
"""


def per_call(cwd: str, answers: int) -> float:
    # (python -c puts the working directory first on sys.path: that tree's package)
    base = instructions(SNIPPET, "0", str(answers), cwd=cwd)
    full = instructions(SNIPPET, str(answers), str(answers), cwd=cwd)
    return (full - base) / (3 * answers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=200)
    parser.add_argument("--other", help="another checkout to compare with")
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent.parent)
    mine = per_call(here, args.answers)
    print(f"this tree: {mine:,.0f} instructions per call")
    if args.other:
        theirs = per_call(args.other, args.answers)
        print(f"{args.other}: {theirs:,.0f} instructions per call")
        print(f"ratio this/other: {mine / theirs:.3f}")


if __name__ == "__main__":
    main()
