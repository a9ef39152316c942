"""Filesystem paths, checked on the file the tool will really open.

A path argument is turned into the absolute path the kernel would resolve: ``.`` and ``..``
and repeated slashes are folded, and (by default) every symlink on the way is followed, so
``/data/link-to-etc/passwd`` is judged as ``/etc/passwd``. Only then is it compared with the
allowed roots, by whole path components.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from typing import Any, Literal

from ._base import Scope, ScopeError, ScopeViolation
from ._text import describe, preview, string_list

__all__ = ["Paths"]

Access = Literal["read", "write"]
# "scheme:" at the start of a relative value: a URL (or an fsspec chain "a::b://") to tools
# that accept URLs, a drive ("c:") on Windows.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_ACCESS: tuple[Access, ...] = ("read", "write")


class Paths(Scope):
    """Paths inside one or more root directories.

    A value (``str`` or ``os.PathLike``) is inside the scope when, after normalization, it
    equals a root or lies under it by whole components: ``/data2/x`` is not under ``/data``.

    - ``resolve_symlinks=True`` (the default) follows symlinks with ``os.path.realpath``,
      as the kernel does: a ``..`` after a symlink climbs from the link's target, a symlink
      that points outside a root (even a dangling one, which a write would create through)
      is judged by its target, and a target that does not exist yet is judged by its
      resolved parent directory. Roots are resolved the same way when the scope is built.
    - ``resolve_symlinks=False`` is pure string normalization (``os.path.normpath``) and
      never touches the filesystem: fast and deterministic, but a symlink inside a root can
      point anywhere. Use it for trees that hold no untrusted symlinks.
    - Relative values are joined to ``base`` (an absolute directory); without ``base`` they
      are denied, since the tool's working directory is unknown to the guard.
    - ``access`` (``"read"`` or ``"write"``): both resolve paths the same way, and a read
      grant is never ``within`` a write grant or the reverse. A write scope allows what lies
      *under* a root, never the root itself (``/srv/data``, ``/srv/data/.``, a symlink to
      it): writing to, renaming or deleting the root replaces or removes the whole tree.
    - A value starting with ``~`` is denied: ``Path.expanduser``, ``os.path.expanduser`` and
      shells turn ``~/x`` and ``~user/x`` into a home directory, while the guard would read a
      directory named ``~`` under ``base``; the two readings differ, so neither is trusted.
      For the same reason a relative value starting with a URL scheme (``file:///etc/passwd``,
      ``simplecache::file://...``, ``c:``), which fsspec, pandas and urllib open as a URL, and
      one starting with ``$`` (``os.path.expandvars``) are denied.

    With ``resolve_symlinks=True`` two more things deny: a value that is itself a symlink
    living outside the roots (even one pointing inside: renaming, deleting or opening it with
    ``O_NOFOLLOW`` acts on the link), and, for write access, a regular file with more than
    one hard link (the same file under another name, possibly outside).

    The check is a snapshot: a symlink created after the check but before the tool runs is
    not seen. POSIX paths only.

    Example::

        >>> scope = Paths(["/srv/data"], resolve_symlinks=False)
        >>> scope.contains("/srv/data/reports//q1.csv")
        True
        >>> scope.contains("/srv/data/../../etc/passwd")
        False
        >>> scope.contains("/srv/data2/x")
        False
    """

    kind = "path"

    def __init__(
        self,
        roots: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        access: Access = "read",
        resolve_symlinks: bool = True,
        base: str | os.PathLike[str] | None = None,
    ) -> None:
        if access not in _ACCESS:
            raise ScopeError(f"access must be 'read' or 'write', found {preview(access)}")
        if not isinstance(resolve_symlinks, bool):
            raise ScopeError(f"resolve_symlinks must be a bool, found {describe(resolve_symlinks)}")
        self._access: Access = access
        self._resolve = resolve_symlinks
        self._base = None if base is None else self._setting_path(base, "base")
        resolved = {
            self._setting_path(root, "root") for root in string_list(roots, "roots", paths=True)
        }
        if not resolved:
            raise ScopeError("roots must name at least one directory, found an empty list")
        self._roots = tuple(sorted(resolved))
        self._root_set = frozenset(self._roots)
        # "/data/" as a prefix, so "/data2" never matches "/data"; the root "/" is its own prefix.
        self._prefixes = tuple(root if root.endswith("/") else root + "/" for root in self._roots)

    @property
    def roots(self) -> tuple[str, ...]:
        """The allowed roots, normalized (and resolved when ``resolve_symlinks``)."""
        return self._roots

    def _setting_path(self, value: object, setting: str) -> str:
        raw = os.fspath(value) if isinstance(value, os.PathLike) else value
        if not isinstance(raw, str):
            raise ScopeError(f"{setting} must be a path string, found {describe(value)}")
        if "\x00" in raw:
            raise ScopeError(f"{setting} {preview(raw)} contains a NUL byte")
        if not os.path.isabs(raw):
            raise ScopeError(f"{setting} must be an absolute path, found {preview(raw)}")
        return self._normalize(raw)

    def _normalize(self, absolute: str) -> str:
        if self._resolve:
            # realpath handles "..", "." and "//" itself, in kernel order (after following
            # the symlink before a ".."), so it is given the raw path, not a normpath of it.
            return os.path.realpath(absolute)
        path = os.path.normpath(absolute)
        if path.startswith("//"):
            # POSIX lets normpath keep exactly two leading slashes; Linux treats them as one.
            path = "/" + path.lstrip("/")
        return path

    def check(self, value: object) -> None:
        if isinstance(value, str):
            raw = value
        elif isinstance(value, os.PathLike):
            raw = os.fspath(value)
            if not isinstance(raw, str):
                raise ScopeViolation(
                    f"expected a text path, found {describe(raw)}", unreadable=True
                )
        else:
            raise ScopeViolation(
                f"expected a path (str or os.PathLike), found {describe(value)}", unreadable=True
            )
        if not raw:
            raise ScopeViolation("expected a path, found an empty string", unreadable=True)
        if "\x00" in raw:
            raise ScopeViolation(f"path {preview(raw)} contains a NUL byte", unreadable=True)
        if raw.startswith("~"):
            raise ScopeViolation(
                f"path {preview(raw)} starts with '~', which tools that expand it "
                "(Path.expanduser, shells) read as a home directory, outside the allowed roots; "
                "give the path without '~'",
                unreadable=True,
                allowed=f"allowed roots {list(self._roots)}",
            )
        if not raw.startswith("/"):
            self._check_relative_reading(raw)
            if self._base is None:
                raise ScopeViolation(
                    f"relative path {preview(raw)} with no base directory; "
                    "give an absolute path under an allowed root",
                    unreadable=True,
                    allowed=f"allowed roots {list(self._roots)}",
                )
            raw = self._base + "/" + raw
        try:
            path = self._normalize(raw)
        except OSError as exc:  # realpath tolerates most errors; anything left denies
            raise ScopeViolation(
                f"cannot resolve path {preview(raw)}: {exc}", unreadable=True
            ) from exc
        shown = preview(value if isinstance(value, str) else raw)
        self._check_inside(path, raw, shown)
        if self._resolve:
            self._check_link_and_hard_links(path, raw, shown)

    def _check_relative_reading(self, raw: str) -> None:
        """A relative value another reader takes for something else than a file name."""
        scheme = _SCHEME.match(raw)
        if scheme is not None:
            raise ScopeViolation(
                f"path {preview(raw)} starts with {scheme.group()!r}, which tools that accept "
                "URLs (fsspec, pandas and other readers built on it, urllib) read as a URL "
                "(file:///etc/passwd opens /etc/passwd), not as a name under the base "
                "directory; give a plain path",
                unreadable=True,
                allowed=f"allowed roots {list(self._roots)}",
            )
        if raw.startswith("$"):
            raise ScopeViolation(
                f"path {preview(raw)} starts with '$', which tools that expand variables "
                "(os.path.expandvars, shells) read as another directory ($HOME/x), outside "
                "the allowed roots; give the path without it",
                unreadable=True,
                allowed=f"allowed roots {list(self._roots)}",
            )

    def _check_inside(self, path: str, raw: str, shown: str) -> None:
        if path in self._root_set:
            if self._access == "read":
                return
            resolved_root = "" if path == raw else f" (it resolves to {path!r})"
            raise ScopeViolation(
                f"path {shown} is the allowed root itself{resolved_root}; write access covers "
                "what lies under a root, not the root: writing, renaming or deleting it would "
                "replace or remove the whole tree"
            )
        if path.startswith(self._prefixes):
            return
        resolved = "" if path == raw else f" resolves to {path!r}, which"
        raise ScopeViolation(
            f"path {shown}{resolved} is outside the allowed roots ({self._access} access)",
            allowed=f"allowed roots {list(self._roots)}",
        )

    def _check_link_and_hard_links(self, path: str, raw: str, shown: str) -> None:
        """The name itself must live inside too, and a write must not reach a hard link.

        A symlink outside the roots that points inside (``/tmp/x -> /srv/data/a``) resolves
        inside, but a tool that opens with ``O_NOFOLLOW``, or renames or deletes the path,
        acts on the link itself, outside. A regular file with several hard links is one file
        under several names, some possibly outside the roots: a write changes all of them.
        """
        try:
            info = os.lstat(raw)  # one system call in the common case (not a link)
            if stat.S_ISLNK(info.st_mode):
                parent, _, name = raw.rstrip("/").rpartition("/")
                location = os.path.realpath(parent or "/").rstrip("/") + "/" + name
                if not (location.startswith(self._prefixes) or location in self._root_set):
                    raise ScopeViolation(
                        f"path {shown} is a symlink at {location!r}, outside the allowed roots "
                        f"(it points to {path!r}); a tool that does not follow links would act "
                        f"on the link itself ({self._access} access)",
                        allowed=f"allowed roots {list(self._roots)}",
                    )
                if self._access == "write":
                    info = os.lstat(path)
            if self._access == "write" and stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                raise ScopeViolation(
                    f"path {shown} is a file with {info.st_nlink} hard links; a write "
                    "changes it under every name, and the others may be outside the "
                    "allowed roots",
                    allowed=f"allowed roots {list(self._roots)}",
                )
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ScopeViolation(f"cannot inspect path {shown}: {exc}", unreadable=True) from exc

    def spec(self) -> dict[str, Any]:
        return {
            "roots": list(self._roots),
            "access": self._access,
            "resolve_symlinks": self._resolve,
            "base": self._base,
        }

    def within(self, other: Scope) -> bool:
        """Every root of ``self`` lies under a root of ``other``, with the same access and
        the same symlink handling (paths resolved differently can land on different sides
        of a root), and relative paths, if ``self`` takes them, resolve against the same base.
        """
        if not isinstance(other, Paths):
            return False
        if self._access != other._access or self._resolve != other._resolve:
            return False
        if self._base is not None and self._base != other._base:
            return False
        return all(
            root in other._root_set or root.startswith(other._prefixes) for root in self._roots
        )
