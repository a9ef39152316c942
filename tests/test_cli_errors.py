"""Every failure of the ``guardrails-plugin`` command is one ``error:`` line on standard
error and a non-zero exit, never a traceback: arguments generated from the command's own
grammar, pointing at every kind of thing a path can be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails_plugin.audit import AuditLog
from guardrails_plugin.cli import main
from guardrails_plugin.store import SQLiteStore

POLICY = "rules:\n  - allow: search\n  - deny: search\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One of each kind of path an argument can name."""
    root = tmp_path_factory.mktemp("things")
    made = {
        "missing": root / "missing.db",
        "folder": root / "folder",
        "empty": root / "empty.yaml",
        "latin1": root / "latin1.yaml",
        "binary": root / "binary.bin",
        "policy": root / "policy.yaml",
        "bomb": root / "bomb.yaml",
        "duplicate": root / "duplicate.yaml",
        "store": root / "guard.db",
        "audit": root / "audit.db",
        "audit-jsonl": root / "audit.jsonl",
        "unreadable": root / "unreadable.yaml",
    }
    made["folder"].mkdir()
    made["empty"].write_bytes(b"")
    made["latin1"].write_bytes(b"rules:\n  - allow: caf\xe9\n")
    made["binary"].write_bytes(bytes(range(256)) * 4)
    made["policy"].write_text(POLICY)
    bomb = ["rules:", "  - allow: t0", "    reason: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        bomb += [
            f"  - allow: t{level}",
            f"    reason: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]",
        ]
    made["bomb"].write_text("\n".join(bomb) + "\n")
    made["duplicate"].write_text("rules:\n  - allow: a\n    allow: b\n")
    SQLiteStore(made["store"]).close()
    with AuditLog(made["audit"]) as log:
        log.append("decision", outcome="allow")
    with AuditLog(made["audit-jsonl"]) as log:
        log.append("decision", outcome="allow")
    made["unreadable"].write_text(POLICY)
    made["unreadable"].chmod(0)
    return {name: str(path) for name, path in made.items()}


texts = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=20)


@st.composite
def command_lines(draw: st.DrawFn, files: dict[str, str]) -> list[str]:
    path = st.one_of(st.sampled_from(sorted(files.values())), texts.filter(bool))
    value = st.one_of(texts, st.sampled_from(["", "-1", "0", "5", "x:y", "3:abc", "{}", "[1]"]))
    verb = draw(
        st.sampled_from(
            [
                "lint",
                "check",
                "pause",
                "kill",
                "resume",
                "quarantine",
                "flags",
                "pending",
                "trips",
                "init",
                "audit tail",
                "audit verify",
                "audit export",
                "audit stats",
                "dashboard",
            ]
        )
    )
    argv = verb.split()
    if verb in ("lint", "check"):
        argv.append(draw(path))
        if verb == "check":
            argv.append(draw(texts.filter(lambda t: not t.startswith("-")) | st.just("search")))
            if draw(st.booleans()):
                argv += ["--args", draw(value)]
        elif draw(st.booleans()):
            argv.append(draw(st.sampled_from(["--strict", "--import"])))
    elif verb.startswith("audit"):
        if draw(st.booleans()):
            argv += ["--log", draw(path)]
        if verb == "audit verify" and draw(st.booleans()):
            argv += ["--witness", draw(value)]
        if verb == "audit tail" and draw(st.booleans()):
            argv += ["-n", draw(value)]
        if verb == "audit export" and draw(st.booleans()):
            argv += ["--since", draw(value)]
    else:
        store = draw(path)
        if verb == "dashboard" and (store == files["store"] or _is_store(store)):
            # a dashboard on a real store would serve, not fail (an earlier generated
            # ``init`` may have made a store of an empty file)
            store = files["missing"]
        if verb == "init" and store == files["missing"]:
            # init creates what it names: the shared "missing" path must stay missing, or a
            # later dashboard on it would serve instead of failing
            store += f".{draw(st.integers(0, 2**32))}"
        argv += ["--store", store]
        if verb in ("pause", "kill", "resume") and draw(st.booleans()):
            argv += [draw(st.sampled_from(["--thread", "--agent"])), draw(value)]
        if verb == "quarantine" and draw(st.booleans()):
            argv += ["--agent", draw(value)]
        if verb in ("pause", "kill", "quarantine") and draw(st.booleans()):
            argv += ["--audit", draw(path)]
        if verb == "dashboard":
            argv += ["--port", draw(st.sampled_from(["0", "-5", "x", "99999"]))]
            if draw(st.booleans()):
                argv += ["--graph", draw(value)]
    if draw(st.integers(0, 9)) == 0:  # now and then an option nobody knows
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(["--nope", "-z"])))
    return argv


def _is_store(path: str) -> bool:
    from guardrails_plugin._errors import StoreError
    from guardrails_plugin.store import open_store

    try:
        open_store(f"sqlite:///{path}", create=False).close()
    except (StoreError, ValueError, OSError):
        return False
    return True


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_failure_is_one_error_line_never_a_traceback(
    files: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    data: st.DataObject,
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths land here, never in the repository
    argv = data.draw(command_lines(files))
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse: usage errors
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, (argv, captured.err)
    errors = [line for line in captured.err.splitlines() if not line.startswith("warning: ")]
    if argv[0] == "audit" and argv[1] == "export":
        errors = [line for line in errors if not line.endswith("records written to -")]
    if code == 0 or (argv[0] == "audit" and code in (1, 3) and captured.out):
        # success, or a verify report (NOT OK / unchecked) on standard output
        assert not errors, (argv, captured.err)
        return
    if argv[0] in ("lint", "check") and code in (2, 3) and not errors:
        return  # lint --strict with warnings; check denying the call
    if argv[0] == "resume" and code == 4:
        return  # nothing to lift, said on standard output
    assert code != 0
    assert len(errors) == 1, (argv, captured.err)
    assert errors[0].startswith("error: "), (argv, captured.err)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["lint", "{latin1}"], "not UTF-8 text"),
        (["check", "{latin1}", "search"], "not UTF-8 text"),
        (["lint", "{bomb}"], "aliases expand it"),
        (["lint", "{duplicate}"], "given twice"),
        (["lint", "{folder}"], "cannot read it"),
        (["lint", "{binary}"], "not UTF-8 text"),
        (["kill", "--store", "{folder}"], "is not a file"),
        (["flags", "--store", "{binary}"], "cannot read the database"),
        (["pending", "--store", "{policy}"], "cannot read the database"),
        (["dashboard", "--store", "{missing}"], "does not exist"),
        (["dashboard", "--store", "{store}", "--policy", "{missing}"], "no policy file"),
        (["dashboard", "--store", "{store}", "--policy", "{latin1}"], "not UTF-8 text"),
        (["audit", "verify", "--log", "{missing}"], "no audit log"),
        (["kill", "--store", "{store}", "--nope"], "unrecognized arguments"),
    ],
)
def test_the_real_command_fails_in_one_line(
    files: dict[str, str], argv: list[str], says: str
) -> None:
    args = [a.format(**files) for a in argv]
    assert not Path(files["missing"]).exists()  # else a dashboard on it serves, not fails
    done = subprocess.run(
        [sys.executable, "-m", "guardrails_plugin.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,  # a loaded machine: the dashboard's imports alone can take a while
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.returncode in (1, 2)
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ")
    assert says in line
