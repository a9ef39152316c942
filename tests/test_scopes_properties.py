"""Properties the scopes keep for every input, not just the examples we thought of."""

from __future__ import annotations

import os
import posixpath
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from guardrails_plugin.scopes import Emails, Number, Paths, Shell, Urls

# --- Paths: string mode agrees with normpath -------------------------------------------

ROOT = "/srv/data"
STRING_PATHS = Paths([ROOT], resolve_symlinks=False)
segments = st.lists(
    st.sampled_from(["..", ".", "", "a", "b", "data", "data2", "srv", "etc", "x.txt"]),
    max_size=8,
)


@given(segments)
def test_path_from_root_is_accepted_iff_its_normpath_stays_under_root(parts: list[str]) -> None:
    path = "/".join([ROOT, *parts])
    normalized = posixpath.normpath(path)
    inside = normalized == ROOT or normalized.startswith(ROOT + "/")
    assert STRING_PATHS.contains(path) is inside


@given(segments)
def test_path_from_filesystem_root_is_accepted_iff_normpath_under_root(parts: list[str]) -> None:
    path = "/" + "/".join(["srv", *parts])
    normalized = posixpath.normpath(path)
    inside = normalized == ROOT or normalized.startswith(ROOT + "/")
    assert STRING_PATHS.contains(path) is inside


# --- Number: exactly the values in range ------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
numbers = st.one_of(st.integers(-(10**7), 10**7), finite, st.decimals(-(10**6), 10**6, places=3))


@given(
    low=st.one_of(st.none(), st.integers(-1000, 1000)),
    span=st.integers(0, 1000),
    exclusive_low=st.booleans(),
    exclusive_high=st.booleans(),
    value=numbers,
)
def test_number_accepts_exactly_the_values_in_range(
    low: int | None, span: int, exclusive_low: bool, exclusive_high: bool, value: object
) -> None:
    high = None if low is None else low + span + 1
    assert isinstance(value, int | float | Decimal)
    kwargs = {}
    if low is not None:
        kwargs["gt" if exclusive_low else "ge"] = low
        kwargs["lt" if exclusive_high else "le"] = high
    scope = Number(**kwargs)
    expected = low is None or (
        (value > low if exclusive_low else value >= low)
        and (value < high if exclusive_high else value <= high)  # type: ignore[operator]
    )
    assert scope.contains(value) is expected


@given(
    inner=st.tuples(st.integers(-100, 100), st.integers(0, 100)),
    outer=st.tuples(st.integers(-100, 100), st.integers(0, 100)),
    value=st.integers(-300, 300),
)
def test_number_within_is_exact_range_inclusion(
    inner: tuple[int, int], outer: tuple[int, int], value: int
) -> None:
    low, high = inner[0], inner[0] + inner[1]
    wide_low, wide_high = outer[0], outer[0] + outer[1] + 1
    narrow = Number(ge=low, le=high)
    wide = Number(gt=wide_low, lt=wide_high)
    # [low, high] lies inside the open interval (wide_low, wide_high) exactly when:
    assert narrow.within(wide) is (wide_low < low and high < wide_high)
    if narrow.within(wide) and narrow.contains(value):
        assert wide.contains(value)


# --- Urls: wildcards cover subdomains, never look-alikes --------------------------------

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?", fullmatch=True)
WILDCARD = Urls(["*.example.com"])


@given(st.lists(label, min_size=1, max_size=4))
def test_any_subdomain_of_a_wildcard_is_accepted(labels: list[str]) -> None:
    host = ".".join([*labels, "example.com"])
    assert WILDCARD.contains(f"https://{host}/path")
    assert WILDCARD.contains(f"https://{host.upper()}/")


@given(label)
def test_wildcard_domain_inside_another_host_is_denied(name: str) -> None:
    assert not WILDCARD.contains(f"https://example.com.{name}.net/")
    assert not WILDCARD.contains(f"https://{name}example.com/")
    assert not WILDCARD.contains(f"https://{name}.example.com@{name}.net/")


@given(st.integers(0, 2**32 - 1))
def test_any_integer_spelling_of_an_ipv4_address_is_treated_as_an_ip(number: int) -> None:
    assert not Urls(["example.com"], schemes=["http"]).contains(f"http://{number}/")


# --- Shell: chaining two allowed programs needs allow_chaining --------------------------

PROGRAMS = ["ls", "cat", "grep", "wc", "echo"]
argument = st.from_regex(r"[a-z0-9_./-]{1,12}", fullmatch=True)
command = st.tuples(st.sampled_from(PROGRAMS), st.lists(argument, max_size=3)).map(
    lambda c: " ".join([c[0], *c[1]])
)


# Built here, as a policy builds them when it loads (a shell scope builds bashlex's parser
# then): an example times the check, a few milliseconds, never that one-off build.
SHELL = Shell(PROGRAMS)
CHAINING = Shell(PROGRAMS, allow_chaining=True)
EVERYTHING = Shell(PROGRAMS, allow_chaining=True, allow_pipes=True, allow_substitution=True)


def test_a_shell_scope_builds_its_parser_when_it_is_built() -> None:
    # else the first call a scope decides pays for it, in any process
    code = (
        "import sys; from guardrails_plugin.scopes import Shell; Shell(['ls']); "
        "print('bashlex.parser' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.stdout.split() == ["True"]


@given(command, command, st.sampled_from([";", "&&", "||", "\n"]))
def test_chained_pair_is_denied_without_chaining_and_accepted_with_it(
    first: str, second: str, operator: str
) -> None:
    line = f"{first} {operator} {second}" if operator != "\n" else f"{first}\n{second}"
    assert not SHELL.contains(line)
    assert CHAINING.contains(line)


@given(command, st.sampled_from(["rm", "sh", "curl", "python"]))
def test_an_unlisted_program_after_any_operator_is_denied(first: str, other: str) -> None:
    for template in ("{} ; {}", "{} && {}", "{} | {}", "{} $({})", "{} `{}`"):
        assert not EVERYTHING.contains(template.format(first, other))


# --- Emails: every address counts -------------------------------------------------------

local = st.from_regex(r"[a-z0-9]([a-z0-9._+-]{0,10}[a-z0-9])?", fullmatch=True).filter(
    lambda s: ".." not in s
)
allowed_address = st.tuples(local, st.sampled_from(["example.com", "eu.corp.com"])).map(
    lambda t: f"{t[0]}@{t[1]}"
)
EMAILS = Emails(domains=["example.com", "*.corp.com"])


@given(st.lists(allowed_address, min_size=1, max_size=5))
def test_comma_joined_allowed_addresses_are_accepted(addresses: list[str]) -> None:
    assert EMAILS.contains(", ".join(addresses))


@settings(max_examples=50)
@given(
    st.lists(allowed_address, min_size=0, max_size=4),
    local,
    st.sampled_from(["evil.com", "corp.com", "example.com.evil.com", "exampleXcom.net"]),
    st.integers(0, 4),
)
def test_one_outside_address_anywhere_in_the_list_denies(
    addresses: list[str], name: str, domain: str, position: int
) -> None:
    assume(position <= len(addresses))
    mixed = [*addresses[:position], f"{name}@{domain}", *addresses[position:]]
    assert not EMAILS.contains(", ".join(mixed))
    assert not EMAILS.contains(mixed)
