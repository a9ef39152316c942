"""Programs whose own options run other programs, read through their option grammars.

Why this file is long: it is one table per program (tar's 170 long names for getopt's
abbreviation rule, git's subcommands, the wrappers' grammars, awk's lexer, ssh's settings),
each next to the few lines that read it; splitting them apart would separate a program's
grammar from the code that trusts it.

``Shell`` promises that every program a line runs is listed. Many ordinary programs run
others because of an option: ``tar --to-command=CMD`` / ``-I CMD`` /
``--checkpoint-action=exec=CMD`` hand ``CMD`` to ``/bin/sh``; ``git -c core.pager=CMD``,
``--upload-pack=CMD``, ``rebase --exec CMD``; ``zip -TT CMD``; ``ssh -o ProxyCommand=CMD``;
``awk 'BEGIN{system("CMD")}'``; ``find -exec``, ``xargs``, ``env``, ``nice``, ``timeout``...
run their operands. Each program here has one table: its option grammar (which short
letters and long names take a value, whether options may follow operands, whether long
names may be abbreviated as GNU ``getopt_long`` and ``argp`` allow) and what each option
does: runs a command line (the value is checked as a nested line, through the same check as
the whole line), runs a command vector (the operands are checked as a command), is refused,
or writes a file (needs ``allow_redirects``, as a redirect would).

The reading errs towards refusing: a short letter is taken to have a value only when the
program's documentation says so (a letter read as a flag can only show more options, never
hide one), an abbreviation that may stand for a refused option is refused, and an expansion
where an option may stand is refused (its value is only known at run time).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["OPTION_READERS", "Reading", "Word"]


@dataclass(frozen=True, slots=True)
class Word:
    """One argument word: its text after quote removal, whether it holds an expansion, and
    whether bash may split it into several words (an unquoted expansion, a glob, braces)."""

    text: str
    expansion: bool
    split: bool = False


@dataclass(frozen=True, slots=True)
class Reading:
    """What the arguments of one program make it do, as far as the scope decides."""

    problems: tuple[str, ...] = ()
    writes: bool = False  # writes files as a redirect would
    lines: tuple[tuple[str, str], ...] = ()  # (where, command line run through a shell)
    commands: tuple[tuple[str, tuple[Word, ...]], ...] = ()  # (where, argument vector run)
    assignments: tuple[str, ...] = ()  # environment variables set for what runs


@dataclass(frozen=True, slots=True)
class Grammar:
    """A program's option syntax: short letters and long names with their arity (0 no
    value, 1 a required value, 2 an optional value given only attached)."""

    short: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    long: Mapping[str, int] = field(default_factory=dict)
    permute: bool = True  # GNU: options may follow operands
    abbreviate: bool = True  # getopt_long/argp: unique prefixes of long names


@dataclass
class _Parsed:
    options: list[tuple[str, Word | None]] = field(default_factory=list)
    operands: list[Word] = field(default_factory=list)
    tail: list[Word] = field(default_factory=list)  # no permute: the words from the first operand
    expansion: bool = False  # an expansion stood where an option may


def _resolve(given: str, names: Mapping[str, int], abbreviate: bool) -> list[str]:
    """The long names ``--given`` may stand for (several when the prefix is ambiguous)."""
    if given in names:
        return [given]
    if not abbreviate or not given:
        return []
    return [name for name in names if name.startswith(given)]


def parse(words: Sequence[Word], grammar: Grammar) -> _Parsed:
    """Split ``words`` into options (long name or ``-x``, value) and operands.

    An ambiguous abbreviation is reported once per candidate name (the program refuses it,
    so reading it as each candidate only errs towards refusing).
    """
    parsed = _Parsed()
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        text = word.text
        if word.expansion:
            parsed.expansion = True
            parsed.operands.append(word)
            if not grammar.permute:
                parsed.tail = list(words[index - 1 :])
                return parsed
            continue
        if text == "--":
            parsed.operands.extend(words[index:])
            parsed.tail = list(words[index:])
            return parsed
        if text.startswith("--"):
            given, equals, value = text[2:].partition("=")
            candidates = _resolve(given, grammar.long, grammar.abbreviate)
            taken: Word | None = Word(value, False) if equals else None
            if (
                not equals
                and candidates
                and all(grammar.long[name] == 1 for name in candidates)
                and index < len(words)
            ):
                taken = words[index]
                parsed.expansion |= taken.split
                index += 1
            for name in candidates:
                parsed.options.append((name, taken))
            continue
        if text.startswith("-") and text != "-":
            position = 1
            while position < len(text):
                letter = text[position]
                position += 1
                name, arity = grammar.short.get(letter, ("-" + letter, 0))
                if arity == 0:
                    parsed.options.append((name, None))
                    continue
                attached = text[position:]
                if attached:
                    parsed.options.append((name, Word(attached, False)))
                elif arity == 1 and index < len(words):
                    parsed.options.append((name, words[index]))
                    parsed.expansion |= words[index].split  # "-C $X": X may hold options
                    index += 1
                else:
                    parsed.options.append((name, None))
                break
            continue
        parsed.operands.append(word)
        if not grammar.permute:
            parsed.tail = list(words[index - 1 :])
            return parsed
    return parsed


def _words(text: str) -> list[str]:
    return text.split()


def _shorts(spec: str, names: Mapping[str, str] | None = None) -> dict[str, tuple[str, int]]:
    """``"ab:c::"`` (getopt's notation) as a short table; ``names`` maps letters to long names."""
    table: dict[str, tuple[str, int]] = {}
    for match in re.finditer(r"(.)(:{0,2})", spec):
        letter, colons = match.groups()
        table[letter] = ((names or {}).get(letter, "-" + letter), len(colons))
    return table


def _value(word: Word | None) -> str:
    return "" if word is None else word.text


class _Reader:
    """Accumulates one program's reading."""

    def __init__(self, program: str) -> None:
        self.program = program
        self.problems: list[str] = []
        self.writes = False
        self.lines: list[tuple[str, str]] = []
        self.commands: list[tuple[str, tuple[Word, ...]]] = []
        self.assignments: list[str] = []

    def refuse(self, text: str) -> None:
        self.problems.append(text)

    def runs(self, option: str, value: Word | None) -> None:
        """``value`` is a command line the program hands to a shell (none: a configured one)."""
        if value is None:
            self.refuse(
                f"uses {self.program} {option} without a command (it runs a configured one)"
            )
        elif value.expansion:
            self.refuse(f"gives {self.program} {option} an expansion, which runs a program")
        else:
            self.lines.append((f" inside {self.program} {option}", value.text))

    def command(self, where: str, words: Sequence[Word]) -> None:
        self.commands.append((f" inside {self.program}{where}", tuple(words)))

    def expansion(self, parsed: _Parsed) -> None:
        if parsed.expansion:
            self.refuse(
                f"gives {self.program} an expansion where an option may stand (it may become "
                "an option that runs a program); put '--' before it"
            )

    def done(self) -> Reading:
        return Reading(
            tuple(self.problems),
            self.writes,
            tuple(self.lines),
            tuple(self.commands),
            tuple(self.assignments),
        )


# --- tar --------------------------------------------------------------------------------

_TAR_LONG: dict[str, int] = {
    name.rstrip("=[]"): (2 if name.endswith("[]") else 1 if name.endswith("=") else 0)
    for name in _words(
        "absolute-names acls add-file= after-date= anchored append atime-preserve[] "
        "auto-compress backup[] block-number blocking-factor= bzip2 catenate check-device "
        "check-links checkpoint-action= checkpoint[] clamp-mtime compare compress concatenate "
        "confirmation create delay-directory-restore delete dereference diff directory= "
        "exclude-backups exclude-caches exclude-caches-all exclude-caches-under exclude-from= "
        "exclude-ignore-recursive= exclude-ignore= exclude-tag-all= exclude-tag-under= "
        "exclude-tag= exclude-vcs exclude-vcs-ignores exclude= extract file= files-from= "
        "force-local format= full-time get group-map= group= gunzip gzip hard-dereference help "
        "hole-detection= ignore-case ignore-command-error ignore-failed-read ignore-zeros "
        "incremental index-file= info-script= interactive keep-directory-symlink "
        "keep-newer-files keep-old-files label= level= list listed-incremental= lzip lzma lzop "
        "mode= mtime= multi-volume new-volume-script= newer-mtime= newer= no-acls no-anchored "
        "no-auto-compress no-check-device no-delay-directory-restore no-ignore-case "
        "no-ignore-command-error no-null no-overwrite-dir no-quote-chars= no-recursion "
        "no-same-owner no-same-permissions no-seek no-selinux no-unquote "
        "no-verbatim-files-from no-wildcards no-wildcards-match-slash no-xattrs null "
        "numeric-owner occurrence[] old-archive one-file-system one-top-level[] overwrite "
        "overwrite-dir owner-map= owner= pax-option= portability posix preserve-order "
        "preserve-permissions quote-chars= quoting-style= read-full-records record-size= "
        "recursion recursive-unlink remove-files restrict rmt-command= rsh-command= same-order "
        "same-owner same-permissions seek selinux show-defaults show-omitted-dirs "
        "show-snapshot-field-ranges show-stored-names show-transformed-names skip-old-files "
        "sort= sparse sparse-version= starting-file= strip-components= suffix= tape-length= "
        "test-label to-command= to-stdout totals[] touch transform= uncompress ungzip "
        "unlink-first unquote update usage use-compress-program= utc verbatim-files-from "
        "verbose verify version volno-file= warning= wildcards wildcards-match-slash xattrs "
        "xattrs-exclude= xattrs-include= xform= xz zstd"
    )
}
_TAR = Grammar(
    _shorts(
        "b:C:f:F:g:H:I:K:L:N:T:V:X:",
        {"f": "file", "F": "info-script", "I": "use-compress-program", "C": "directory"},
    ),
    _TAR_LONG,
)
_TAR_RUNS = (
    "to-command",
    "use-compress-program",
    "info-script",
    "new-volume-script",
    "rsh-command",
    "rmt-command",
)
# --checkpoint-action values that run nothing (tar compares them whole).
_TAR_CHECKPOINT = re.compile(r"(bell|dot|\.|echo|totals|(echo|ttyout|sleep|wait)=.*)", re.S)


def _tar(words: Sequence[Word]) -> Reading:
    reader = _Reader("tar")
    if words and not words[0].expansion and not words[0].text.startswith("-"):
        # Old bundled letters: "tar xfI ARCHIVE CMD": each letter an option, values in order.
        letters, values = words[0].text, list(words[1:])
        spelled: list[Word] = []
        for letter in letters:
            spelled.append(Word("-" + letter, False))
            if _TAR.short.get(letter, ("", 0))[1] == 1 and values:
                spelled.append(values.pop(0))
        words = [*spelled, *values]
    parsed = parse(words, _TAR)
    reader.expansion(parsed)
    names = {name for name, _ in parsed.options}
    for name, value in parsed.options:
        if name in _TAR_RUNS:
            reader.runs(f"--{name}", value)
        elif name == "checkpoint-action":
            text = _value(value)
            if text.startswith("exec="):
                reader.runs("--checkpoint-action=exec", Word(text[5:], False))
            elif value is None or value.expansion or not _TAR_CHECKPOINT.fullmatch(text):
                reader.refuse("gives tar a --checkpoint-action the guard does not know")
        elif name == "file" and "force-local" not in names:
            text = _value(value)
            if value is not None and (value.expansion or ":" in text.split("/", 1)[0]):
                reader.refuse(
                    "gives tar a remote archive (HOST:FILE), which runs a remote shell program"
                    "; add --force-local"
                )
    return reader.done()


# --- git --------------------------------------------------------------------------------

# Settings that change formatting or identity only (not safe.directory, which makes git trust
# another user's repository and so the programs its configuration names); any other key given to "git -c",
# "git clone -c" or "git config" may name a program (core.pager, core.sshCommand,
# alias.x=!cmd, core.fsmonitor, diff.external, filter.*.clean, credential.helper, ...).
_GIT_SAFE_KEYS = re.compile(
    r"(user\.(name|email)|author\.(name|email)|committer\.(name|email)|color\.[a-z.]+"
    r"|advice\.[a-z]+|core\.(quotepath|autocrlf|safecrlf|filemode|ignorecase|eol|abbrev)"
    r"|init\.defaultbranch|pull\.(rebase|ff)|fetch\.prune|push\.default|merge\.(ff|"
    r"conflictstyle)|diff\.(renames|noprefix|algorithm|mnemonicprefix|context)"
    r"|status\.(short|branch|showuntrackedfiles)|log\.(decorate|date|abbrevcommit|follow)"
    r"|branch\.sort|tag\.sort|column\.ui|i18n\.[a-z]+|gc\.auto|protocol\.version"
    r"|format\.pretty)"
)
_GIT_GLOBAL_VALUE = frozenset(
    {
        "-C",
        "--git-dir",
        "--work-tree",
        "--namespace",
        "--super-prefix",
        "--attr-source",
        "--list-cmds",
    }
)
_GIT_SUB: dict[str, tuple[Grammar, dict[str, str]]] = {
    # subcommand: (grammar, option -> "runs" (a command line) / "config" / "refuse")
    "clone": (
        Grammar(
            _shorts("c:u:o:b:j:", {"c": "config", "u": "upload-pack"}),
            {
                "config": 1,
                "upload-pack": 1,
                "template": 1,
                "origin": 1,
                "branch": 1,
                "depth": 1,
                "reference": 1,
                "separate-git-dir": 1,
                "jobs": 1,
            },
        ),
        {"config": "config", "upload-pack": "runs", "template": "refuse"},
    ),
    "init": (Grammar({}, {"template": 1}), {"template": "refuse"}),
    "fetch": (Grammar({}, {"upload-pack": 1}), {"upload-pack": "runs"}),
    "fetch-pack": (
        Grammar({}, {"upload-pack": 1, "exec": 1}),
        {"upload-pack": "runs", "exec": "runs"},
    ),
    "send-pack": (
        Grammar({}, {"receive-pack": 1, "exec": 1}),
        {"receive-pack": "runs", "exec": "runs"},
    ),
    "pull": (Grammar({}, {"upload-pack": 1}), {"upload-pack": "runs"}),
    "ls-remote": (
        Grammar({}, {"upload-pack": 1, "exec": 1}),
        {"upload-pack": "runs", "exec": "runs"},
    ),
    "push": (
        Grammar({}, {"receive-pack": 1, "exec": 1, "repo": 1}),
        {"receive-pack": "runs", "exec": "runs"},
    ),
    "archive": (
        Grammar(_shorts("o:"), {"exec": 1, "remote": 1, "output": 1, "format": 1, "prefix": 1}),
        {"exec": "runs"},
    ),
    "rebase": (
        Grammar(_shorts("x:s:X:C:S::", {"x": "exec"}), {"exec": 1, "strategy": 1, "onto": 1}),
        {"exec": "runs"},
    ),
    "grep": (
        Grammar(
            _shorts("O::e:f:A:B:C:m:", {"O": "open-files-in-pager"}),
            {"open-files-in-pager": 2},
        ),
        {"open-files-in-pager": "runs"},
    ),
    "difftool": (
        Grammar(_shorts("x:t:", {"x": "extcmd"}), {"extcmd": 1, "tool": 1}),
        {"extcmd": "runs"},
    ),
    "daemon": (Grammar(), {}),
    "filter-branch": (Grammar(), {}),
    "send-email": (Grammar(), {}),
    "instaweb": (Grammar(), {}),
    "web--browse": (Grammar(), {}),
}
_GIT_REFUSED_SUBCOMMANDS = frozenset(
    {
        "daemon",
        "filter-branch",
        "send-email",
        "instaweb",
        "web--browse",
        "credential",
        "p4",
        "svn",
        "cvsserver",
        "shell",
        "upload-pack",
        "receive-pack",
    }
)


def _git_key(reader: _Reader, text: str, where: str) -> None:
    key = text.split("=", 1)[0].lower()
    if not _GIT_SAFE_KEYS.fullmatch(key):
        reader.refuse(
            f"sets git's {text.split('=', 1)[0]!r} ({where}): only settings the guard knows run no "
            "program may be set (core.pager, core.sshCommand, alias.*, ... run one)"
        )


def _git(words: Sequence[Word]) -> Reading:
    reader = _Reader("git")
    index = 0
    while index < len(words):  # global options: exact names, no abbreviation
        word = words[index]
        if word.expansion:
            reader.refuse("gives git an expansion where an option or subcommand may stand")
            return reader.done()
        text = word.text
        if not text.startswith("-"):
            break
        index += 1
        if text == "-c":
            value = words[index] if index < len(words) else None
            index += 1
            if value is None or value.expansion:
                reader.refuse("gives git -c an expansion")
            else:
                _git_key(reader, value.text, "git -c")
        elif text.startswith("--config-env"):
            reader.refuse("uses git --config-env, which sets any setting from the environment")
        elif text.startswith("--exec-path="):
            reader.refuse("uses git --exec-path=, which chooses the programs git runs")
        elif text in ("--help", "-h") and index < len(words):
            reader.refuse("uses git --help with a command, which runs a manual viewer")
        elif text in _GIT_GLOBAL_VALUE:
            index += 1
    if index >= len(words):
        return reader.done()
    subcommand, args = words[index].text, list(words[index + 1 :])
    if subcommand in _GIT_REFUSED_SUBCOMMANDS:
        reader.refuse(f"uses git {subcommand}, which runs programs it is given")
    elif subcommand == "help" and any(not a.text.startswith("-") or a.expansion for a in args):
        reader.refuse("uses git help with a command, which runs a manual viewer or browser")
    elif args and args[0].text == "--help":
        reader.refuse("uses git ... --help, which runs a manual viewer")
    elif subcommand == "bisect" and args and args[0].text == "run":
        reader.command(" bisect run", args[1:])
    elif subcommand == "submodule" and any(a.text == "foreach" for a in args):
        rest = args[[a.text for a in args].index("foreach") + 1 :]
        rest = [a for a in rest if a.text not in ("--recursive", "-q", "--quiet")]
        if any(a.expansion for a in rest):
            reader.refuse("gives git submodule foreach an expansion")
        else:
            reader.lines.append((" inside git submodule foreach", " ".join(a.text for a in rest)))
    elif subcommand == "config":
        _git_config(reader, args)
    elif subcommand in _GIT_SUB:
        grammar, actions = _GIT_SUB[subcommand]
        parsed = parse(args, grammar)
        for name, value in parsed.options:
            action = actions.get(name)
            if action == "runs":
                reader.runs(f"{subcommand} --{name}", value)
            elif action == "config":
                if value is None or value.expansion:
                    reader.refuse(f"gives git {subcommand} --config an expansion")
                else:
                    _git_key(reader, value.text, f"git {subcommand} -c")
            elif action == "refuse":
                reader.refuse(f"uses git {subcommand} --{name}, which can run programs")
        if parsed.expansion and actions:
            reader.expansion(parsed)
    return reader.done()


def _git_config(reader: _Reader, args: Sequence[Word]) -> None:
    operands: list[Word] = []
    reading = False
    index = 0
    while index < len(args):
        word = args[index]
        index += 1
        text = word.text
        if word.expansion:
            reader.refuse("gives git config an expansion")
            return
        if text in ("-e", "--edit") or text.startswith("--rename-section"):
            reader.refuse(f"uses git config {text}, which runs an editor or moves settings")
        elif text in ("-f", "--file", "--blob", "--type", "--default", "--comment"):
            index += 1
        elif text.startswith("--get") or text in (
            "-l",
            "--list",
            "--show-origin",
            "--unset",
            "--unset-all",
            "--remove-section",
        ):
            reading = True
        elif not text.startswith("-") or text == "-":
            operands.append(word)
    if operands and operands[0].text in ("set", "get", "list", "unset", "edit"):
        verb, operands = operands[0].text, operands[1:]
        if verb == "edit":
            reader.refuse("uses git config edit, which runs an editor")
        reading = verb != "set"
    if not reading and len(operands) >= 2:
        _git_key(reader, operands[0].text, "git config")


# --- find -------------------------------------------------------------------------------

_FIND_VALUE = frozenset(
    _words(
        "-name -iname -path -ipath -wholename -iwholename -regex -iregex -lname -ilname -newer "
        "-anewer -cnewer -user -group -uid -gid -type -xtype -size -perm -mtime -atime -ctime "
        "-mmin -amin -cmin -used -inum -links -samefile -fstype -maxdepth -mindepth -printf "
        "-regextype -context -files0-from -D -O"
    )
)
_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
_FIND_WRITES = {"-fprint": 1, "-fprint0": 1, "-fls": 1, "-fprintf": 2}


def _find(words: Sequence[Word]) -> Reading:
    reader = _Reader("find")
    # What "{}" becomes: a found name, which starts with its start point. When the start
    # points are written literally and none starts with "-", no name can be an option.
    starts = []
    for word in words:
        if not word.expansion and word.text.startswith(("-", "(", "!", ",")):
            break
        starts.append(word)
    literal = all(not w.expansion for w in starts) and all(w.text != "-files0-from" for w in words)
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        text = word.text
        if word.split:
            reader.refuse(
                "gives find an expansion bash splits into several words (unquoted, a glob or "
                "braces): they may be -exec and what it runs"
            )
            continue
        if word.expansion:
            # "$X" may be -exec (or -fprint, -ok, ...): the next word would be what it runs.
            if index < len(words) and not words[index].text.startswith(("-", ")", "!", ",")):
                reader.refuse(
                    "gives find an expansion where an expression may stand, followed by more "
                    "words (it may become -exec and run them)"
                )
            continue
        if text in _FIND_VALUE:
            if index < len(words) and words[index].split:
                reader.refuse(f"gives find {text} an expansion bash splits into several words")
            index += 1
        elif text in _FIND_WRITES:
            reader.writes = True
            index += _FIND_WRITES[text]
        elif text in _FIND_EXEC:
            end = index
            while end < len(words) and not (
                not words[end].expansion
                and (
                    words[end].text == ";"
                    or (words[end].text == "+" and end > index and words[end - 1].text == "{}")
                )
            ):
                end += 1
            vector = [
                w
                if not ("{}" in w.text or w.expansion)
                else Word(w.text.replace("{}", "./{}"), not literal or w.expansion)
                for w in words[index:end]
            ]
            if vector:
                reader.command(f" {text}", vector)
            index = end + 1
    return reader.done()


# --- programs that run their operands ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Wrapper:
    grammar: Grammar
    operands_before: int = 0  # operands the wrapper takes before the command
    default: tuple[str, ...] | None = None  # what runs when no command is given
    refuse: Mapping[str, str] = field(default_factory=dict)  # option -> why
    lines: frozenset[str] = frozenset()  # options whose value is a command line
    assignments: bool = False  # NAME=VALUE operands before the command (env, sudo)


_WRAPPERS: dict[str, _Wrapper] = {
    "env": _Wrapper(
        Grammar(
            _shorts("i0u:C:S:v", {"S": "split-string", "u": "unset", "C": "chdir"}),
            {
                "ignore-environment": 0,
                "null": 0,
                "unset": 1,
                "chdir": 1,
                "split-string": 1,
                "block-signal": 2,
                "default-signal": 2,
                "ignore-signal": 2,
                "list-signal-handling": 0,
                "debug": 0,
                "help": 0,
                "version": 0,
            },
            permute=False,
        ),
        refuse={"split-string": "splits a string into a command the guard does not read"},
        assignments=True,
    ),
    "nice": _Wrapper(Grammar(_shorts("n:"), {"adjustment": 1}, permute=False)),
    "nohup": _Wrapper(Grammar({}, {"help": 0, "version": 0}, permute=False)),
    "timeout": _Wrapper(
        Grammar(
            _shorts("k:s:v"),
            {"kill-after": 1, "signal": 1, "preserve-status": 0, "foreground": 0, "verbose": 0},
            permute=False,
        ),
        operands_before=1,
    ),
    "stdbuf": _Wrapper(
        Grammar(_shorts("i:o:e:"), {"input": 1, "output": 1, "error": 1}, permute=False)
    ),
    "setsid": _Wrapper(Grammar(_shorts("cfw"), {"ctty": 0, "fork": 0, "wait": 0}, False)),
    "ionice": _Wrapper(
        Grammar(
            _shorts("c:n:p:P:tu:"),
            {"class": 1, "classdata": 1, "pid": 1, "pgid": 1, "uid": 1, "ignore": 0},
            permute=False,
        ),
        refuse={},
    ),
    "chroot": _Wrapper(
        Grammar({}, {"groups": 1, "userspec": 1, "skip-chdir": 0}, permute=False),
        operands_before=1,
        default=("$SHELL",),
    ),
    "xargs": _Wrapper(
        Grammar(
            _shorts("0a:d:E:e::I:i::L:l::n:opP:rs:tx", {"I": "replace", "i": "replace"}),
            {
                "null": 0,
                "arg-file": 1,
                "delimiter": 1,
                "eof": 2,
                "replace": 2,
                "max-lines": 1,
                "max-args": 1,
                "open-tty": 0,
                "max-procs": 1,
                "interactive": 0,
                "process-slot-var": 1,
                "no-run-if-empty": 0,
                "max-chars": 1,
                "show-limits": 0,
                "verbose": 0,
                "exit": 0,
            },
            permute=False,
        ),
        default=("echo",),
    ),
    "flock": _Wrapper(
        Grammar(
            _shorts("sxunow:E:c:F", {"c": "command"}),
            {
                "shared": 0,
                "exclusive": 0,
                "unlock": 0,
                "nonblock": 0,
                "timeout": 1,
                "conflict-exit-code": 1,
                "close": 0,
                "command": 1,
                "no-fork": 0,
                "verbose": 0,
            },
            permute=False,
        ),
        operands_before=1,
        lines=frozenset({"command"}),
    ),
    "sudo": _Wrapper(
        Grammar(
            _shorts(
                "Aa:BbC:c:D:Eeg:Hh::iKklNnPp:R:r:SsT:t:U:u:Vv",
                {"e": "edit", "i": "login", "s": "shell", "D": "chdir", "R": "chroot"},
            ),
            {
                "askpass": 0,
                "background": 0,
                "bell": 0,
                "close-from": 1,
                "chdir": 1,
                "preserve-env": 2,
                "edit": 0,
                "group": 1,
                "set-home": 0,
                "help": 0,
                "host": 1,
                "login": 0,
                "remove-timestamp": 0,
                "reset-timestamp": 0,
                "list": 0,
                "non-interactive": 0,
                "preserve-groups": 0,
                "prompt": 1,
                "chroot": 1,
                "role": 1,
                "stdin": 0,
                "shell": 0,
                "type": 1,
                "command-timeout": 1,
                "other-user": 1,
                "user": 1,
                "version": 0,
                "validate": 0,
            },
            permute=False,
        ),
        refuse={"edit": "runs an editor", "login": "runs a login shell", "shell": "runs a shell"},
        assignments=True,
    ),
    "doas": _Wrapper(
        Grammar(_shorts("a:C:Lnsu:", {"s": "shell", "C": "config"}), {}, permute=False),
        refuse={"shell": "runs a shell", "config": "reads a configuration"},
    ),
}


def _wrapper(program: str, spec: _Wrapper) -> Callable[[Sequence[Word]], Reading]:
    def read(words: Sequence[Word]) -> Reading:
        reader = _Reader(program)
        parsed = parse(words, spec.grammar)
        replace: str | None = None
        for name, value in parsed.options:
            if name in spec.refuse:
                reader.refuse(f"uses {program} --{name.lstrip('-')}, which {spec.refuse[name]}")
            elif name in spec.lines:
                reader.runs(f"--{name}", value)
            elif program == "xargs" and name == "replace":
                replace = "{}" if value is None else value.text
        rest = list(parsed.tail)
        if any(word.expansion for word in rest[: spec.operands_before]):
            reader.expansion(parsed)  # "timeout $X ..." may hide options and the command
        rest = rest[spec.operands_before :]
        if program == "flock" and rest and rest[0].text in ("-c", "--command"):
            reader.runs("-c", rest[1] if len(rest) > 1 else None)
            return reader.done()
        if spec.assignments:
            while (
                rest
                and not rest[0].expansion
                and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", rest[0].text)
            ):
                reader.assignments.append(rest.pop(0).text)
            if program == "env" and rest and rest[0].text == "-":
                rest.pop(0)
        if program == "xargs":
            if not rest:
                rest = [Word(part, False) for part in spec.default or ()]
            if replace is not None:
                rest = [Word(w.text, True) if replace in w.text else w for w in rest]
            else:
                rest = [*rest, Word("", True)]  # the items read from standard input
        if not rest:
            if spec.default is not None and program != "xargs":
                reader.refuse(f"runs {program} without a command, which starts {spec.default[0]}")
            return reader.done()
        reader.command("", rest)
        return reader.done()

    return read


# --- awk --------------------------------------------------------------------------------

_AWK = Grammar(
    _shorts("F:v:f:W:e:i:l:E:SbcCd::D::gGhLMnNo::O::p::PrstV",
            {"f": "file", "e": "source", "i": "include", "l": "load", "E": "exec",
             "S": "sandbox", "W": "-W"}),
    {"field-separator": 1, "assign": 1, "file": 1, "source": 1, "include": 1, "load": 1,
     "exec": 1, "sandbox": 0, "characters-as-bytes": 0, "traditional": 0, "copyright": 0,
     "dump-variables": 2, "debug": 2, "gen-pot": 0, "help": 0, "lint": 2, "bignum": 0,
     "use-lc-numeric": 0, "non-decimal-data": 0, "pretty-print": 2, "optimize": 0,
     "profile": 2, "posix": 0, "re-interval": 0, "no-optimize": 0, "trace": 0, "version": 0},
    permute=False,
)  # fmt: skip
# A "/" starts a regular expression where an operand is expected: after these characters.
_AWK_OPERAND_NEXT = frozenset("(,~!{;&|=\n}?:*%^<>")
_AWK_RUNS = re.compile(r"\bsystem\b|(?<!\|)\|(?!\|)|@")
_AWK_WRITES = re.compile(r"\bprintf?\b[^;{}\n]*>")


_AWK_SAFE_W = re.compile(r"(version|usage|help|interactive|posix|traditional|lint|dump)")


def _awk_reader(program: str) -> Callable[[Sequence[Word]], Reading]:
    return lambda words: _awk(program, words)


def _awk(program_name: str, words: Sequence[Word]) -> Reading:
    reader = _Reader(program_name)
    parsed = parse(words, _AWK)
    names = {name for name, _ in parsed.options}
    if "sandbox" in names and program_name == "gawk":
        return reader.done()  # gawk --sandbox refuses system(), pipes and file redirects
    programs: list[Word] = []
    for name, value in parsed.options:
        if name in ("file", "include", "load", "exec"):
            reader.refuse(f"gives awk a program file (--{name}), which the guard cannot read")
        elif name == "-W" and (
            value is None or value.expansion or not _AWK_SAFE_W.fullmatch(value.text)
        ):
            reader.refuse("gives awk -W an option the guard does not know (exec, source, ...)")
        elif name == "source" and value is not None:
            programs.append(value)
    if not programs and parsed.operands:
        programs.append(parsed.operands[0])
    for program in programs:
        if program.expansion:
            reader.refuse("gives awk its program through an expansion")
            continue
        text = _awk_code(program.text)
        if _AWK_RUNS.search(text):
            reader.refuse(
                "gives awk a program that may run a command (system(), a '|' pipe or an '@' "
                "indirect call); use gawk --sandbox"
            )
        if _AWK_WRITES.search(text):
            reader.writes = True
    return reader.done()


def _awk_code(program: str) -> str:
    """``program`` with its strings, regular expressions and comments emptied, scanned left
    to right as awk's lexer does (a '|' inside "..." or /.../ is no pipe)."""
    out: list[str] = []
    previous = "\n"
    i, n = 0, len(program)
    while i < n:
        c = program[i]
        if c == '"' or (c == "/" and previous in _AWK_OPERAND_NEXT):
            j = i + 1
            while j < n and program[j] != c:
                if program[j] == "\\":
                    j += 1
                elif c == "/" and program[j] == "[":  # a bracket expression may hold '/'
                    j += 1
                    while j < n and program[j] != "]":
                        j += 2 if program[j] == "\\" else 1
                j += 1
            out.append(c + c)
            previous, i = c, j + 1
            continue
        if c == "#":
            while i < n and program[i] != "\n":
                i += 1
            continue
        out.append(c)
        if not c.isspace() or c == "\n":
            previous = c
        i += 1
    return "".join(out)


# --- zip, ssh, scp, sftp, man, less, more, curl, wget -----------------------------------


def _zip(words: Sequence[Word]) -> Reading:
    reader = _Reader("zip")
    for index, word in enumerate(words):
        text = word.text
        if word.expansion:
            reader.refuse("gives zip an expansion where an option may stand (it may be -TT)")
        elif text.startswith("--") and len(text) > 2:
            given = text[2:].split("=", 1)[0]
            if "unzip-command".startswith(given):
                reader.runs("--unzip-command", _attached_or_next(text, words, index))
        elif text == "-TT":
            reader.runs("-TT", words[index + 1] if index + 1 < len(words) else None)
        elif text.startswith("-") and "TT" in text:
            reader.refuse(f"gives zip {text[:20]!r}, which may hold -TT (runs a command)")
    return reader.done()


def _attached_or_next(text: str, words: Sequence[Word], index: int) -> Word | None:
    if "=" in text:
        return Word(text.split("=", 1)[1], False)
    return words[index + 1] if index + 1 < len(words) else None


# ssh -o settings that run nothing: anything else (ProxyCommand, LocalCommand,
# KnownHostsCommand, Match exec, Include, PKCS11Provider, ...) is refused.
_SSH_SAFE = frozenset(
    _words(
        "port user batchmode connecttimeout connectionattempts stricthostkeychecking "
        "userknownhostsfile globalknownhostsfile loglevel serveraliveinterval serveralivecountmax "
        "compression identitiesonly identityfile addressfamily passwordauthentication "
        "pubkeyauthentication preferredauthentications requesttty tcpkeepalive checkhostip "
        "hashknownhosts updatehostkeys visualhostkey hostkeyalias hostname "
        "kbdinteractiveauthentication numberofpasswordprompts ciphers macs kexalgorithms "
        "hostkeyalgorithms forwardagent forwardx11 exitonforwardfailure sendenv setenv "
        "controlmaster controlpath controlpersist"
    )
)
_SSH_SHORT = _shorts(
    "B:b:c:D:E:e:F:I:i:J:L:l:m:O:o:p:Q:R:S:W:w:",
    {"o": "option", "F": "config", "I": "pkcs11", "E": "log"},
)
_SCP_SHORT = _shorts(
    "c:D:F:i:J:l:o:P:S:X:b:s:B:R:",
    {"o": "option", "F": "config", "S": "program", "D": "server", "b": "batch"},
)


def _ssh_options(reader: _Reader, parsed: _Parsed) -> None:
    for name, value in parsed.options:
        if name == "option":
            if value is None or value.expansion:
                reader.refuse(f"gives {reader.program} -o an expansion")
                continue
            key = re.split(r"[\s=]", value.text.strip(), maxsplit=1)[0].lower()
            if key not in _SSH_SAFE:
                reader.refuse(
                    f"gives {reader.program} -o {key!r}: only settings the guard knows run no "
                    "program are allowed (ProxyCommand, LocalCommand, Match exec, ... run one)"
                )
        elif name in ("config", "pkcs11", "server", "batch"):
            reader.refuse(f"gives {reader.program} -{name[0]} (a file or program it loads)")
        elif name == "program":
            reader.runs("-S", value)
        elif name == "log":
            reader.writes = True
        elif name == "-J" and (
            value is None or value.expansion or not re.fullmatch(r"[\w.@:,\[\]-]+", value.text)
            or value.text.startswith("-")
        ):  # fmt: skip
            reader.refuse(f"gives {reader.program} -J a jump host the guard cannot read")


def _ssh(words: Sequence[Word]) -> Reading:
    # OpenSSH reads options up to the destination, then again up to the remote command.
    reader = _Reader("ssh")
    grammar = Grammar(_SSH_SHORT, {}, permute=False)
    first = parse(words, grammar)
    _ssh_options(reader, first)
    reader.expansion(first)
    if len(first.tail) > 1:
        second = parse(first.tail[1:], grammar)
        _ssh_options(reader, second)
    return reader.done()


def _scp(program: str) -> Callable[[Sequence[Word]], Reading]:
    def read(words: Sequence[Word]) -> Reading:
        reader = _Reader(program)
        parsed = parse(words, Grammar(_SCP_SHORT, {}, permute=True))
        _ssh_options(reader, parsed)
        reader.expansion(parsed)
        return reader.done()

    return read


_RSYNC = Grammar(
    _shorts("e:B:f:T:M:@:", {"e": "rsh", "M": "remote-option"}),
    {"rsh": 1, "rsync-path": 1, "remote-option": 1, "log-file": 1, "write-batch": 1,
     "only-write-batch": 1, "read-batch": 1, "daemon": 0, "config": 1, "early-input": 1,
     "block-size": 1, "filter": 1, "temp-dir": 1, "modify-window": 1, "exclude": 1,
     "include": 1, "exclude-from": 1, "include-from": 1, "files-from": 1, "compare-dest": 1,
     "copy-dest": 1, "link-dest": 1, "partial-dir": 1, "backup-dir": 1, "suffix": 1,
     "chmod": 1, "chown": 1, "usermap": 1, "groupmap": 1, "password-file": 1, "port": 1,
     "address": 1, "sockopts": 1, "bwlimit": 1, "timeout": 1, "contimeout": 1,
     "max-size": 1, "min-size": 1, "max-delete": 1, "log-file-format": 1, "out-format": 1,
     "info": 1, "debug": 1, "protocol": 1, "iconv": 1, "checksum-choice": 1,
     "compress-choice": 1, "compress-level": 1, "skip-compress": 1, "stop-after": 1,
     "stop-at": 1, "copy-as": 1, "connect-program": 1},
)  # fmt: skip


def _rsync(words: Sequence[Word]) -> Reading:
    reader = _Reader("rsync")
    parsed = parse(words, _RSYNC)
    reader.expansion(parsed)
    shell = False
    for name, value in parsed.options:
        if name == "rsh":
            shell = True
            reader.runs("--rsh", value)
        elif name in (
            "rsync-path",
            "remote-option",
            "daemon",
            "config",
            "early-input",
            "connect-program",
            "read-batch",
        ):
            reader.refuse(f"uses rsync --{name}, which runs or loads a program")
        elif name in ("log-file", "write-batch", "only-write-batch"):
            reader.writes = True
    remote = any(
        ":" in word.text.split("/", 1)[0] or word.text.startswith("rsync://")
        for word in parsed.operands
    )
    if remote and not shell:
        # "HOST:PATH" runs the default remote shell; "HOST::MODULE" may run RSYNC_CONNECT_PROG.
        reader.command(" (its default remote shell)", [Word("ssh", False)])
    return reader.done()


def _man(words: Sequence[Word]) -> Reading:
    reader = _Reader("man")
    parsed = parse(
        words,
        Grammar(
            _shorts("C:P:H::M:S:s:m:p:L:r:E:R:T::", {"P": "pager", "H": "html", "C": "config-file"}),
            {"pager": 1, "html": 2, "config-file": 1, "browser": 2, "manpath": 1, "sections": 1,
             "preprocessor": 1, "locale": 1, "prompt": 1, "encoding": 1, "recode": 1,
             "troff-device": 2},
        ),
    )  # fmt: skip
    reader.expansion(parsed)
    for name, value in parsed.options:
        if name == "pager":
            reader.runs("--pager", value)
        elif name in ("html", "config-file", "browser"):
            reader.refuse(f"uses man --{name}, which runs or loads a program")
    return reader.done()


_LESS_SAFE_COMMAND = re.compile(r"\+?(\d*[GgFpe%]?|/[^\n]*|\?[^\n]*)")


def _pager(program: str) -> Callable[[Sequence[Word]], Reading]:
    def read(words: Sequence[Word]) -> Reading:
        reader = _Reader(program)
        for word in words:
            if word.expansion:
                reader.refuse(f"gives {program} an expansion where an option may stand")
            elif word.text.startswith("+") and not _LESS_SAFE_COMMAND.fullmatch(word.text[1:]):
                reader.refuse(
                    f"gives {program} a start-up command ({word.text[:30]!r}); commands can run "
                    "programs ('!', '|', 'v')"
                )
            elif word.text.startswith("--lesskey") or word.text.startswith("-k"):
                reader.refuse(f"gives {program} a key file, which the guard cannot read")
        return reader.done()

    return read


_CURL_WRITES = frozenset(
    {
        "output",
        "remote-name",
        "remote-name-all",
        "dump-header",
        "cookie-jar",
        "trace",
        "trace-ascii",
        "libcurl",
        "etag-save",
        "stderr",
        "hsts",
        "alt-svc",
        "config",
        "output-dir",
        "create-dirs",
    }
)
_CURL = Grammar(
    _shorts("o:OD:c:K:", {"o": "output", "O": "remote-name", "D": "dump-header",
                          "c": "cookie-jar", "K": "config"}),
    {name: (0 if name in ("remote-name", "remote-name-all", "create-dirs") else 1)
     for name in _CURL_WRITES},
)  # fmt: skip


def _curl(words: Sequence[Word]) -> Reading:
    reader = _Reader("curl")
    parsed = parse(words, _CURL)
    reader.expansion(parsed)
    for name, value in parsed.options:
        if name in _CURL_WRITES and not (name == "output" and _value(value) == "-"):
            reader.writes = True
    return reader.done()


def _wget(words: Sequence[Word]) -> Reading:
    reader = _Reader("wget")
    parsed = parse(
        words,
        Grammar(
            _shorts("O:o:a:e:P:i:", {"O": "output-document", "e": "execute"}),
            {"output-document": 1, "execute": 1, "use-askpass": 1, "config": 1, "spider": 0,
             "output-file": 1, "append-output": 1, "directory-prefix": 1, "input-file": 1},
        ),
    )  # fmt: skip
    reader.expansion(parsed)
    to_stdout = False
    for name, value in parsed.options:
        if name in ("execute", "use-askpass", "config"):
            reader.refuse(f"uses wget --{name}, which can run a program or set any option")
        elif (name == "output-document" and _value(value) == "-") or name == "spider":
            to_stdout = True
    if not to_stdout or any(n in ("output-file", "append-output") for n, _ in parsed.options):
        reader.writes = True  # wget saves what it downloads to a file by default
    return reader.done()


OPTION_READERS: dict[str, Callable[[Sequence[Word]], Reading]] = {
    "tar": _tar,
    "gtar": _tar,
    "git": _git,
    "find": _find,
    "awk": _awk_reader("awk"),
    "gawk": _awk_reader("gawk"),
    "mawk": _awk_reader("mawk"),
    "nawk": _awk_reader("nawk"),
    "rsync": _rsync,
    "zip": _zip,
    "ssh": _ssh,
    "scp": _scp("scp"),
    "sftp": _scp("sftp"),
    "man": _man,
    "less": _pager("less"),
    "more": _pager("more"),
    "curl": _curl,
    "wget": _wget,
    **{name: _wrapper(name, spec) for name, spec in _WRAPPERS.items()},
}
"""Programs whose options are read here, by name (the basename of the program word)."""
