"""Time the verifier: the issue's properties on the cookbook's and integrations' policies and
on a generated 200-rule policy; ``diff`` and ``lint --deep`` on the same.

    python benchmarks/bench_verify.py          # properties, diff, lint --deep, bounds
    python benchmarks/bench_verify.py --deep   # lint --deep only (shipped and generated)
    python benchmarks/bench_verify.py bounds   # only bounds (budgets) and delegations

Prints one line per (policy, property): status, wall time and the solver steps it took (z3's
resource count, what ``Verifier(rlimit=)`` limits: the same on any machine and load).
Figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import glob
import os
import time

from guardrails_plugin import Budget, Policy, allow, ask, deny, rate
from guardrails_plugin.scopes import Emails, Number, OneOf, Paths, Pattern, Urls
from guardrails_plugin.verify import Result, Verifier, deep_lint, diff

FILES = {
    "cookbook/policy.yaml": [
        "agent billing never calls refund with amount > 1000",
        "agent billing never calls refund with amount > 100 without an ask",
        "no agent reaches send_email.to outside example.com",
        "every call of delete_* is denied",
        "untrusted content never reaches a sink without an ask",
        "no agent calls fetch_url with url outside docs.example.com",
    ],
    "cookbook/shared_policy.yaml": [
        "agent billing never calls refund with amount > 100",
        "every call of delete_* is denied",
    ],
    "integrations/langgraph_supervisor/policy.yaml": [
        "agent researcher never reaches send_email",
        "agent supervisor never reaches send_email with to outside example.com without an ask",
        "no agent reaches send_email.to outside example.com, acme.org",
    ],
    "integrations/langgraph_swarm/policy.yaml": [
        "agent flight_assistant never reaches refund_booking with amount > 1000",
        "agent hotel_assistant never calls refund_booking with booking_id matches FLT-[0-9]+",
        "agent flight_assistant never reaches agent hotel_assistant",
    ],
    "integrations/openai_agents_triage/policy.yaml": [
        "agent triage never reaches refund with amount > 500",
        "agent billing never reaches agent tech",
        "every call of restart_service is asked",
    ],
    "integrations/agentdojo/banking.yaml": [
        "no agent calls send_money with recipient outside CH9300762011623852957, GB29NWBK60161331926819, SE3550000000054910000003, US122000000121212121212",
        "untrusted content never reaches send_money without an ask",
        "every call of update_password is asked",
    ],
}

BOUNDS = {
    "cookbook/policy.yaml": [
        "agent billing never calls refund with total amount > 2000 per thread",
        "agent billing never calls refund with total amount > 2000 in total",
        "no agent calls fetch_url more than 10 times per run",
        "no agent calls send_email more than 20 times per thread",
        "no delegation lets agent support call refund with amount > 100 without an ask",
        "no delegation lets any agent call delete_file",
    ],
    "integrations/openai_agents_triage/policy.yaml": [
        "agent billing never calls refund with total amount > 300 per thread",
        "agents together never call refund with total amount > 300 per thread",
        "no agent calls refund more than 3 times in total",
        "no delegation lets agent triage call refund",
    ],
    "integrations/langgraph_supervisor/policy.yaml": [
        "no agent calls send_email more than 5 times per run",
        "no delegation lets agent researcher call send_email with to outside example.com",
    ],
    "integrations/langgraph_swarm/policy.yaml": [
        "agents together never call refund_booking with total amount > 5000 per thread",
        "no delegation lets agent hotel_assistant call refund_booking without an ask",
    ],
    "cookbook/layered/agent.yaml": [
        "no delegation lets agent intern call refund",
        "no delegation lets agent intern call read_file with path outside /srv",
        "no delegation lets agent intern call refund without an ask",
        "no delegation lets any agent call shell",
    ],
}

GENERATED_BOUNDS = [
    "agent agent3 never calls refund_1 with total amount > 5000 in total",
    "no agent calls send_email_2 more than 20 times per thread",
    "agents together never call send_email_2 more than 20 times per thread",
    "no agent calls refund_* more than 6 times per run",
    "no agent calls refund_* more than 24 times per run",
    "no agent calls refund_* more than 25 times per run",
    "no delegation lets agent agent3 call refund_1 with amount > 150",
    "no delegation lets any agent call delete_3",
]

GENERATED = [
    "agent agent3 never calls refund_1 with amount > 1000",
    "no agent reaches send_email_2.to outside example.com",
    "every call of delete_* is denied",
    "no agent calls fetch_3 with url outside docs.example.com",
    "agent agent0 never reaches tool_7",
]


def generated(n: int = 200) -> Policy:
    """A policy of ``n`` rules over 40 tools, 10 agents and every encodable scope kind."""
    rules = []
    for i in range(n):
        k = i % 8
        agents = [f"agent{i % 10}"] if i % 3 else None
        if k == 0:
            rules.append(
                allow(f"refund_{i % 5}", agents=agents, args={"amount": Number(gt=0, le=100 + i)})
            )
        elif k == 1:
            rules.append(
                ask(
                    f"send_email_{i % 4}",
                    agents=agents,
                    args={"to": Emails(domains=["example.com", f"*.d{i}.example.com"])},
                )
            )
        elif k == 2:
            rules.append(
                allow(
                    f"fetch_{i % 6}",
                    agents=agents,
                    args={"url": Urls(["docs.example.com", f"*.s{i}.example.org"])},
                )
            )
        elif k == 3:
            rules.append(
                allow(
                    f"read_{i % 7}",
                    agents=agents,
                    args={"path": Paths([f"/srv/data/{i}"], resolve_symlinks=False)},
                )
            )
        elif k == 4:
            rules.append(allow(f"tool_{i % 9}", agents=agents, args={"mode": OneOf(["a", "b", i])}))
        elif k == 5:
            rules.append(
                allow(f"tool_{i % 9}", agents=agents, args={"id": Pattern(f"T{i}-[0-9]+")})
            )
        elif k == 6:
            rules.append(deny(f"delete_{i % 11}"))
        else:
            rules.append(
                allow("handoff", agents=agents, args={"to": OneOf([f"agent{(i + 1) % 10}"])})
            )
    rules = [type(r)(**{**_fields(r), "id": f"r{i}"}) for i, r in enumerate(rules)]
    rules.append(deny("delete_*", id="no-deletes"))
    return Policy(rules, name="generated-200")


def _fields(rule: object) -> dict[str, object]:
    keys = ("effect", "tools", "agents", "args")
    return {k: getattr(rule, k) for k in keys}


def _steps() -> int:
    """z3's resource count so far (the whole process: differences are what a question took)."""
    import z3

    stats = z3.Solver().statistics()
    names = stats.keys()
    return int(stats.get_key_value("rlimit count")) if "rlimit count" in names else 0


def _check(verifier: Verifier, prop: str) -> tuple[Result, str]:
    before = _steps()
    r = verifier.check(prop)
    limit = getattr(r, "limit", "")  # the limit an unknown met
    said = f"{r.status}{f' ({limit})' if limit else ''} in {r.seconds:.2f} s"
    return r, f"{said}, {_steps() - before:,} steps"


def _time(label: str, fn: object) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()  # type: ignore[operator]
    took, used = time.perf_counter() - start, time.process_time() - cpu
    print(f"{label}: {out} in {took:.2f} s (cpu {used:.2f} s)", flush=True)


def deep() -> None:
    """``lint --deep`` wall time on every shipped policy and on the generated one."""
    paths = sorted(
        {
            *glob.glob("cookbook/*.yaml"),
            *glob.glob("integrations/*/policy.yaml"),
            *glob.glob("integrations/agentdojo/*.yaml"),
        }
    )
    worst = 0.0
    for path in paths:
        try:
            policy = Policy.from_yaml(path)
        except Exception:  # simulation scenarios and the like are not policies
            continue
        start, cpu = time.perf_counter(), time.process_time()
        found = deep_lint(policy)
        took, used = time.perf_counter() - start, time.process_time() - cpu
        worst = max(worst, took)
        print(
            f"{path} ({len(policy.rules)} rules): lint --deep: {len(found)} warnings "
            f"in {took:.2f} s (cpu {used:.2f} s)"
        )
    print(f"slowest shipped policy: {worst:.2f} s (load average {os.getloadavg()[0]:.1f})")
    _time("generated-200: lint --deep", lambda: f"{len(deep_lint(generated()))} warnings")


def with_budgets(policy: Policy) -> Policy:
    """``policy`` with budgets of every kind the bounds encode (sums, calls, rates, distinct)."""
    return Policy(
        policy.rules,
        name=policy.name,
        budgets=[
            Budget.sum("amount", 3000, tools="refund_*", per="agent", id="refunds"),
            Budget.calls(20, tools="send_email_*", per=("thread",), id="mail"),
            Budget.calls(5, tools="refund_*", per=("run", "tool"), id="refund-calls"),
            rate(30, seconds=60, tools="fetch_*", id="fetch-rate"),
            Budget.distinct("mode", 3, tools="tool_*", id="modes"),
        ],
    )


def bounds() -> float:
    """Time the bound and delegation properties; return the slowest."""
    worst = 0.0
    for path, props in BOUNDS.items():
        verifier = Verifier(Policy.from_yaml(path))
        for prop in props:
            r, said = _check(verifier, prop)
            worst = max(worst, r.seconds)
            print(f"{path}: {prop}: {said}", flush=True)
    verifier = Verifier(with_budgets(generated()))
    for prop in GENERATED_BOUNDS:
        r, said = _check(verifier, prop)
        worst = max(worst, r.seconds)
        print(f"generated-200+budgets: {prop}: {said}", flush=True)
    print(f"slowest bound or delegation property: {worst:.2f} s")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", choices=["bounds"], help="time bounds only")
    parser.add_argument("--deep", action="store_true", help="time lint --deep only")
    args = parser.parse_args()
    if args.part == "bounds":
        bounds()
        return
    if args.deep:
        deep()
        return
    worst = 0.0
    for path, props in FILES.items():
        policy = Policy.from_yaml(path)
        verifier = Verifier(policy)
        for prop in props:
            r, said = _check(verifier, prop)
            worst = max(worst, r.seconds)
            print(f"{path}: {prop}: {said}", flush=True)
        _time(f"{path}: lint --deep", lambda p=policy: f"{len(deep_lint(p))} warnings")
    big = generated()
    verifier = Verifier(big)
    for prop in GENERATED:
        r, said = _check(verifier, prop)
        worst = max(worst, r.seconds)
        print(f"generated-200: {prop}: {said}", flush=True)
    changed = Policy([*big.rules, allow("tool_3", agents="agent1", id="new")], name="changed")
    _time("generated-200: diff against a change", lambda: f"{len(diff(big, changed))} regions")
    _time("generated-200: lint --deep", lambda: f"{len(deep_lint(big))} warnings")
    print(f"slowest property: {worst:.2f} s")
    bounds()


if __name__ == "__main__":
    main()
