"""Paths: relative values that tools which accept URLs read as a URL, not as a file name.

``Paths(base=...)`` joins a relative value to ``base``: ``file:///etc/passwd`` is judged as
the file ``<base>/file:/etc/passwd``. A tool that hands its argument to fsspec (and so to
pandas, dask, xarray and the other readers built on it) opens ``/etc/passwd``; so do
``local://``, ``file:/x``, and chained ``simplecache::file://...``. Other schemes are not
files at all (``memory://``, ``data:``, ``http://``). A value starting with ``$`` is the same
kind of trap for tools that call ``os.path.expandvars`` (``$HOME/.ssh/id_rsa``), as ``~`` is
for ``expanduser``.

The grammar mixes schemes, fsspec chains, letter case and targets inside and outside the
root. The oracles are fsspec's own resolution (``fsspec.core.url_to_fs`` run in the base
directory, as such a tool would) and ``os.path.expandvars``: for a value the scope allows,
the file they reach must be inside the root.
"""

from __future__ import annotations

import os
from pathlib import Path
from random import Random

import fsspec
import pytest
import scope_oracles as so
from fsspec.implementations.local import LocalFileSystem
from hypothesis import HealthCheck, given, settings

from guardrails_plugin.scopes import Paths

_SCHEMES = ["file://", "file:", "local://", "FILE://", "File:", "simplecache::file://",
            "blockcache::file://", "filecache::", "memory://", "data:,", "dir::", "c:",
            "zip://a::file://", "simplecache::", ""]  # fmt: skip
_TARGETS = ["{outside}/secret.txt", "{root}/file.txt", "file.txt", "/etc/hostname",
            "localhost{outside}/secret.txt"]  # fmt: skip


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("fsspec-tree")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "file.txt").write_text("in")
    (outside / "secret.txt").write_text("out")
    return root, outside


def value(r: Random) -> str:
    """A scheme or fsspec chain, then a target; sometimes an expandvars reference instead."""
    if r.random() < 0.15:
        return r.choice(["$HOME", "${HOME}", "$OUTSIDE", "${OUTSIDE}"]) + "/secret.txt"
    return r.choice(_SCHEMES) + r.choice(_TARGETS)


def reached(text: str, root: Path) -> str | None:
    """The file fsspec opens for ``text`` with ``root`` as working directory (None when it
    is no local file, or fsspec refuses the value)."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        fs, path = fsspec.core.url_to_fs(text)
    except Exception:  # unknown protocol, missing dependency, bad archive: nothing opened
        return None
    finally:
        os.chdir(cwd)
    target = getattr(fs, "fs", fs)  # caching wrappers keep the filesystem they wrap
    if not isinstance(target, LocalFileSystem):
        return f"<{type(target).__name__}>"
    return os.path.realpath(os.path.join(root, path))


def _inside(path: str, root: Path) -> bool:
    return path.startswith(str(root.resolve()) + os.sep)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(so.strategy(value))
def test_allowed_relative_values_reach_only_the_root_through_fsspec_and_expandvars(
    tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, drawn: str
) -> None:
    root, outside = tree
    monkeypatch.setenv("HOME", str(outside))
    monkeypatch.setenv("OUTSIDE", str(outside))
    text = drawn.replace("{root}", str(root)).replace("{outside}", str(outside))
    scope = Paths([str(root)], base=str(root))
    if not scope.contains(text):
        return
    opened = reached(text, root)
    assert opened is None or _inside(opened, root), (text, opened)
    expanded = os.path.realpath(os.path.join(root, os.path.expandvars(text)))
    assert _inside(expanded, root), (text, expanded)


def test_the_oracle_sees_fsspec_open_a_file_outside(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    assert reached(f"file://{outside}/secret.txt", root) == str(outside / "secret.txt")
    assert reached(f"simplecache::file://{outside}/secret.txt", root) == str(outside / "secret.txt")


@pytest.mark.parametrize(
    "text", ["file.txt", "sub/file.txt", "./file:x", "sub/a:b", "x$y", "-file.txt"]
)
def test_plain_relative_names_still_pass(tree: tuple[Path, Path], text: str) -> None:
    root, _ = tree
    scope = Paths([str(root)], base=str(root))
    assert scope.contains(text)
    opened = reached(text, root)
    assert opened is None or _inside(opened, root)
