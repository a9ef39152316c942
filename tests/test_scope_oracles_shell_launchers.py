"""Shell: listed programs whose own options run other programs.

With ``tar`` listed, ``tar -xf a.tar --to-command=rm`` runs ``rm``; so do ``tar -I``,
``--checkpoint-action=exec=``, ``git -c core.pager=``/``--upload-pack``/``-c alias.x=!``,
``find -exec`` with a program whose own arguments run something, ``xargs``, ``env``,
``nice``, ``timeout``, ``awk 'BEGIN{system(...)}'``, ``zip -TT``, ``ssh -o ProxyCommand=``.

The grammar writes each option in the spellings the programs' parsers accept: ``--opt=v``,
``--opt v``, GNU abbreviations (``--to-c=``, ``--use-comp``), stuck and clustered short
options (``-I'cmd'``, ``-xzfI``, ``-vI cmd``), tar's old bundled letters (``tar xfI a cmd``),
options after operands (GNU permutation), ``--`` terminators, quoting tricks, environment
assignments (``TAR_OPTIONS=``) and wrappers nested in wrappers. The oracle is real bash
running the real programs under ``strace -f -e trace=execve`` in a scratch directory (a git
repository with a commit, a tar and a zip archive); the payloads are recording stubs on
``PATH``: a line the scope allows must exec no program outside the listed ones (and the
helpers they run themselves: compressors, git's own programs).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from random import Random

import pytest
import scope_oracles as so
from hypothesis import HealthCheck, given, settings

from guardrails_plugin.scopes import Shell

LISTED = ["tar", "git", "find", "xargs", "env", "nice", "nohup", "timeout", "stdbuf",
          "setsid", "zip", "awk", "mawk", "ssh", "ls", "cat", "echo", "sed", "gzip"]  # fmt: skip
SCOPE = Shell(LISTED)
PIPES = Shell(LISTED, allow_pipes=True, allow_chaining=True)
# Programs the listed ones run by themselves, whatever the line says.
# tar and zip start them through "/bin/sh -c": the shell is transparent, what it runs counts.
HELPERS = frozenset({"gzip", "bzip2", "xz", "unzip", "sh", "dash"})
MARKERS = ["evil", "rm", "id", "touch"]

_PAYLOADS = ["evil", "rm x", "sh -c evil", "/usr/bin/id", "touch p", "evil;ls", "ls;evil",
             "ls|evil", "$(evil)", "ls", "cat"]  # fmt: skip


def _quote(r: Random, text: str) -> str:
    style = r.randrange(5)
    if style == 0:
        return "'" + text.replace("'", "'\\''") + "'"
    if style == 1:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'
    if style == 2 and re.fullmatch(r"[a-z/]+", text):
        return text
    if style == 3 and re.fullmatch(r"[a-z]+", text) and len(text) > 1:
        return text[0] + "'" + text[1:] + "'"
    return "'" + text.replace("'", "'\\''") + "'"


def _spell(r: Random, long: str | None, short: str | None, value: str, flags: str = "v") -> str:
    """One option with a value, in a spelling the program's parser accepts (or nearly)."""
    forms = []
    if long is not None:
        cut = r.randint(max(3, len(long) // 2), len(long))
        name = long if r.random() < 0.5 else long[:cut]
        forms += [f"--{name}={value}", f"--{name} {value}"]
    if short is not None:
        forms += [f"-{short} {value}", f"-{short}{value}", f"-{r.choice(flags)}{short} {value}"]
    return r.choice(forms)


def _tar(r: Random) -> str:
    cmd = _quote(r, r.choice(_PAYLOADS))
    opt = r.choice(
        [_spell(r, "to-command", None, cmd), _spell(r, "use-compress-program", "I", cmd, "xvz"),
         _spell(r, "checkpoint-action", None, "exec=" + cmd)
         + r.choice(["", " --checkpoint=1", " --check=1"]),
         _spell(r, "checkpoint-action", None, r.choice(["dot", "echo", "bell", "ttyout=x"]))
         + " --checkpoint=1",
         _spell(r, "info-script", "F", cmd), _spell(r, "new-volume-script", None, cmd),
         _spell(r, "rsh-command", None, cmd) + " -f 127.0.0.1:x",
         _spell(r, "rmt-command", None, cmd) + " -f 127.0.0.1:x",
         "-f 127.0.0.1:a.tar", "--force-local -f 127.0.0.1:a.tar", "-v", "-z", "--",
         "--checkpoint=1", "-C .", "--exclude=x", "--to-stdout", "-O"]
    )  # fmt: skip
    mode = r.choice(["-xf a.tar", "-tf a.tar", "-cf out.tar a.txt", "-xvf a.tar"])
    shape = r.randrange(8)
    if shape == 6:  # words bash splits: globs over crafted file names, braces, unquoted $X
        return r.choice(
            ["tar -cf o.tar *", "tar -cf o.tar -- *", "tar -cf o.tar ./*", "tar -cf o.tar -*",
             "tar -xf a.tar {--to-command=evil,a.txt}", "tar -xf a.tar '{--to-command=evil,x}'",
             "X='--to-command=evil'; tar -xf a.tar $X", "X='. --to-command=evil'; tar -xf a.tar -C $X",
             "X='. --to-command=evil'; tar -xf a.tar -C \"$X\"", "tar -cf o.tar [-]*",
             "tar -cf o.tar --checkpoint*", "tar -cf o.tar \"*\""]
        )  # fmt: skip
    if shape == 0:  # old bundled letters: "tar xfI a.tar CMD"
        return r.choice([f"tar xIf {cmd} a.tar", f"tar xfI a.tar {cmd}", "tar xf a.tar",
                         f"tar cfI out.tar {cmd} a.txt", f"tar tvf a.tar {opt}"])  # fmt: skip
    if shape == 1:  # permutation: the option after operands
        return f"tar {mode} {opt}"
    if shape == 2:
        return f"TAR_OPTIONS={_quote(r, '--to-command=evil')} tar {mode}"
    if shape == 3:
        return f"tar {mode} -- {opt}"
    return f"tar {opt} {mode}"


_GIT_CONFIG = ["core.pager", "core.sshCommand", "alias.x", "core.fsmonitor", "core.editor",
               "diff.external", "core.hooksPath", "user.name", "color.ui", "CORE.PAGER",
               "core.askPass", "credential.helper", "include.path", "protocol.ext.allow",
               "core.gitProxy", "filter.f.clean"]  # fmt: skip


def _git(r: Random) -> str:
    cmd = _quote(r, r.choice(_PAYLOADS))
    key = r.choice(_GIT_CONFIG)
    value = "!" + r.choice(_PAYLOADS) if key == "alias.x" else r.choice(_PAYLOADS)
    config = f"-c {_quote(r, f'{key}={value}')}"
    shape = r.randrange(10)
    if shape == 0:
        return f"git {config} {r.choice(['x', 'log -1', 'status', '-p log -1', 'diff HEAD'])}"
    if shape == 1:
        return f"git ls-remote {_spell(r, 'upload-pack', None, cmd)} ."
    if shape == 2:
        return (
            f"git {r.choice(['fetch', 'pull', 'clone'])} {_spell(r, 'upload-pack', 'u', cmd)} . x"
        )
    if shape == 3:
        return f"git rebase {_spell(r, 'exec', 'x', cmd, 'iq')} HEAD"
    if shape == 4:
        return f"git config {r.choice(['', '--local ', '--add '])}{key} {_quote(r, value)}"
    if shape == 5:
        return f"git archive {_spell(r, 'exec', None, cmd)} --remote=. HEAD"
    if shape == 6:
        return f"git grep {_spell(r, 'open-files-in-pager', 'O', cmd)} hi"
    if shape == 7:
        return f"git --config-env={key}=HOME status"
    if shape == 8:
        return f"git clone -c {_quote(r, f'{key}={value}')} . clone"
    return f"git {r.choice(['log -1', 'status', 'diff', 'show HEAD', '--no-pager log -1'])}"


def _find(r: Random) -> str:
    inner = r.choice([_tar(r), f"sed -n {_quote(r, '1e evil')}", "evil {}", "ls {}",
                      f"sh -c {_quote(r, 'evil')}", "cat", _git(r), "env evil"])  # fmt: skip
    term = r.choice(["\\;", "';'", "+", "{} +"])
    primary = r.choice(["-exec", "-execdir", "-ok", "-okdir"])
    shape = r.randrange(6)
    if shape == 5:
        return r.choice(
            ["X='-exec evil ;'; find . $X", "X='a -exec evil ;'; find . -name $X",
             "X='-exec evil ;'; find . -name \"$X\"", "find . -name *.txt", "find . -name '*.txt'",
             "X=-exec; find \"$X\" -name a.txt", "find {.,-exec} evil \\;"]
        )  # fmt: skip
    if shape == 0:
        return f"find . -name a.txt {primary} {inner} {term}"
    if shape == 1:
        return f'X=-exec; find . "$X" {inner} {term}'
    if shape == 2:
        return f"find . $X {inner} {term}"
    if shape == 3:
        return f"find . -fprint out {r.choice(['', '-name a.txt'])}"
    return f"find . -name a.txt -print {primary} {inner} {term}"


def _wrapper(r: Random, depth: int = 0) -> str:
    inner = (
        _wrapper(r, depth + 1)
        if depth < 2 and r.random() < 0.3
        else r.choice([*MARKERS, "ls", "cat a.txt", _tar(r), "sh -c evil", "/usr/bin/id"])
    )
    wrapper = r.choice(
        ["env", "env -i", "env -u X", "env X=1", "env PATH=/x", "env -S evil", "env --", "nice",
         "nice -n 5", "nice -5", "nice --adjustment=3", "nohup", "timeout 5", "timeout -s KILL 5",
         "timeout --signal=KILL 5", "timeout -k 1 5", "stdbuf -o0", "stdbuf -oL -e0",
         "stdbuf --output=L", "setsid", "setsid -w", "xargs", "xargs -0", "xargs -n 1",
         "xargs -I{}", "xargs -i", "xargs -a a.txt", "xargs -r", "env -C .", "nice -n"]
    )  # fmt: skip
    line = f"{wrapper} {inner}"
    if wrapper.startswith("xargs"):
        line = f"echo a.txt | {line}"
    return line


def _awk(r: Random) -> str:
    program = r.choice(
        ['BEGIN{system("evil")}', 'BEGIN{print "x" | "evil"}', 'BEGIN{"evil" | getline}',
         "{print $1}", "/a|b/{print}", 'BEGIN{print "a|b"}', "$1 > 0 {print}",
         'BEGIN{x="sys" "tem"; print x}', "BEGIN { printf \"%s\\n\", 1 }", "NR==1",
         'BEGIN{print > "out"}', 'BEGIN{while (("evil" | getline l) > 0) print l}']
    )  # fmt: skip
    flags = r.choice(["", "-F: ", "-v x=1 ", "-f /dev/null ", "-W exec /dev/null ", "-- "])
    return f"{r.choice(['awk', 'mawk'])} {flags}{_quote(r, program)} a.txt"


def _others(r: Random) -> str:
    cmd = _quote(r, r.choice(_PAYLOADS))
    return r.choice(
        [f"zip {r.choice(['-T ', ''])}-TT {cmd} out.zip a.txt",
         f"zip -T --unzip-command {cmd} out.zip a.txt",
         f"zip -T --unzip-c={cmd} out.zip a.txt", "zip out.zip a.txt",
         f"ssh -o ProxyCommand={cmd} 127.0.0.1 true", f"ssh -oProxyCommand={cmd} 127.0.0.1",
         f"ssh {_quote(r, 'proxycommand ' + r.choice(_PAYLOADS))} -o 127.0.0.1",
         f"ssh -o {_quote(r, 'ProxyCommand ' + r.choice(_PAYLOADS))} 127.0.0.1",
         f"ssh 127.0.0.1 -o ProxyCommand={cmd}", "ssh -o BatchMode=yes -o ConnectTimeout=1 127.0.0.1",
         f"ssh -o LocalCommand={cmd} -o PermitLocalCommand=yes 127.0.0.1",
         f"ssh -o KnownHostsCommand={cmd} 127.0.0.1", "ssh -F /dev/null 127.0.0.1"]
    )  # fmt: skip


def launcher_line(r: Random) -> str:
    """A command line giving a listed program options that may run another program."""
    return r.choice([_tar, _tar, _git, _git, _find, _wrapper, _wrapper, _awk, _others])(r)


class ExecOracle:
    """Runs a line under real bash and strace in a fresh scratch repository; returns the
    programs exec'd that are neither listed nor helpers of listed ones."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="scope-exec-"))
        self.shims = self.base / "shims"
        self.template = self.base / "template"
        self.work = self.base / "work"
        self.shims.mkdir()
        self.template.mkdir()
        for name in MARKERS:
            shim = self.shims / name
            shim.write_text(f"#!/bin/sh\necho {name} >> {self.base}/ran.log\n")
            shim.chmod(0o755)
        env = self._env(self.template)
        t = self.template
        (t / "a.txt").write_text("hi\nthere\n")
        # A file name that is an option: "tar -cf o.tar *" reads it as one.
        (t / "--checkpoint=1").write_text("")
        (t / "--checkpoint-action=exec=evil").write_text("")
        for step in (["git", "init", "-q"], ["git", "add", "a.txt"],
                     ["git", "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "x"],
                     ["tar", "cf", "a.tar", "a.txt"], ["zip", "-q", "a.zip", "a.txt"]):  # fmt: skip
            subprocess.run(step, cwd=t, env=env, check=True, capture_output=True)

    def _env(self, home: Path) -> dict[str, str]:
        return {"PATH": f"{self.shims}:/usr/bin:/bin", "HOME": str(home), "LC_ALL": "C",
                "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}  # fmt: skip

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def run(self, line: str, allowed: set[str]) -> str | None:
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.copytree(self.template, self.work, symlinks=True)
        script = self.base / "line.sh"
        script.write_text(line + "\n")
        trace = self.base / "trace.log"
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                ["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o",
                 str(trace), "/bin/bash", "--norc", "--noprofile", str(script)],
                cwd=self.work, env=self._env(self.work), stdin=subprocess.DEVNULL,
                capture_output=True, timeout=15, check=False,
            )  # fmt: skip
        ran = []
        for entry in trace.read_text().splitlines()[1:]:  # the first is the oracle's bash
            match = re.search(r'execve\("([^"]*)".* = 0$', entry)
            if match:
                ran.append(match.group(1))
        outside = [
            path
            for path in ran
            if os.path.basename(path) not in allowed | HELPERS
            and not path.startswith("/usr/lib/git-core/")
        ]
        return f"ran {outside}" if outside else None


@pytest.fixture(scope="module")
def oracle() -> Iterator[ExecOracle]:
    for program in ("strace", "tar", "git", "zip", "mawk", "ssh"):
        if shutil.which(program) is None:
            pytest.skip(f"{program} is not installed")
    exec_oracle = ExecOracle()
    yield exec_oracle
    exec_oracle.close()


@pytest.mark.parametrize(
    "line",
    ["tar -xf a.tar --to-command=evil", "tar -cf o.tar -I evil a.txt", "tar cfI o.tar evil a.txt",
     "tar -c --checkpoint=1 --checkpoint-action=exec=evil -f o.tar a.txt",
     "git -c alias.x='!evil' x", "tar -cf o.tar *", "tar -xf a.tar {--to-command=evil,a.txt}", "git ls-remote --upload-pack=evil .", "env evil", "nice evil",
     "find . -name a.txt -exec sed -n '1e evil' {} +", "awk 'BEGIN{system(\"evil\")}'",
     "zip -T -TT evil o.zip a.txt", "ssh -o ProxyCommand=evil 127.0.0.1 true"],
)  # fmt: skip
def test_the_oracle_sees_the_classics_run_a_program(oracle: ExecOracle, line: str) -> None:
    assert oracle.run(line, set(LISTED)) is not None, line


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(so.strategy(lambda r: r))
def test_allowed_launcher_lines_run_only_listed_programs(oracle: ExecOracle, r: Random) -> None:
    line = launcher_line(r)
    scope = PIPES if ("|" in line or ";" in line) else SCOPE
    if scope.contains(line):
        assert oracle.run(line, set(LISTED)) is None, line


@pytest.mark.parametrize(
    "line",
    ["tar -xf a.tar", "tar -czf o.tgz a.txt", "tar xvf a.tar", "tar -tf a.tar --to-stdout",
     "tar -c --checkpoint=1 --checkpoint-action=dot -f o.tar a.txt", "tar -C . -xf a.tar",
     "tar --force-local -cf x:y.tar a.txt", "tar -I gzip -cf o.tgz a.txt",
     "tar --use-compress-program='gzip -9' -cf o.tgz a.txt",
     "git log -1", "git status", "git -c color.ui=never log -1", "git -c user.name=x log -1",
     "git diff HEAD", "git --no-pager show HEAD", "git config user.name", "git config --get user.email",
     "git config user.name bob", "git rebase -q HEAD", "git grep hi",
     "find . -name a.txt", "find . -exec ls {} +", "find . -type f -exec cat {} \\;",
     "find . -name \"$X\" -print", "env ls", "env -i X=1 ls", "nice -n 5 ls", "nice ls",
     "timeout 5 ls", "timeout -s KILL 5 cat a.txt", "stdbuf -oL ls", "setsid -w ls", "nohup ls",
     "env nice timeout 5 ls", "xargs -0 ls", "xargs -I{} cat {}", "awk '{print $1}' a.txt",
     "awk -F: 'NR==1{print $1}' a.txt", "awk '/a|b/' a.txt", "mawk 'BEGIN{print \"a|b\"}'",
     "zip out.zip a.txt", "zip -T out.zip a.txt", "tar -cf o.tar -- *", "tar -cf o.tar ./*",
     "ssh -o BatchMode=yes -o ConnectTimeout=1 127.0.0.1 true"],
)  # fmt: skip
def test_ordinary_lines_still_pass_and_run_only_listed_programs(
    oracle: ExecOracle, line: str
) -> None:
    SCOPE.check(line)
    assert oracle.run(line, set(LISTED)) is None, line


@pytest.mark.parametrize(
    "line",
    ["git -c safe.directory=* -C /tmp/other status", "git config --global safe.directory '*'",
     "git -c http.sslVerify=false fetch", "git -c include.path=/tmp/x log",
     "git -c includeIf.onbranch:main.path=/tmp/x log", "git clone --config core.hooksPath=/t . x"],
)  # fmt: skip
def test_git_settings_that_widen_what_git_trusts_or_loads_are_refused(line: str) -> None:
    assert not SCOPE.contains(line)
