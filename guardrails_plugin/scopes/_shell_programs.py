"""What some listed programs run because of their arguments: GNU sed, sort and split here,
the programs of ``_shell_options`` (tar, git, find, xargs, env, awk, ssh, ...) through it.

``Shell`` promises that every program a line runs is listed. A few ordinary text tools run
commands of their own: GNU sed's ``e`` command and the ``e`` flag of ``s`` hand text to
``/bin/sh`` (``sed '1e rm -rf ~' f``), ``sort --compress-program=PROG`` and ``split
--filter=CMD`` run what they are given. Each function here reads the words after the
program name and returns the problems (always denied), plus whether the tool writes files
the way a redirect would (sed's ``w`` command and ``s///w`` flag).

The sed script reader is conservative: it follows GNU sed's grammar for the commands it
knows (addresses, ``s`` and ``y`` with any delimiter, bracket expressions, escapes, ``a``/
``i``/``c`` text, labels, braces, comments) and reports anything else as a script it cannot
check; ``--sandbox`` (which makes sed itself refuse ``e``, ``r`` and ``w``) allows any script.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._shell_options import OPTION_READERS, Reading, Word

__all__ = ["READ_PROGRAMS", "Reading", "Word", "read_program_args"]


_SED_LONG = ("expression", "file", "sandbox", "in-place", "line-length", "null-data",
             "zero-terminated", "quiet", "silent", "posix", "regexp-extended", "separate",
             "unbuffered", "debug", "follow-symlinks", "binary", "help", "version")  # fmt: skip
_NO_ARGUMENT = frozenset("=dDgGhHnNpPxzlLqQF")  # l, L, q, Q take an optional number
_LABEL = frozenset("btT:")
_TEXT = frozenset("aic")
_FILE = frozenset("rRwW")
_S_FLAGS = frozenset("gpiImM0123456789")


class _Unchecked(Exception):
    """A script the reader does not follow: denied."""


def _long_option(text: str, names: Sequence[str]) -> str | None:
    """The long option ``--text`` abbreviates (getopt_long accepts unique prefixes)."""
    given = text[2:].split("=", 1)[0]
    if given in names:
        return given
    matches = [name for name in names if name.startswith(given)]
    return matches[0] if len(matches) == 1 and given else None


def _sed(words: Sequence[Word]) -> Reading:
    scripts: list[str] = []
    operands: list[Word] = []
    problems: list[str] = []
    sandbox = False
    index = 0
    options_done = False
    while index < len(words):
        word = words[index]
        index += 1
        text = word.text
        if options_done or word.expansion or not text.startswith("-") or text == "-":
            if word.expansion and not options_done:
                problems.append(
                    "gives sed an expansion where an option may stand (it may become "
                    "-e or --expression with a script that runs commands)"
                )
            operands.append(word)
            continue
        if text == "--":
            options_done = True
            continue
        if text.startswith("--"):
            name = _long_option(text, _SED_LONG)
            value = text.split("=", 1)[1] if "=" in text else None
            if name == "sandbox":
                sandbox = True
            elif name in ("expression", "file", "line-length") and value is None:
                value = words[index].text if index < len(words) else ""
                if index < len(words) and words[index].expansion:
                    problems.append(f"gives sed an expansion as the value of --{name}")
                index += 1
            if name == "expression":
                scripts.append(value or "")
            elif name == "file":
                problems.append("reads a sed script from a file, which the guard cannot check")
            continue
        position = 1
        while position < len(text):
            letter = text[position]
            position += 1
            if letter in "efl":
                value = text[position:]
                if not value:
                    value = words[index].text if index < len(words) else ""
                    if index < len(words) and words[index].expansion:
                        problems.append(f"gives sed an expansion as the value of -{letter}")
                    index += 1
                if letter == "e":
                    scripts.append(value)
                elif letter == "f":
                    problems.append("reads a sed script from a file, which the guard cannot check")
                break
            if letter == "i":
                break  # -i[SUFFIX]: the rest is the suffix
    if not scripts and operands:
        first = operands[0]
        if first.expansion:
            problems.append("gives sed its script through an expansion")
        scripts.append(first.text)
    if sandbox:  # sed itself refuses e, r and w, whatever the script or where it comes from
        return Reading()
    writes = False
    try:
        # GNU sed joins its -e scripts with line breaks before reading them.
        writes = _sed_script("\n".join(scripts))
    except _Unchecked as exc:
        problems.append(f"gives sed a script the guard cannot check ({exc}); add --sandbox")
    return Reading(tuple(problems), writes)


def _sed_script(script: str) -> bool:
    """Follow one GNU sed script; ``_Unchecked`` for an ``e`` or anything not understood.
    Returns whether it writes files (``w``, ``W``, the ``w`` flag)."""
    writes = False
    n = len(script)
    i = 0

    def skip_regex(i: int, delimiter: str) -> int:
        """Index just past the closing delimiter of a regex starting at ``i``."""
        while i < n:
            c = script[i]
            if c == "\\":
                i += 2
                continue
            if c == "\n":
                raise _Unchecked("a line break inside a regular expression")
            if c == "[":
                i = skip_bracket(i)
                continue
            if c == delimiter:
                return i + 1
            i += 1
        raise _Unchecked("an unterminated regular expression")

    def skip_bracket(i: int) -> int:
        j = i + 1
        if j < n and script[j] == "^":
            j += 1
        if j < n and script[j] == "]":
            j += 1
        while j < n:
            if script[j] == "[" and j + 1 < n and script[j + 1] in ".:=":
                end = script.find(script[j + 1] + "]", j + 2)
                if end == -1:
                    raise _Unchecked("an unterminated bracket expression")
                j = end + 2
                continue
            if script[j] == "]":
                return j + 1
            if script[j] == "\n":
                raise _Unchecked("a line break inside a bracket expression")
            j += 1
        raise _Unchecked("an unterminated bracket expression")

    def skip_replacement(i: int, delimiter: str) -> int:
        while i < n:
            c = script[i]
            if c == "\\":
                i += 2
                continue
            if c == delimiter:
                return i + 1
            if c == "\n":
                raise _Unchecked("a line break inside a replacement")
            i += 1
        raise _Unchecked("an unterminated s command")

    def to_line_end(i: int) -> int:
        end = script.find("\n", i)
        return n if end == -1 else end

    def address(i: int) -> int:
        if i < n and script[i].isdigit():
            while i < n and (script[i].isdigit() or script[i] == "~"):
                i += 1
        elif i < n and script[i] == "$":
            i += 1
        elif i < n and script[i] in "/\\":
            if script[i] == "\\":
                if i + 1 >= n or script[i + 1] in "\n\\":
                    raise _Unchecked("an odd address delimiter")
                delimiter, i = script[i + 1], i + 2
            else:
                delimiter, i = "/", i + 1
            i = skip_regex(i, delimiter)
            while i < n and script[i] in "IM":
                i += 1
        return i

    while i < n:
        c = script[i]
        if c in " \t\n;":
            i += 1
            continue
        if c == "#":
            i = to_line_end(i)
            continue
        start = i
        i = address(i)
        if i < n and script[i] == "," and i != start:
            i += 1
            if i < n and script[i] in "+~":
                i += 1
            i = address(i)
        while i < n and script[i] in " \t!":
            i += 1
        if i >= n:
            raise _Unchecked("an address without a command")
        c = script[i]
        i += 1
        if c in "{}":
            continue
        if c in _NO_ARGUMENT:
            while i < n and (script[i].isdigit() or script[i] in " \t"):
                i += 1
            if i < n and script[i] not in ";\n}#":
                raise _Unchecked(f"text after the {c!r} command")
            continue
        if c in _LABEL:
            end = i
            while end < n and script[end] not in ";\n":
                end += 1
            i = end
            continue
        if c in _TEXT or c in _FILE:
            # GNU: the text or file name runs to the end of the line ("a\" continues it).
            while True:
                end = to_line_end(i)
                if end < n and script[end - 1 : end] == "\\":
                    i = end + 1
                    continue
                break
            writes = writes or c in "wW"
            i = end
            continue
        if c in "sy":
            if i >= n or script[i] in "\n\\":
                raise _Unchecked(f"an odd {c} delimiter")
            delimiter = script[i]
            i = skip_regex(i + 1, delimiter) if c == "s" else skip_replacement(i + 1, delimiter)
            i = skip_replacement(i, delimiter)
            if c == "y":
                continue
            while i < n and script[i] not in ";\n}#":
                flag = script[i]
                if flag == "w":
                    writes = True
                    i = to_line_end(i)
                    break
                if flag == "e":
                    raise _Unchecked("the e flag of s runs the result as a shell command")
                if flag not in _S_FLAGS and flag not in " \t":
                    raise _Unchecked(f"the s flag {flag!r}")
                i += 1
            continue
        if c == "e":
            raise _Unchecked("the e command runs a shell command")
        if c == "v":
            i = to_line_end(i) if script.find(";", i) == -1 else script.find(";", i)
            continue
        raise _Unchecked(f"the command {c!r}")
    return writes


def _exec_option(program: str, options: Sequence[str]) -> Callable[[Sequence[Word]], Reading]:
    def read(words: Sequence[Word]) -> Reading:
        problems: list[str] = []
        for word in words:
            if word.text == "--" and not word.expansion:
                break
            if word.expansion:
                problems.append(
                    f"gives {program} an expansion where an option may stand (it may become "
                    f"{options[0]}, which runs a program); put '--' before it"
                )
            elif word.text.startswith("--") and len(word.text.split("=", 1)[0]) > 2:
                given = word.text[2:].split("=", 1)[0]
                if any(option[2:].startswith(given) for option in options):
                    problems.append(f"uses {word.text.split('=', 1)[0]}, which runs a program")
        return Reading(tuple(problems))

    return read


_READERS: dict[str, Callable[[Sequence[Word]], Reading]] = {
    "sed": _sed,
    "gsed": _sed,  # GNU sed's name where the system sed is another one
    "sort": _exec_option("sort", ["--compress-program"]),
    "split": _exec_option("split", ["--filter"]),
    **OPTION_READERS,
}


READ_PROGRAMS = frozenset(_READERS)
"""The programs whose arguments are read here."""


def read_program_args(program: str, words: Sequence[Word]) -> Reading:
    """What the arguments make ``program`` (one of ``READ_PROGRAMS``) do."""
    return _READERS[program](words)
