"""Shell: ordinary text tools that run commands because of their arguments.

GNU sed's ``e`` command and the ``e`` flag of ``s`` run ``/bin/sh``; ``sort
--compress-program`` and ``split --filter`` run what they are given. With ``sed`` listed,
``sed '1e rm -rf ~' f`` ran ``rm`` although ``rm`` is not listed.

The grammar mixes sed addresses (numbers, ``$``, regexes with custom delimiters and
bracket expressions), negation, commands (the harmless ones, ``e``, ``a``/``i`` text that
contains ``e``, labels, braces, comments, ``w``), separators, options (``-n``, ``-e``,
``--expression=``, abbreviations, ``--sandbox``) and quoting. The oracle is real bash running
the real GNU sed, sort and split, with recording shims for everything else on ``PATH``
(``scope_oracles.BashOracle``): a line the scope allows must run no unlisted program.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from random import Random

import pytest
import scope_oracles as so
from hypothesis import HealthCheck, given, settings

from guardrails_plugin.scopes import Shell

PROGRAMS = ["sed", "sort", "split"]
SCOPE = Shell(PROGRAMS)

_ADDRESSES = ["", "", "1", "$", "/a/", "\\,a,", "/[/]/", "1,3", "0,/a/", "2~2", "/a/I", "$!"]
_COMMANDS = ["p", "d", "s/a/b/", "s|a|b|g", "s/[/]/x/", "s/a/b/e", "e rm x", "s/a/rm x/e",
             "s/[/]/rm x /e", "a text", "a e rm x", "i hi; e rm x", "y/ab/ba/", "{p}",
             "{e rm x\n}", "b end", ":end", "q", "l", "=", "N", "s/a/\\/e/", "s/a\\/e/x/",
             "s/a/b/ ; e rm x", "s/a/b/#e", "s e rm x e", "c\\\nrm x", "a\\", "e", "s/x/y/w",
             "x;e rm x", "F", "z"]  # fmt: skip
_SEPARATORS = [";", "\n", " ; ", "};{", ";;"]


def _script(r: Random) -> str:
    parts = []
    for _ in range(r.randint(1, 3)):
        address = r.choice(_ADDRESSES)
        bang = "!" if address and r.random() < 0.2 and not address.endswith("!") else ""
        parts.append(address + bang + r.choice(_COMMANDS))
    return r.choice(_SEPARATORS).join(parts)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def sed_line(r: Random, data: str) -> str:
    """A sed, sort or split command line over the data file."""
    if r.random() < 0.15:
        program = r.choice(["sort", "split"])
        option = r.choice(["--compress-program=rm", "--co=rm", "--filter='rm x'", "--f=rm",
                           "-u", "-n", "--", "--filter=", "-S 1 --compress-program rm"])  # fmt: skip
        return f"{program} {option} {data}"
    script = _quote(_script(r))
    form = r.randrange(6)
    if form == 0:
        options = f"-e {script} -e {_quote(_script(r))}"
    elif form == 1:
        options = f"--expression={script}"
    elif form == 2:
        options = f"--expr {script}"
    elif form == 3:
        options = f"-ne {script}"
    else:
        options = script
    flags = r.choice(["", "", "-n ", "-E ", "-s ", "--posix ", "--sandbox ", "-z "])
    return f"sed {flags}{options} {data}"


@pytest.fixture(scope="module")
def bash() -> Iterator[so.BashOracle]:
    oracle = so.BashOracle()
    for program in PROGRAMS:
        real = shutil.which(program, path="/usr/bin:/bin")
        if real is None:
            oracle.close()
            pytest.skip(f"{program} is not installed")
        (oracle.shims / program).unlink(missing_ok=True)
        os.symlink(real, oracle.shims / program)
    (oracle.base / "data.txt").write_text("a/b\nab\nx\n" * 3)
    yield oracle
    oracle.close()


def _data(bash: so.BashOracle) -> str:
    return str(bash.base / "data.txt")


def test_the_oracle_sees_sed_run_rm(bash: so.BashOracle) -> None:
    data = _data(bash)
    for line in (f"sed -n '1e rm x' {data}", f"sed 's/a/rm x/e' {data}"):
        assert (bash.run(line, set(PROGRAMS))[0] or "").startswith("bash ran ['rm'"), line
    assert bash.run(f"split --filter='rm x' {data}", set(PROGRAMS))[0] is not None


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(so.strategy(lambda r: r))
def test_allowed_sed_sort_and_split_lines_run_only_listed_programs(
    bash: so.BashOracle, r: Random
) -> None:
    line = sed_line(r, _data(bash))
    if SCOPE.contains(line):
        problem, _ = bash.run(line, set(PROGRAMS))
        assert problem is None, line


@pytest.mark.parametrize(
    "script",
    ["p", "s/a/b/g", "s|/|-|g", "/^#/d;/^$/d", "$!N;s/\\n/ /", "y/abc/xyz/", "1,3{p;d}",
     "/start/,/end/{/end/!p}", "s/e/E/2", "a appended", "0,/a/s//x/", "s/[]/]/x/"],
)  # fmt: skip
def test_ordinary_sed_scripts_still_pass(bash: so.BashOracle, script: str) -> None:
    line = f"sed {_quote(script)} {_data(bash)}"
    SCOPE.check(line)
    assert bash.run(line, set(PROGRAMS))[0] is None


def test_sandbox_allows_any_script_and_writes_need_allow_redirects() -> None:
    assert SCOPE.contains("sed --sandbox '1e rm x' f")
    assert not SCOPE.contains("sed 's/a/b/w out' f")
    assert Shell(["sed"], allow_redirects=True).contains("sed 's/a/b/w out' f")
