"""Shell command lines, checked on every program the line would run.

The line is parsed with ``bashlex`` (a port of bash's own grammar) and the syntax tree is
walked for everything bash would execute: the first word of every simple command (after
leading ``NAME=value`` assignments), inside pipelines, lists, subshells, groups, loops and
conditionals, command substitutions (``$(...)``, backticks) and process substitutions
(``<(...)``), and what ``find -exec`` runs. Operators that compose commands (pipes,
chaining, substitution, redirects, background jobs) are denied unless a setting allows them.
A line bashlex cannot parse, or a construct the walk does not know, denies.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ._base import Scope, ScopeError, ScopeViolation
from ._text import describe, preview, string_list

__all__ = ["LAUNCHERS", "Shell"]

LAUNCHERS: frozenset[str] = frozenset(
    {
        "sudo", "doas", "su", "env", "xargs", "parallel", "exec", "eval", "command",
        "builtin", "source", ".", "nohup", "time", "nice", "ionice", "timeout", "stdbuf",
        "setsid", "chroot", "watch", "strace", "ltrace", "sh", "bash", "zsh", "dash", "ksh",
        "fish", "busybox", "ssh", "script", "python", "python3", "perl", "ruby", "node",
        "awk",
    }
)  # fmt: skip
"""Programs that can run other programs (named in reasons; listing one widens a scope)."""

_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})

# Variables that decide which program runs or what code it loads: setting one turns an
# allowed program into another. A deny list cannot be complete; it catches the classics.
_LOADER_VARIABLES = frozenset(
    {
        "PATH", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND",
        "PAGER", "MANPAGER", "EDITOR", "VISUAL", "BROWSER", "LESSOPEN", "LESSCLOSE", "SHELL",
        "NODE_OPTIONS", "RUBYOPT", "JAVA_TOOL_OPTIONS",
    }
)  # fmt: skip
_LOADER_PREFIXES = ("LD_", "DYLD_", "GIT_", "PYTHON", "PERL5")

# Characters that never belong in a program name as listed: quoting, expansion, globbing
# and operators would make the listed string differ from what bash runs.
_UNSAFE_PROGRAM_CHARS = frozenset(" \t\n\r\x00$`'\"\\;&|<>(){}*?~!#=,")

Feature = Literal["pipe", "chaining", "substitution", "redirect", "background"]
_FEATURE_SETTING: dict[Feature, str] = {
    "pipe": "allow_pipes",
    "chaining": "allow_chaining",
    "substitution": "allow_substitution",
    "redirect": "allow_redirects",
    "background": "allow_background",
}


@dataclass(frozen=True, slots=True)
class _Run:
    """A program the line would run."""

    name: str | None  # None when the program word comes from an expansion
    word: str  # the word as written in the line
    where: str  # context for the reason, such as " inside $(rm x)"


@dataclass(frozen=True, slots=True)
class _Use:
    """A composing construct the line uses."""

    feature: Feature
    text: str


@dataclass(frozen=True, slots=True)
class _Facts:
    """What a command line would do, as far as the scope decides: independent of settings."""

    runs: tuple[_Run, ...]
    uses: tuple[_Use, ...]
    problems: tuple[str, ...]  # always denied, whatever the settings


class _Walk:
    """Collects ``_Facts`` from bashlex trees; unknown node kinds become problems."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.runs: list[_Run] = []
        self.uses: list[_Use] = []
        self.problems: list[str] = []
        self.context: list[str] = []

    def text(self, node: Any) -> str:
        start, end = node.pos
        return self.line[start:end]

    def where(self) -> str:
        return f" inside {preview(self.context[-1], 60)}" if self.context else ""

    def visit(self, node: Any) -> None:
        kind = getattr(node, "kind", None)
        handler = getattr(self, f"visit_{kind}", None)
        if handler is None:
            self.problems.append(f"uses a shell construct the guard cannot check ({kind!r})")
            return
        handler(node)

    def visit_all(self, nodes: Iterable[Any]) -> None:
        for node in nodes:
            self.visit(node)

    def visit_list(self, node: Any) -> None:
        commands = [part for part in node.parts if part.kind != "operator"]
        for part in node.parts:
            if part.kind == "operator" and part.op == "&":
                self.uses.append(_Use("background", self.text(node)))
        if len(commands) > 1:
            self.uses.append(_Use("chaining", self.text(node)))
        self.visit_all(commands)

    def visit_pipeline(self, node: Any) -> None:
        if any(part.kind == "pipe" for part in node.parts):
            self.uses.append(_Use("pipe", self.text(node)))
        self.visit_all(part for part in node.parts if part.kind not in ("pipe", "reservedword"))

    def visit_compound(self, node: Any) -> None:
        if self.text(node).startswith("(("):
            # bash reads "((...))" as an arithmetic command, which expands $(...) even inside
            # single quotes; bashlex reads it as two nested subshells.
            self.problems.append(
                f"uses an arithmetic command ({preview(self.text(node), 60)}), which the guard "
                "cannot check"
            )
            return
        self.visit_all(part for part in node.list if part.kind != "reservedword")
        self.visit_all(getattr(node, "redirects", ()))

    def _control(self, node: Any) -> None:
        # Loops and conditionals sequence several commands, as ';' and '&&' do.
        self.uses.append(_Use("chaining", self.text(node)))
        self.visit_all(part for part in node.parts if part.kind != "reservedword")

    visit_if = visit_for = visit_while = visit_until = _control

    def visit_function(self, node: Any) -> None:
        self.uses.append(_Use("chaining", self.text(node)))
        self.visit(node.body)

    def visit_command(self, node: Any) -> None:
        words: list[Any] = []
        for part in node.parts:
            if part.kind == "assignment":
                if not words:
                    self._assignment(part)
                else:  # "echo a=1": an ordinary argument
                    self.visit_word(part)
            elif part.kind == "redirect":
                self.visit(part)
            elif part.kind == "word":
                words.append(part)
            else:
                self.visit(part)
        if words:
            self._program(words[0])
            if words[0].word.rsplit("/", 1)[-1] == "find" and not words[0].parts:
                self._find_exec(words[1:])
        self.visit_all(words)

    def _assignment(self, node: Any) -> None:
        name = node.word.split("=", 1)[0].removesuffix("+").split("[", 1)[0]
        if name in _LOADER_VARIABLES or name.startswith(_LOADER_PREFIXES):
            self.problems.append(
                f"sets {name} ({preview(node.word, 60)}), which can change what program runs"
            )
        self.visit_word(node)

    def _program(self, word: Any) -> None:
        if word.parts:
            # "$CMD", "~/bin/x", "$(echo rm)": the program is only known at run time.
            self.runs.append(_Run(None, self.text(word), self.where()))
        else:
            self.runs.append(_Run(word.word, self.text(word), self.where()))

    def _find_exec(self, args: list[Any]) -> None:
        for flag, program in itertools.pairwise(args):
            if flag.word in _FIND_EXEC:
                self.context.append(self.text(flag) + " " + self.text(program))
                self._program(program)
                self.context.pop()

    def visit_word(self, node: Any) -> None:
        self.visit_all(node.parts)

    visit_assignment = visit_word

    def _substitution(self, node: Any) -> None:
        text = self.text(node)
        self.uses.append(_Use("substitution", text))
        self.context.append(text)
        self.visit(node.command)
        self.context.pop()

    visit_commandsubstitution = visit_processsubstitution = _substitution

    def visit_parameter(self, node: Any) -> None:
        value = getattr(node, "value", None)
        # bashlex keeps "${x:-$(rm)}" as one opaque parameter: what it runs is unknown.
        if value is None or any(c in value for c in "$`()<>"):
            self.problems.append(
                f"uses an expansion the guard cannot see into ({preview(self.text(node), 60)})"
            )

    def visit_tilde(self, node: Any) -> None:
        return None

    def visit_redirect(self, node: Any) -> None:
        self.uses.append(_Use("redirect", self.text(node)))
        import bashlex

        output = getattr(node, "output", None)
        if isinstance(output, bashlex.ast.node):
            self.visit(output)
        heredoc = getattr(node, "heredoc", None)
        if heredoc is not None and any(c in heredoc.value for c in "$`"):
            # Unquoted here-documents expand $(...) and backticks; bashlex leaves them as text.
            self.problems.append(
                "has a here-document with '$' or '`' in its body, which the guard cannot check"
            )


def _facts_uncached(line: str) -> _Facts:
    if not line.strip():
        raise ScopeViolation("expected a shell command, found an empty line", unreadable=True)
    if "\x00" in line:
        raise ScopeViolation(f"command {preview(line)} contains a NUL byte", unreadable=True)
    import bashlex  # here: building its parser takes a quarter of a second

    try:
        trees = bashlex.parse(line)
    except NotImplementedError as exc:
        raise ScopeViolation(
            f"cannot check command {preview(line)}: the parser does not support {exc}",
            unreadable=True,
        ) from None
    except Exception as exc:  # bashlex raises ParsingError and, on odd input, anything
        raise ScopeViolation(
            f"cannot parse command {preview(line)}: {exc}", unreadable=True
        ) from None
    walk = _Walk(line)
    if len(trees) > 1:
        walk.uses.append(_Use("chaining", line))
    try:
        walk.visit_all(trees)
    except (AttributeError, TypeError, ValueError, RecursionError) as exc:
        # A tree shape the walk does not expect: deny with a reason rather than crash.
        raise ScopeViolation(
            f"cannot check command {preview(line)}: unexpected syntax tree ({exc})",
            unreadable=True,
        ) from None
    return _Facts(tuple(walk.runs), tuple(walk.uses), tuple(walk.problems))


@functools.lru_cache(maxsize=1024)
def _facts_cached(line: str) -> _Facts:
    return _facts_uncached(line)


def _facts(line: str) -> _Facts:
    return _facts_cached(line) if len(line) <= 4096 else _facts_uncached(line)


class Shell(Scope):
    """Shell command lines that run only listed programs, composed only as allowed.

    Every program the line would run must be in ``programs``: the first word of each
    command, including commands after ``;``/``&&``/``||``/newlines, in pipelines,
    subshells, loops, ``$(...)``, backticks, ``<(...)`` and after ``find -exec``. A program
    written with a path (``/bin/rm``, ``./x``) matches only that exact string; ``rm`` in
    ``programs`` does not allow ``/bin/rm``, nor the reverse. A program that comes from an
    expansion (``$CMD``, ``~/bin/x``) is denied: it is only known at run time.

    The scope decides *which programs run*, not what their arguments do: ``rm`` listed
    allows ``rm -rf /``. Constrain arguments with a tool that takes them separately.

    Listing a program that runs other programs widens the scope to whatever it runs:
    ``sudo``, ``env``, ``xargs``, ``sh``/``bash -c``, ``eval``, ``exec``, ``command``,
    ``nohup``, ``nice``, ``timeout``, interpreters (``python``, ``perl``, ``awk``)... (see
    ``LAUNCHERS``). ``find`` is the exception that is checked: what ``-exec``,
    ``-execdir``, ``-ok`` and ``-okdir`` run must be listed too. (``time`` is a bash
    keyword the parser does not support, so ``time ...`` is always denied.)

    Composition, each off by default:

    - ``allow_pipes``: ``a | b``.
    - ``allow_chaining``: several commands in sequence: ``;``, ``&&``, ``||``, newlines,
      and control structures (``if``, ``for``, ``while``, ``until``, function definitions).
    - ``allow_substitution``: ``$(...)``, backticks and ``<(...)``/``>(...)``; the programs
      inside are checked either way.
    - ``allow_redirects``: ``>``, ``>>``, ``<``, ``2>&1``, here-documents and here-strings.
    - ``allow_background``: ``&``.

    A subshell or group around listed programs (``(ls)``, ``( ls )``, ``{ ls; }``) and a
    trailing ``;`` are not composition: what they hold is checked like any other command.

    Always denied: lines that do not parse, constructs bashlex does not support (``case``,
    ``[[ ]]``, ``$((...))``, ``coproc``), arithmetic commands ``((...))`` (bash expands
    ``$(...)`` inside them even between single quotes), expansions bashlex keeps opaque (``${x:-$(rm)}``),
    here-documents whose body holds ``$`` or a backtick, and assignments to variables that
    change what runs (``PATH``, ``IFS``, ``LD_*``, ``PAGER``, ``GIT_*``, ...).

    Example::

        >>> scope = Shell(["ls", "grep"], allow_pipes=True)
        >>> scope.contains("ls -la /srv | grep report")
        True
        >>> scope.contains("ls; rm -rf /")
        False
        >>> scope.contains("ls $(rm -rf /)")
        False
    """

    kind = "shell"

    def __init__(
        self,
        programs: str | Iterable[str],
        *,
        allow_pipes: bool = False,
        allow_chaining: bool = False,
        allow_substitution: bool = False,
        allow_redirects: bool = False,
        allow_background: bool = False,
    ) -> None:
        names = string_list(programs, "programs")
        for name in names:
            if not name or (name != "[" and any(c in _UNSAFE_PROGRAM_CHARS for c in name)):
                raise ScopeError(
                    f"programs: {preview(name)} is not a plain program name or path "
                    "(no spaces, quotes, expansions, globs or operators)"
                )
        if not names:
            raise ScopeError("programs must list at least one program, found none")
        self._programs = frozenset(names)
        settings = {
            "allow_pipes": allow_pipes,
            "allow_chaining": allow_chaining,
            "allow_substitution": allow_substitution,
            "allow_redirects": allow_redirects,
            "allow_background": allow_background,
        }
        for setting, flag in settings.items():
            if not isinstance(flag, bool):
                raise ScopeError(f"{setting} must be a bool, found {describe(flag)}")
        self._settings = settings
        self._allowed: frozenset[Feature] = frozenset(
            feature for feature, setting in _FEATURE_SETTING.items() if settings[setting]
        )

    @property
    def programs(self) -> frozenset[str]:
        """The allowed programs, exactly as they must be written."""
        return self._programs

    def check(self, value: object) -> None:
        if not isinstance(value, str):
            raise ScopeViolation(
                f"expected a shell command line (str), found {describe(value)}", unreadable=True
            )
        facts = _facts(value)
        if facts.problems:
            raise ScopeViolation(f"command {preview(value)} {facts.problems[0]}", unreadable=True)
        for run in facts.runs:
            if run.name is not None and run.name not in self._programs:
                raise ScopeViolation(
                    f"command {preview(value)} runs {run.name!r}{run.where}, which is not in "
                    "allowed programs",
                    allowed=f"allowed programs {sorted(self._programs)}{self._hint(run.name)}",
                )
        for run in facts.runs:
            if run.name is None:
                raise ScopeViolation(
                    f"command {preview(value)} runs a program named by an expansion "
                    f"({preview(run.word, 60)}{run.where}); only listed programs written "
                    "literally are allowed",
                    unreadable=True,
                )
        for use in facts.uses:
            if use.feature not in self._allowed:
                raise ScopeViolation(
                    f"command {preview(value)} uses {_DESCRIPTIONS[use.feature]} "
                    f"({preview(use.text, 60)}), which is not allowed",
                    allowed=f"it needs {_FEATURE_SETTING[use.feature]}=True",
                )

    def _hint(self, name: str) -> str:
        if "/" in name:
            base = name.rsplit("/", 1)[1]
            if base in self._programs:
                return (
                    f" (a program given with a path must be listed exactly: {name!r}, not {base!r})"
                )
        if name in LAUNCHERS:
            return f" ({name!r} runs other programs: listing it allows whatever it runs)"
        return ""

    def spec(self) -> dict[str, Any]:
        return {"programs": sorted(self._programs), **self._settings}

    def within(self, other: Scope) -> bool:
        """Fewer (or the same) programs and no composition ``other`` does not allow."""
        if not isinstance(other, Shell):
            return False
        return self._programs <= other._programs and self._allowed <= other._allowed


_DESCRIPTIONS: dict[Feature, str] = {
    "pipe": "a pipe",
    "chaining": "several commands in sequence",
    "substitution": "command or process substitution",
    "redirect": "a redirect",
    "background": "a background job",
}
