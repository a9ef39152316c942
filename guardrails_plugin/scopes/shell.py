"""Shell command lines, checked on every program the line would run.

The line is parsed with ``bashlex`` (a port of bash's own grammar) and the syntax tree is
walked for everything bash would execute: the first word of every simple command (after
leading ``NAME=value`` assignments), inside pipelines, lists, subshells, groups, loops and
conditionals, command substitutions (``$(...)``, backticks) and process substitutions
(``<(...)``), and what ``find -exec`` runs. Operators that compose commands (pipes,
chaining, substitution, redirects, background jobs) are denied unless a setting allows them.
A line bashlex cannot parse, or a construct the walk does not know, denies.

Why this file is long: one walk of the syntax tree gathers every fact the scope decides on,
including the per-builtin readings of variable names bash evaluates as arithmetic (which run
``$(...)`` hidden from the syntax tree); splitting them would split that one walk.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ._base import Scope, ScopeError, ScopeViolation
from ._shell_programs import READ_PROGRAMS, Word, read_program_args
from ._text import describe, preview, string_list

__all__ = ["LAUNCHERS", "Shell"]

LAUNCHERS: frozenset[str] = frozenset(
    {
        "sudo", "doas", "su", "env", "xargs", "parallel", "exec", "eval", "command",
        "builtin", "source", ".", "nohup", "time", "nice", "ionice", "timeout", "stdbuf",
        "setsid", "chroot", "watch", "strace", "ltrace", "sh", "bash", "zsh", "dash", "ksh",
        "fish", "busybox", "ssh", "script", "python", "python3", "perl", "ruby", "node",
        "awk", "let", "declare", "typeset", "local", "readonly", "mapfile", "readarray",
        "trap", "hash", "enable", "alias", "shopt", "fc", "bind", "complete", "compgen",
        "git", "tar", "rsync", "zip", "wget", "less", "more", "man", "vi", "vim", "nvim",
        "emacs", "ed", "gdb", "make", "m4", "php", "lua", "tclsh", "expect", "flock",
        "unshare", "nsenter", "systemd-run", "docker", "kubectl", "jobs",
    }
)  # fmt: skip
"""Programs that can run other programs (named in reasons). Listing one the scope does not
read (a shell, an interpreter, ``make``, an editor, ``eval``) widens a scope to whatever it
runs; the ones ``_shell_options`` reads (``env``, ``xargs``, ``tar``, ``git``, ...) run only
listed programs."""

_MAX_DEPTH = 16  # programs that run programs, nested ("env nice timeout 5 tar -I ...")

# bash evaluates an array subscript in a variable name as an arithmetic expression, and
# arithmetic expansion runs $(...) and backticks, even when the name was written between
# single quotes: "printf -v 'a[$(rm x)]' v" runs rm. A name is safe when it is written
# literally as a plain name, or with a subscript that is a number, "@" or "*".
_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[(?:\s*-?[0-9]+\s*|@|\*)\])?")
# Variables bash gives the integer attribute itself: a value stored in one is evaluated as
# arithmetic ("RANDOM=a[\$\(rm\)]" runs rm), so they are never safe names to store into.
_ARITHMETIC_VARIABLES = frozenset({"RANDOM", "SRANDOM", "OPTIND", "HISTCMD"})
# "${x:off:len}", "${x[sub]}" and "${!x}" evaluate off, len, sub and x's value likewise.
_PARAMETER = re.compile(r"([#!]?)([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[-@*#?$!])(\[[^\]]*\])?(.*)", re.S)
_NUMBER = r"\s*-?[0-9]*\s*"
_SUBSTRING = re.compile(rf":{_NUMBER}(?::{_NUMBER})?")
# test/[ operators a name may follow without being the operand of -v.
_TEST_OPERATORS = frozenset(
    {"]", "=", "==", "!=", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-nt", "-ot",
     "-ef", "-a", "-o", "(", ")", "!", "=~"}
)  # fmt: skip

# Variables that decide which program runs or what code it loads: setting one turns an
# allowed program into another. A deny list cannot be complete; it catches the classics.
_LOADER_VARIABLES = frozenset(
    {
        "PATH", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND",
        "PAGER", "MANPAGER", "EDITOR", "VISUAL", "BROWSER", "LESSOPEN", "LESSCLOSE", "SHELL",
        "NODE_OPTIONS", "RUBYOPT", "JAVA_TOOL_OPTIONS",
        # options or configuration read by programs this scope reads (tar, zip, rsync, ...)
        "TAR_OPTIONS", "TAPE", "RSH", "ZIPOPT", "ZIP", "UNZIP", "UNZIPOPT", "RSYNC_RSH",
        "RSYNC_CONNECT_PROG", "LESS", "MORE", "MANOPT", "WGETRC", "CURL_HOME", "SSH_ASKPASS",
        "SUDO_ASKPASS", "SUDO_EDITOR", "HOME", "XDG_CONFIG_HOME", "AWKPATH", "AWKLIBPATH",
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

    visit_if = visit_while = visit_until = _control

    def visit_for(self, node: Any) -> None:
        variable = _at([part for part in node.parts if part.kind == "word"], 0)
        if variable is not None and variable.word in _ARITHMETIC_VARIABLES:
            self._unsafe_name(variable, "the loop variable")
        self._control(node)

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
            if not words[0].parts and words[0].word in _NAME_BUILTINS:
                _NAME_BUILTINS[words[0].word](self, words[1:])
            elif not words[0].parts and words[0].word.rsplit("/", 1)[-1] in READ_PROGRAMS:
                self._read_program(
                    words[0].word,
                    self.text(words[0]),
                    [self._word(arg) for arg in words[1:]],
                    self.where(),
                )
        self.visit_all(words)

    def _word(self, node: Any) -> Word:
        """An argument as a program's option reader sees it: an expansion (other than ``~``)
        is unknown text, and an unquoted one, a glob or a brace expansion may become several
        words (``tar -cf a.tar *`` reads a file named ``--to-command=x`` as an option)."""
        expansion = any(part.kind != "tilde" for part in node.parts)
        found = _GLOB.search(_unquoted(self.text(node)))
        # Every word a glob or braces make starts with the text before them: "./*" and
        # "a{b,c}" make no option, "*", "-*" and "{-x,y}" may.
        glob = found is not None and (found.start() == 0 or node.word.startswith("-"))
        split = glob or (expansion and not self._quoted_expansion(node))
        return Word(node.word, expansion or glob, split)

    def _read_program(
        self, program: str, shown: str, args: list[Word], where: str, depth: int = 0
    ) -> None:
        """What ``program``'s own arguments make it run, write or set (``_shell_options``)."""
        name = program.rsplit("/", 1)[-1]
        if name not in READ_PROGRAMS:
            return
        if depth > _MAX_DEPTH:
            self.problems.append(f"nests programs that run programs too deeply ({shown})")
            return
        reading = read_program_args(name, args)
        shown = preview(shown, 30)
        self.problems.extend(f"{problem} ({shown}{where})" for problem in reading.problems)
        if reading.writes:
            self.uses.append(_Use("redirect", shown + " ... (writes a file)"))
        for assignment in reading.assignments:
            self._loader(assignment)
        for inner, line in reading.lines:
            self._nested_line(line, inner + where)
        for inner, vector in reading.commands:
            program_word, arguments = vector[0], list(vector[1:])
            context = f"{inner} {preview(program_word.text, 30)}{where}"
            if program_word.expansion:
                self.runs.append(_Run(None, program_word.text, context))
                continue
            self.runs.append(_Run(program_word.text, program_word.text, f"{inner}{where}"))
            self._read_program(program_word.text, program_word.text, arguments, context, depth + 1)

    def _nested_line(self, line: str, where: str) -> None:
        """A command line a program hands to ``/bin/sh``: checked as the whole line is."""
        try:
            facts = _facts(line)
        except ScopeViolation as exc:
            self.problems.append(f"runs a command line the guard cannot check{where}: {exc}")
            return
        self.runs.extend(_Run(run.name, run.word, run.where + where) for run in facts.runs)
        self.uses.extend(facts.uses)
        self.problems.extend(f"{problem}{where}" for problem in facts.problems)

    # --- builtins that take variable names ------------------------------------------------

    def _unsafe_name(self, word: Any, what: str) -> None:
        self.problems.append(
            f"gives {preview(self.text(word), 60)} as {what}: bash evaluates a subscript in a "
            "variable name as arithmetic, which runs $(...) inside it; give a plain name "
            "written literally (x, a[0], a[@])"
        )

    def _name(self, word: Any | None, what: str = "a variable name") -> None:
        """``word`` (if any) is read by bash as a variable name: it must be a safe literal."""
        if word is None:
            return
        if word.parts or not _safe_name(word.word):
            self._unsafe_name(word, what)

    def _quoted_expansion(self, word: Any) -> bool:
        """Whether ``word`` is one double-quoted string: it expands to exactly one word."""
        text = self.text(word)
        return len(text) >= 2 and text[0] == text[-1] == '"' and '"' not in text[1:-1]

    def _maybe_option(self, word: Any, following: Any | None) -> bool:
        """An expansion where an option may stand: it may become the option that takes a
        name (``op=-v; printf "$op" NAME``). Returns whether the word was an expansion."""
        if not word.parts:
            return False
        if not self._quoted_expansion(word):
            self._unsafe_name(word, "an unquoted expansion where an option may stand")
        else:
            self._name(following, "the word after an expansion that may be an option")
        return True

    def _printf(self, args: list[Any]) -> None:
        index = 0
        while index < len(args):
            word, following = args[index], _at(args, index + 1)
            if self._maybe_option(word, following) or word.word == "--":
                return
            if word.word == "-v":
                self._name(following)
                index += 2
            elif word.word.startswith("-v"):
                if not _safe_name(word.word[2:]):
                    self._unsafe_name(word, "a variable name")
                index += 1
            else:
                return  # the format: the rest are arguments

    def _read(self, args: list[Any]) -> None:
        # read [-ers] [-a name] [-d d] [-i text] [-n n] [-N n] [-p prompt] [-t t] [-u fd] name...
        index = 0
        while index < len(args):
            word, following = args[index], _at(args, index + 1)
            if word.parts:
                self._name(word)  # an option or a name, unknown until run time
                index += 1
                continue
            text = word.word
            if text == "--":
                index += 1
                break
            if not text.startswith("-") or text == "-":
                break
            index += 1
            for position, letter in enumerate(text[1:], start=2):
                if letter in "adinNptu":
                    attached = text[position:]
                    if letter == "a":
                        if attached:
                            if not _safe_name(attached):
                                self._unsafe_name(word, "an array name")
                        else:
                            self._name(following, "an array name")
                    if not attached:
                        index += 1
                    break
        for word in args[index:]:
            self._name(word)

    def _test(self, args: list[Any]) -> None:
        for index, word in enumerate(args):
            following = _at(args, index + 1)
            if word.parts:
                if not self._quoted_expansion(word):
                    self._unsafe_name(word, "an unquoted expansion in a test")
                elif following is not None and following.parts:
                    self._unsafe_name(following, "a word that may be the operand of -v")
                elif following is not None and following.word not in _TEST_OPERATORS:
                    self._name(following, "a word that may be the operand of -v")
            elif word.word in ("-v", "-R") and following is not None and following.word != "]":
                self._name(following)

    def _export(self, args: list[Any]) -> None:
        for word in args:
            text = self.text(word)
            if text.startswith("-") and not word.parts:
                continue
            name, equals, value = text.partition("=")
            if not _safe_name(name) or (
                name in _ARITHMETIC_VARIABLES and equals and not value.isdigit()
            ):
                self._unsafe_name(word, "a variable to export")

    def _unset(self, args: list[Any]) -> None:
        for word in args:
            if word.parts or not word.word.startswith("-"):
                self._name(word)

    def _wait(self, args: list[Any]) -> None:
        for index, word in enumerate(args):
            following = _at(args, index + 1)
            if self._maybe_option(word, following):
                continue
            if word.word == "-p" or (word.word.startswith("-") and word.word.endswith("p")):
                self._name(following)

    def _loader(self, assignment: str) -> bool:
        """Whether ``NAME=value`` sets a variable that changes what runs (a problem if so)."""
        name = assignment.split("=", 1)[0].removesuffix("+").split("[", 1)[0]
        if name in _LOADER_VARIABLES or name.startswith(_LOADER_PREFIXES):
            self.problems.append(
                f"sets {name} ({preview(assignment, 60)}), which can change what program runs"
            )
            return True
        return False

    def _assignment(self, node: Any) -> None:
        name = node.word.split("=", 1)[0].removesuffix("+").split("[", 1)[0]
        if self._loader(node.word):
            pass
        elif name in _ARITHMETIC_VARIABLES and not node.word.split("=", 1)[1].isdigit():
            self.problems.append(
                f"sets {name} ({preview(node.word, 60)}), which bash evaluates as arithmetic: "
                "that runs $(...) inside the value"
            )
        self.visit_word(node)

    def _program(self, word: Any) -> None:
        if word.parts:
            # "$CMD", "~/bin/x", "$(echo rm)": the program is only known at run time.
            self.runs.append(_Run(None, self.text(word), self.where()))
        else:
            self.runs.append(_Run(word.word, self.text(word), self.where()))

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
        elif not _plain_parameter(value):
            self.problems.append(
                f"uses an expansion bash evaluates as arithmetic ({preview(self.text(node), 60)}):"
                " a subscript, offset or length that is not a number, or an indirection, reads a"
                " variable whose value can run $(...); write numbers"
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


# Unquoted glob characters and brace expansions in a word (quoted text blanked out).
_GLOB = re.compile(r"[*?]|\[.*\]|\{[^{}]*(,|\.\.)[^{}]*\}")


def _unquoted(text: str) -> str:
    """``text`` with everything quoted or escaped replaced by ``_``, as bash reads it."""
    if not any(c in text for c in "'\"\\"):
        return text
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote == "'":
            out.append("_")
            quote = "" if c == "'" else quote
        elif c == "\\":
            out.append("__")
            i += 1
        elif quote == '"':
            out.append("_")
            quote = "" if c == '"' else quote
        elif c in "'\"":
            out.append("_")
            quote = c
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _at(words: list[Any], index: int) -> Any | None:
    return words[index] if index < len(words) else None


_NAME_BUILTINS = {
    "printf": _Walk._printf,
    "read": _Walk._read,
    "test": _Walk._test,
    "[": _Walk._test,
    "unset": _Walk._unset,
    "export": _Walk._export,
    "wait": _Walk._wait,
}


def _safe_name(text: str) -> bool:
    """A variable name bash stores into without evaluating anything."""
    return _SAFE_NAME.fullmatch(text) is not None and (
        text.split("[", 1)[0] not in _ARITHMETIC_VARIABLES
    )


def _plain_parameter(value: str) -> bool:
    """Whether ``${value}`` runs nothing a variable's value holds.

    Subscripts must be numbers, ``@`` or ``*``; a ``:`` substring's offset and length must be
    numbers; ``${!x}`` (indirection) is allowed only as ``${!x[@]}``/``${!prefix*}``; the
    prompt expansion ``${x@P}`` is refused.
    """
    match = _PARAMETER.fullmatch(value)
    if match is None:
        return False
    prefix, _, subscript, rest = match.groups()
    if subscript is not None and not _SAFE_NAME.fullmatch("a" + subscript):
        return False
    if prefix == "!":
        return (subscript in ("[@]", "[*]") and not rest) or (not subscript and rest in ("@", "*"))
    if rest.startswith(":") and rest[1:2] not in ("-", "=", "+", "?"):
        return _SUBSTRING.fullmatch(rest) is not None
    # "${x@P}" expands the value as a prompt string, which runs $(...) and backticks in it.
    return not (rest.startswith("@") and "P" in rest)


def _facts_uncached(line: str) -> _Facts:
    if not line.strip():
        raise ScopeViolation("expected a shell command, found an empty line", unreadable=True)
    if "\x00" in line:
        raise ScopeViolation(f"command {preview(line)} contains a NUL byte", unreadable=True)
    import bashlex  # imported by every Shell scope already (see Shell.__init__)

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

    Programs whose own options run other programs are read with their option grammars
    (``_shell_options``; short clusters, GNU long-name abbreviations, options after operands,
    tar's bundled letters): what ``tar --to-command``/``-I``/``--checkpoint-action=exec``,
    ``git --upload-pack``/``rebase -x``, ``zip -TT``, ``rsync -e``, ``man -P``, ``scp -S``
    run is checked as a nested line, and what ``find -exec``, ``xargs``, ``env``, ``nice``,
    ``timeout``, ``stdbuf``, ``setsid``, ``ionice``, ``chroot``, ``flock``, ``sudo`` and
    ``doas`` run as a nested command: its program must be listed too. Options that load
    code or configuration the guard cannot read are refused (``git -c`` with a key not known
    to run nothing, ``ssh -o ProxyCommand``, ``awk`` programs calling ``system`` or piping,
    ``env -S``, ``sudo -s``); curl and wget writing files need ``allow_redirects``. So does
    GNU ``sed``'s ``w`` (a script with the ``e`` command or the ``e`` flag of ``s``, from
    ``-f`` or an expansion, is denied unless ``--sandbox``), and ``sort
    --compress-program``/``split --filter`` are denied. For these programs an argument bash
    may split or that may begin with ``-`` once expanded (an unquoted ``$X``, ``*``,
    ``{a,b}``) is unknown where an option may stand: ``tar -cf a.tar *`` is denied,
    ``tar -cf a.tar -- *`` is not. docs/scopes.md lists what the scope cannot see
    (scripts and configuration files, standard input, the process environment).

    Listing a program the scope does not read widens the scope to whatever it runs: shells
    and ``sh -c``/``bash -c``, ``eval``, ``exec``, ``command``, ``source``, interpreters
    (``python``, ``perl``, ``node``), ``make``, editors, ``busybox`` (see ``LAUNCHERS``).
    (``time`` is a bash keyword the parser does not support, so ``time ...`` is always
    denied.)

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

    bash evaluates array subscripts in variable names, substring offsets and the values of
    its integer variables as arithmetic, and arithmetic expansion runs ``$(...)`` even when
    it was written between single quotes (``printf -v 'a[$(rm x)]' v`` runs ``rm``). So
    the names given to ``printf -v``, ``read``, ``test -v``/``[ -v``, ``unset``, ``wait -p``
    and ``export`` must be written literally as plain names (``x``, ``a[0]``, ``a[@]``),
    not come from an expansion; ``RANDOM``, ``SRANDOM``, ``OPTIND`` and ``HISTCMD`` may only
    be set to a literal number; and ``${x[i]}``, ``${x:off:len}`` are allowed only with
    numbers (``@``/``*`` as subscripts), ``${!x}`` only as ``${!x[@]}``/``${!prefix*}``, and
    ``${x@P}`` (prompt expansion, which runs ``$(...)`` in the value) never.
    Builtins that evaluate arithmetic or run code on any argument (``let``, ``declare``,
    ``typeset``, ``local``, ``readonly``, ``mapfile``, ``trap``, ``hash``, ...) are in
    ``LAUNCHERS``: listing one allows what it runs.

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
        # Compile at load: bashlex builds its LALR tables when it is first imported (0.6 s on
        # an idle machine, seconds on a busy one), a cost for the policy's loading, not for
        # the first call this scope decides.
        import bashlex  # noqa: F401

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
        if name in READ_PROGRAMS and name in LAUNCHERS:
            return f" ({name!r} runs other programs: what it runs must be listed too)"
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
