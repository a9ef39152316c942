"""Shell: bash evaluates array subscripts as arithmetic, and arithmetic runs ``$(...)``.

``printf -v 'a[$(rm x)]' v`` runs ``rm`` although the only ``$(...)`` is between single
quotes: bash reads the variable name ``a[$(rm x)]``, evaluates its subscript as an
arithmetic expression, and that expansion runs command substitutions. The same happens for
names given to ``read``, ``test -v``/``[ -v``, ``unset`` and ``wait -p``, and, once a line
has stored such a string in a variable (``y=a[\\$\\(rm\\)]``), for every arithmetic context
that reads the variable: ``${x:y}``, ``${x[y]}``, ``${!y}``.

The grammar mixes the builtins, the spellings of the name (quoted, escaped, attached to the
option, from a variable) and the ways of storing the string first. The oracle is real bash
in a scratch directory whose ``PATH`` holds recording shims (``scope_oracles.BashOracle``):
a line the scope allows must run only listed programs. Benign look-alikes must still pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from random import Random

import pytest
import scope_oracles as so
from hypothesis import HealthCheck, given, settings

from guardrails_plugin.scopes import Shell

PROGRAMS = ["ls", "cat", "printf", "read", "test", "[", "unset", "wait", "echo", "true", "export"]
SCOPE = Shell(PROGRAMS, allow_chaining=True, allow_redirects=True, allow_pipes=True)

_NAMES = [  # the name as bash receives it holds a subscript that runs rm
    "'a[$(rm x)]'",
    '"a[\\$(rm x)]"',
    "a[\\$\\(rm\\ x\\)]",
    "'a[`rm x`]'",
    "'a[y]'",  # y is set below to a[$(rm x)]: evaluation recurses
    "'a[ $(rm x) ]'",
    "'a[1+$(rm x)]'",
]
_STORE = [  # ways to put a[$(rm x)] into y without a $(...) bashlex would see
    "y=a[\\$\\(rm\\ x\\)]; ",
    "y='a[$''(rm x)]'; ",
    "printf -v y %s 'a[$(rm x)]'; ",
    "read -r y <<< 'a[$(rm x)]'; ",
    "for y in 'a[$(rm x)]'; do true; done; ",
]


def _builtin(r: Random, name: str) -> str:
    shape = r.randrange(9)
    if shape == 0:
        return f"printf -v {name} '%s' v"
    if shape == 1:
        return f"printf -v{name} '%s' v"
    if shape == 2:
        return f"[ -v {name} ]"
    if shape == 3:
        return f"test -v {name}"
    if shape == 4:
        return f"read -r {name} <<< v"
    if shape == 5:
        return f"a=(1 2); unset {name}"
    if shape == 6:
        return f"true & wait -n -p {name}"
    if shape == 7:
        return f"read -p 'go [y/n]? ' {name} <<< v"
    return f"printf -- '%s' v; printf -v {name} v"


def _from_variable(r: Random) -> str:
    use = r.choice(
        [
            "ls ${HOME:y}",
            "ls ${HOME:0:y}",
            "ls ${x[y]}",
            'ls "${x[y]}"',
            "ls ${!y}",
            "ls ${y@P}",  # prompt expansion runs $(...) in the value
            'ls "${y@P}"',
            "a=(1); ls ${#a[y]}",
            "a=(1); ls ${a[y]:-x}",
            'op=-v; [ $op "$y" ]',
            'op=-v; test "$op" "$y"',
            'n=-v; printf "$n" "$y" v',
            'read -r "$y" <<< v',
            'a=(1); unset "$y"',
        ]
    )
    return r.choice(_STORE) + use


def _integer_variable(r: Random) -> str:
    # bash's own integer variables evaluate every value stored into them.
    name = r.choice(["RANDOM", "SRANDOM", "OPTIND", "HISTCMD"])
    value = r.choice(["a[\\$\\(rm\\ x\\)]", "'a[$(rm x)]'"])
    return r.choice(
        [
            f"{name}={value}" if "'" not in value else f"printf -v {name} %s {value}",
            f"{name}+={value}" if "'" not in value else f"read -r {name} <<< {value}",
            f"for {name} in {value}; do true; done",
            f"export {name}={value}",
            f"printf -v {name} %s {value}",
            f"read -r {name} <<< {value}",
        ]
    )


def attack(r: Random) -> str:
    """A line whose real run executes ``rm``, hidden from a syntax-only reading."""
    if r.random() < 0.2:
        return _integer_variable(r)
    if r.random() < 0.5:
        line = _builtin(r, r.choice(_NAMES))
        return (_STORE[0] + line) if "a[y]" in line else line
    return _from_variable(r)


BENIGN = [
    "printf -v out '%s' x",
    "printf -vout '%s' x",
    "printf '%s [x]\\n' \"$HOME\"",
    'printf "%s\\n" "$HOME"',
    "printf -- -v",
    "[ -v HOME ]",
    "[ -v a[0] ]",
    "test -v 'a[@]'",
    '[ -n "$HOME" ]',
    '[ "$HOME" = "$PWD" ]',
    '[ -f "$HOME" ]',
    "[ -v ]",
    "read -r line <<< x",
    "read -r -a parts <<< 'a b'",
    "read -p 'Continue [y/n]? ' answer <<< y",
    "unset x y",
    "unset 'a[0]'",
    "ls ${HOME:1}",
    "ls ${HOME:1:2}",
    "ls ${HOME: -1}",
    "ls ${HOME:-x}",
    "ls ${x[0]} ${x[@]} ${x[*]} ${!x[@]} ${#x[@]} ${x[@]:1}",
    "ls ${HOME/a/b} ${HOME%/*} ${HOME##*/} ${HOME^^}",
    "ls ${HOME@Q} ${HOME@U} ${HOME@a}",
    "RANDOM=5",
    'export LANG=C FOO="$HOME"',
    "for f in a b; do ls; done",
]


@pytest.fixture(scope="module")
def bash() -> Iterator[so.BashOracle]:
    oracle = so.BashOracle()
    yield oracle
    oracle.close()


def test_the_oracle_sees_rm_run_by_a_subscript(bash: so.BashOracle) -> None:
    problem, _ = bash.run("printf -v 'a[$(rm x)]' v", {"printf"})
    assert problem == "bash ran ['rm']"


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(so.strategy(attack))
def test_allowed_lines_with_subscripts_run_only_listed_programs(
    bash: so.BashOracle, line: str
) -> None:
    if SCOPE.contains(line):
        problem, _ = bash.run(line, set(PROGRAMS))
        assert problem is None, line


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(so.strategy(attack))
def test_every_generated_attack_really_runs_rm(bash: so.BashOracle, line: str) -> None:
    # The grammar is honest: each line it draws does run rm under real bash, so the
    # property above is not vacuous.
    problem, _ = bash.run(line, set(PROGRAMS))
    assert problem == "bash ran ['rm']", line


@pytest.mark.parametrize("line", BENIGN)
def test_plain_names_and_numeric_offsets_still_pass(bash: so.BashOracle, line: str) -> None:
    SCOPE.check(line)
    assert bash.run(line, set(PROGRAMS))[0] is None
