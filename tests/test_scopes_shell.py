"""Shell: every program a command line would run must be listed; composition is opt-in."""

from __future__ import annotations

import pytest

from guardrails_plugin.scopes import ScopeError, ScopeViolation, Shell

READ_ONLY = Shell(["ls", "cat", "grep", "wc", "echo", "find", "[", "true"])
EVERYTHING_ALLOWED = Shell(
    ["ls", "cat", "grep", "echo", "true"],
    allow_pipes=True,
    allow_chaining=True,
    allow_substitution=True,
    allow_redirects=True,
    allow_background=True,
)


def reason(scope: Shell, value: object) -> str:
    with pytest.raises(ScopeViolation) as caught:
        scope.check(value)
    return str(caught.value)


@pytest.mark.parametrize(
    "line",
    [
        "ls",
        "ls -la /srv/data",
        "grep -rn 'rm -rf' src/",  # a dangerous string as an argument is only an argument
        "echo '$(rm -rf /)'",  # single quotes: no substitution happens
        "cat notes.txt # ; rm -rf /",  # a comment
        "LANG=C ls",
        "[ -f notes.txt ]",
        "! grep -q x notes.txt",
        "{ ls; }",
        "ls;",
        "find . -name '*.py'",
        "find . -exec grep -l TODO {} +",
    ],
)
def test_listed_programs_are_allowed(line: str) -> None:
    READ_ONLY.check(line)


# --- every program the line would run ---------------------------------------------------


@pytest.mark.parametrize(
    ("line", "program"),
    [
        ("ls; rm -rf /", "rm"),
        ("ls && rm -rf /", "rm"),
        ("ls || rm -rf /", "rm"),
        ("ls\nrm -rf /", "rm"),
        ("ls | sh", "sh"),
        ("ls $(rm x)", "rm"),
        ("ls `rm x`", "rm"),
        ("`rm`", "rm"),
        ('echo "$(rm x)"', "rm"),
        ("cat <(rm x)", "rm"),
        ("a=1 rm x", "rm"),
        ("FOO=$(rm x)", "rm"),
        ("(rm x)", "rm"),
        ("{ rm x; }", "rm"),
        ("if true; then rm x; fi", "rm"),
        ("for f in $(rm x); do echo; done", "rm"),
        ("while rm x; do ls; done", "rm"),
        ("f() { rm x; }", "rm"),
        ("r\\m x", "rm"),  # quote removal: bash runs rm
        ("'rm' x", "rm"),
        ('"r"m x', "rm"),
        ("find . -exec rm {} ;", "rm"),
        ("find . -execdir sh -c 'rm x' ;", "sh"),
        ("ls > $(rm x)", "rm"),
    ],
)
def test_every_program_the_line_would_run_is_checked(line: str, program: str) -> None:
    message = reason(READ_ONLY, line)
    assert f"runs {program!r}" in message
    assert "not in allowed programs" in message


def test_programs_inside_substitutions_are_checked_even_when_substitution_is_allowed() -> None:
    assert EVERYTHING_ALLOWED.contains("ls $(cat list.txt)")
    assert "runs 'rm'" in reason(EVERYTHING_ALLOWED, "ls $(rm x)")
    assert "runs 'rm'" in reason(EVERYTHING_ALLOWED, "cat <(rm x) | grep y > out &")


def test_program_with_a_path_matches_only_that_exact_string() -> None:
    message = reason(READ_ONLY, "/bin/ls")
    assert "must be listed exactly" in message
    assert not READ_ONLY.contains("./ls")
    scope = Shell(["/usr/bin/git"])
    assert scope.contains("/usr/bin/git status")
    assert not scope.contains("git status")


@pytest.mark.parametrize("line", ["$CMD args", "${CMD} args", "~/bin/tool", "$(echo ls)"])
def test_program_named_by_an_expansion_is_denied(line: str) -> None:
    assert not READ_ONLY.contains(line)
    assert not EVERYTHING_ALLOWED.contains(line)


def test_brace_expansion_in_program_position_is_denied() -> None:
    assert "'{rm,-rf,/}'" in reason(READ_ONLY, "{rm,-rf,/}")


@pytest.mark.parametrize("launcher", ["sudo", "env", "xargs", "sh -c", "bash -c", "eval", "nohup"])
def test_programs_that_run_programs_are_denied_unless_listed(launcher: str) -> None:
    message = reason(READ_ONLY, f"{launcher} ls")
    assert "runs other programs" in message


def test_listing_a_launcher_the_scope_does_not_read_widens_the_scope() -> None:
    scope = Shell(["sh", "ls"])
    assert scope.contains("sh -c 'rm -rf /'")  # documented: a shell runs whatever it is given


def test_a_listed_wrapper_runs_only_listed_programs() -> None:
    scope = Shell(["sudo", "ls"])
    assert scope.contains("sudo -u bob ls -la")
    assert "runs 'rm' inside sudo" in reason(scope, "sudo rm -rf /")


def test_time_is_a_keyword_the_parser_cannot_check() -> None:
    assert "does not support" in reason(Shell(["time", "ls"]), "time ls")


@pytest.mark.parametrize(
    "line",
    ["PATH=/tmp/evil ls", "LD_PRELOAD=/tmp/x.so ls", "IFS=/ ls", "GIT_SSH_COMMAND=x ls"],
)
def test_assignments_that_change_what_runs_are_denied(line: str) -> None:
    assert "can change what program runs" in reason(EVERYTHING_ALLOWED, line)


def test_path_assignment_before_a_chained_command_is_denied() -> None:
    assert "sets PATH" in reason(EVERYTHING_ALLOWED, "PATH=/tmp/evil; ls")


def test_opaque_parameter_expansion_is_denied() -> None:
    # bashlex keeps ${x:-$(rm)} as one opaque node: what it would run cannot be seen.
    assert "cannot see into" in reason(EVERYTHING_ALLOWED, "echo ${x:-$(rm -rf /)}")
    assert EVERYTHING_ALLOWED.contains("echo ${HOME}")


def test_here_document_with_expansions_is_denied() -> None:
    assert "here-document" in reason(EVERYTHING_ALLOWED, "cat <<EOF\n$(rm -rf /)\nEOF")
    assert EVERYTHING_ALLOWED.contains("cat <<EOF\nplain text\nEOF")


# --- composition settings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "setting"),
    [
        ("ls | grep x", "allow_pipes"),
        ("ls |& grep x", "allow_pipes"),
        ("ls; ls", "allow_chaining"),
        ("ls && ls", "allow_chaining"),
        ("ls\nls", "allow_chaining"),
        ("if true; then ls; fi", "allow_chaining"),
        ("for f in a b; do echo $f; done", "allow_chaining"),
        ("ls $(echo .)", "allow_substitution"),
        ("cat <(ls)", "allow_substitution"),
        ("ls > out.txt", "allow_redirects"),
        ("ls >> out.txt", "allow_redirects"),
        ("cat < in.txt", "allow_redirects"),
        ("ls 2>&1", "allow_redirects"),
        ("cat <<< hello", "allow_redirects"),
        ("cat <<EOF\nhi\nEOF", "allow_redirects"),
        ("{ ls; } > out", "allow_redirects"),
        ("ls &", "allow_background"),
    ],
)
def test_composition_needs_its_setting(line: str, setting: str) -> None:
    assert f"needs {setting}=True" in reason(READ_ONLY, line)
    EVERYTHING_ALLOWED.check(line)


def test_each_setting_allows_only_its_own_construct() -> None:
    pipes = Shell(["ls", "grep"], allow_pipes=True)
    assert pipes.contains("ls | grep x")
    assert not pipes.contains("ls; grep x")
    assert not pipes.contains("ls | grep x > out")
    chaining = Shell(["ls", "grep"], allow_chaining=True)
    assert chaining.contains("ls; grep x")
    assert chaining.contains("ls && grep x || ls")
    assert not chaining.contains("ls | grep x")
    assert not chaining.contains("ls & grep x")


# --- what cannot be understood ----------------------------------------------------------


@pytest.mark.parametrize(
    "line", ["ls)", "echo $((1 + 2))", "case x in x) ls;; esac", "[[ -f x ]]", "coproc ls"]
)
def test_lines_the_parser_cannot_handle_are_denied(line: str) -> None:
    assert "cannot" in reason(EVERYTHING_ALLOWED, line)


@pytest.mark.parametrize("line", ["", "   ", "\n"])
def test_empty_lines_are_denied(line: str) -> None:
    assert not READ_ONLY.contains(line)


@pytest.mark.parametrize("value", [None, 3, ["ls"], b"ls"])
def test_wrong_types_are_denied(value: object) -> None:
    assert "expected a shell command line" in reason(READ_ONLY, value)


# --- settings, spec, within -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"programs": []}, "at least one program"),
        ({"programs": ["ls -la"]}, "not a plain program name"),
        ({"programs": ["$CMD"]}, "not a plain program name"),
        ({"programs": ["r*"]}, "not a plain program name"),
        ({"programs": [""]}, "not a plain program name"),
        ({"programs": ["ls"], "allow_pipes": "yes"}, "allow_pipes must be a bool"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        Shell(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("scope", [READ_ONLY, EVERYTHING_ALLOWED, Shell("ls")])
def test_spec_round_trips(scope: Shell) -> None:
    assert type(scope)(**scope.spec()) == scope


def test_within_fewer_programs_and_no_more_composition() -> None:
    assert Shell(["ls"]).within(READ_ONLY)
    assert not READ_ONLY.within(Shell(["ls"]))
    assert Shell(["ls"], allow_pipes=True).within(EVERYTHING_ALLOWED)
    assert not Shell(["ls"], allow_pipes=True).within(READ_ONLY)
    assert not Shell(["rm"]).within(EVERYTHING_ALLOWED)


def flagged(scope: Shell, value: object) -> bool:
    """Whether ``scope`` refuses ``value`` as unreadable (as opposed to readable but outside)."""
    with pytest.raises(ScopeViolation) as caught:
        scope.check(value)
    return caught.value.unreadable


@pytest.mark.parametrize(
    "value", [3, "", "ls)", "echo $((1+2))", "$CMD", "echo ${x:-$(rm)}", "PATH=/tmp ls"]
)
def test_values_the_scope_cannot_read_are_flagged_unreadable(value: object) -> None:
    assert flagged(READ_ONLY, value) is True


@pytest.mark.parametrize("value", ["rm -rf /", "ls | grep x", "ls > out"])
def test_readable_lines_outside_the_scope_are_not_flagged(value: str) -> None:
    assert flagged(READ_ONLY, value) is False
