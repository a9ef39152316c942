"""Paths: judged on the file the kernel would open, inside roots by whole components."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guardrails_plugin.scopes import Paths, ScopeError, ScopeViolation


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/root (allowed) with sub/, and tmp/outside with secret.txt and dir/."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "notes.txt").write_text("ok")
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_text("secret")
    return tmp_path


# --- the string rules (no filesystem) -------------------------------------------------


def test_path_under_root_is_allowed() -> None:
    scope = Paths(["/srv/data"], resolve_symlinks=False)
    scope.check("/srv/data/reports/q1.csv")


def test_root_itself_is_allowed() -> None:
    assert Paths(["/srv/data"], resolve_symlinks=False).contains("/srv/data")


def test_dotdot_traversal_out_of_root_is_denied() -> None:
    scope = Paths(["/srv/data"], resolve_symlinks=False)
    with pytest.raises(ScopeViolation, match=r"resolves to '/etc/passwd'.*outside"):
        scope.check("/srv/data/../../etc/passwd")


def test_dotdot_that_stays_inside_is_allowed() -> None:
    assert Paths(["/srv/data"], resolve_symlinks=False).contains("/srv/data/a/../b/./c")


def test_sibling_sharing_a_prefix_is_not_inside() -> None:
    scope = Paths(["/srv/data"], resolve_symlinks=False)
    assert not scope.contains("/srv/data2/x")
    assert not scope.contains("/srv/database")


def test_duplicate_and_leading_slashes_are_normalized() -> None:
    scope = Paths(["/srv/data"], resolve_symlinks=False)
    assert scope.contains("/srv//data///x")
    assert scope.contains("//srv/data/x")  # POSIX normpath keeps '//'; Linux does not
    assert not scope.contains("//etc/passwd")


def test_root_slash_allows_every_absolute_path() -> None:
    scope = Paths(["/"], resolve_symlinks=False)
    assert scope.contains("/etc/passwd")
    assert not scope.contains("relative")


def test_relative_path_without_base_is_denied() -> None:
    scope = Paths(["/srv/data"], resolve_symlinks=False)
    with pytest.raises(ScopeViolation, match=r"relative path 'x\.txt' with no base"):
        scope.check("x.txt")


def test_relative_path_is_joined_to_base() -> None:
    scope = Paths(["/srv/data"], resolve_symlinks=False, base="/srv/data/work")
    assert scope.contains("out/x.txt")
    assert scope.contains("../x.txt")
    assert not scope.contains("../../x.txt")


@pytest.mark.parametrize("value", ["~/x", "~root/x", "~", "~+/x", "~nobody"])
def test_tilde_is_denied_because_tools_disagree_on_it(value: str) -> None:
    # open("~/x") opens <cwd>/~/x, Path.expanduser() and shells open $HOME/x: deny both.
    scope = Paths(["/srv/data"], resolve_symlinks=False, base="/srv/data")
    with pytest.raises(ScopeViolation, match="starts with '~'") as caught:
        scope.check(value)
    assert caught.value.unreadable
    assert Paths(["/srv/data"], resolve_symlinks=False).contains("/srv/data/~/x")


@pytest.mark.parametrize("resolve", [True, False])
@pytest.mark.parametrize("spelling", ["{r}", "{r}/", "{r}/.", "{r}/sub/..", "{r}//", "sub/.."])
def test_write_scope_denies_the_root_itself(tree: Path, resolve: bool, spelling: str) -> None:
    root = str(tree / "root")
    value = spelling.format(r=root)
    write = Paths([root], access="write", resolve_symlinks=resolve, base=root)
    with pytest.raises(ScopeViolation, match="root itself"):
        write.check(value)
    assert write.contains(root + "/sub/notes.txt")
    assert Paths([root], access="read", resolve_symlinks=resolve, base=root).contains(value)


def test_write_scope_denies_a_symlink_that_resolves_to_the_root(tree: Path) -> None:
    root = tree / "root"
    (root / "sub" / "up").symlink_to(root)
    with pytest.raises(ScopeViolation, match="resolves to"):
        Paths([str(root)], access="write").check(str(root / "sub" / "up"))


def test_nul_byte_is_denied() -> None:
    with pytest.raises(ScopeViolation, match="NUL byte"):
        Paths(["/srv/data"], resolve_symlinks=False).check("/srv/data/x\x00.txt")


@pytest.mark.parametrize("value", [3, None, b"/srv/data/x", ["/srv/data/x"], ""])
def test_values_that_are_not_text_paths_are_denied(value: object) -> None:
    with pytest.raises(ScopeViolation, match="expected"):
        Paths(["/srv/data"], resolve_symlinks=False).check(value)


def test_pathlike_values_are_accepted() -> None:
    assert Paths(["/srv/data"], resolve_symlinks=False).contains(Path("/srv/data/x"))


def test_pathlike_returning_bytes_is_denied() -> None:
    class BytesPath:
        def __fspath__(self) -> bytes:
            return b"/srv/data/x"

    with pytest.raises(ScopeViolation, match="expected a text path, found bytes"):
        Paths(["/srv/data"], resolve_symlinks=False).check(BytesPath())


def test_without_symlink_resolution_the_filesystem_is_never_touched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scope = Paths(["/srv/data"], resolve_symlinks=False)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("filesystem access")

    for name in ("realpath", "islink", "exists", "lexists"):
        monkeypatch.setattr(os.path, name, forbidden)
    monkeypatch.setattr(os, "lstat", forbidden)
    monkeypatch.setattr(os, "stat", forbidden)
    monkeypatch.setattr(os, "readlink", forbidden)
    assert scope.contains("/srv/data/a/../b")
    assert not scope.contains("/srv/data/../etc")


# --- symlinks ---------------------------------------------------------------------------


def test_symlink_escape_is_denied(tree: Path) -> None:
    root = tree / "root"
    (root / "link").symlink_to(tree / "outside")
    scope = Paths([str(root)])
    with pytest.raises(ScopeViolation, match="outside"):
        scope.check(str(root / "link" / "secret.txt"))


def test_symlink_that_stays_inside_is_allowed(tree: Path) -> None:
    root = tree / "root"
    (root / "alias").symlink_to(root / "sub")
    assert Paths([str(root)]).contains(str(root / "alias" / "notes.txt"))


def test_dotdot_after_symlink_climbs_from_the_link_target(tree: Path) -> None:
    # The kernel resolves root/dlink to outside/dir first, so "../secret.txt" is outside.
    root = tree / "root"
    (root / "dlink").symlink_to(tree / "outside" / "dir")
    scope = Paths([str(root)])
    assert not scope.contains(str(root / "dlink" / ".." / "secret.txt"))
    # The string-only mode cannot know this and says yes: that is its documented limit.
    assert Paths([str(root)], resolve_symlinks=False).contains(f"{root}/dlink/../secret.txt")


def test_dangling_symlink_pointing_outside_is_denied_for_write(tree: Path) -> None:
    root = tree / "root"
    (root / "trap").symlink_to(tree / "outside" / "created-by-write")
    with pytest.raises(ScopeViolation, match="created-by-write"):
        Paths([str(root)], access="write").check(str(root / "trap"))


def test_existing_symlink_file_pointing_outside_is_denied_for_write(tree: Path) -> None:
    root = tree / "root"
    (root / "innocent.txt").symlink_to(tree / "outside" / "secret.txt")
    assert not Paths([str(root)], access="write").contains(str(root / "innocent.txt"))


def test_new_file_is_judged_by_its_resolved_parent(tree: Path) -> None:
    root = tree / "root"
    (root / "out").symlink_to(tree / "outside" / "dir")
    scope = Paths([str(root)], access="write")
    assert scope.contains(str(root / "sub" / "new.txt"))
    assert scope.contains(str(root / "sub" / "new-dir" / "deeper" / "new.txt"))
    assert not scope.contains(str(root / "out" / "new.txt"))


def test_roots_are_resolved_at_construction(tree: Path) -> None:
    (tree / "root-alias").symlink_to(tree / "root")
    scope = Paths([str(tree / "root-alias")])
    assert scope.roots == (os.path.realpath(tree / "root"),)
    assert scope.contains(str(tree / "root" / "sub" / "notes.txt"))
    assert scope.contains(str(tree / "root-alias" / "sub" / "notes.txt"))


def test_symlink_loop_does_not_crash_and_stays_judged_by_position(tree: Path) -> None:
    root = tree / "root"
    (root / "loop").symlink_to(root / "loop")
    # realpath gives up on the loop and keeps the path; opening it would fail with ELOOP.
    assert Paths([str(root)]).contains(str(root / "loop"))


# --- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"roots": ["data"]}, "root must be an absolute path"),
        ({"roots": []}, "at least one directory"),
        ({"roots": [3]}, "must contain strings"),
        ({"roots": ["/data"], "access": "execute"}, "access must be 'read' or 'write'"),
        ({"roots": ["/data"], "base": "rel"}, "base must be an absolute path"),
        ({"roots": ["/data"], "resolve_symlinks": "yes"}, "resolve_symlinks must be a bool"),
        ({"roots": ["/da\x00ta"]}, "NUL"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        Paths(**kwargs)  # type: ignore[arg-type]


def test_a_single_root_string_is_a_list_of_one() -> None:
    assert Paths("/srv/data", resolve_symlinks=False) == Paths(
        ["/srv/data"], resolve_symlinks=False
    )


@pytest.mark.parametrize(
    "scope",
    [
        Paths(["/srv/b", "/srv/a/"], resolve_symlinks=False),
        Paths(["/srv/a"], access="write", resolve_symlinks=False, base="/srv/a"),
        Paths(["/tmp"]),
    ],
)
def test_spec_round_trips(scope: Paths) -> None:
    assert type(scope)(**scope.spec()) == scope
    assert scope.spec()["roots"] == sorted(scope.spec()["roots"])


def test_narrower_roots_are_within_wider_ones() -> None:
    wide = Paths(["/srv", "/home/me"], resolve_symlinks=False)
    narrow = Paths(["/srv/data", "/home/me"], resolve_symlinks=False)
    assert narrow.within(wide)
    assert not wide.within(narrow)
    assert not Paths(["/srvx"], resolve_symlinks=False).within(wide)


def test_within_needs_the_same_access_and_symlink_handling() -> None:
    read = Paths(["/srv"], resolve_symlinks=False)
    write = Paths(["/srv"], access="write", resolve_symlinks=False)
    assert not read.within(write)
    assert not write.within(read)
    assert not Paths(["/srv"]).within(read)
    assert not read.within(Paths(["/srv"]))


def test_within_needs_the_same_base_when_relative_paths_are_taken() -> None:
    other = Paths(["/srv"], resolve_symlinks=False)
    with_base = Paths(["/srv/a"], resolve_symlinks=False, base="/srv/a")
    assert not with_base.within(other)  # other denies relative paths
    assert with_base.within(Paths(["/srv"], resolve_symlinks=False, base="/srv/a"))
    assert Paths(["/srv/a"], resolve_symlinks=False).within(with_base)


def test_within_another_kind_is_false() -> None:
    from guardrails_plugin.scopes import OneOf

    assert not Paths(["/srv"], resolve_symlinks=False).within(OneOf(["/srv"]))


def flagged(scope: Paths, value: object) -> bool:
    """Whether ``scope`` refuses ``value`` as unreadable (as opposed to readable but outside)."""
    with pytest.raises(ScopeViolation) as caught:
        scope.check(value)
    return caught.value.unreadable


@pytest.mark.parametrize("value", [3, b"/srv/x", "", "/srv/data/\x00", "relative/x"])
def test_values_the_scope_cannot_read_are_flagged_unreadable(value: object) -> None:
    # A deny rule must not be dodged by a value its scope cannot read.
    assert flagged(Paths(["/srv/data"], resolve_symlinks=False), value) is True


def test_a_readable_path_outside_the_roots_is_not_flagged() -> None:
    assert flagged(Paths(["/srv/data"], resolve_symlinks=False), "/etc/passwd") is False
