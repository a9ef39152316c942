"""A behaviour baseline: what each agent habitually did, as bounded counts, saved as JSON.

The file (``FORMAT``, ``VERSION``) holds, per agent: the tools it called and how often,
for each tool its argument names and the keys of each argument (``_values.keys``: hosts,
e-mail domains, path roots, short values) with their counts, the tool-to-tool transitions
within a run (from ``""``, the start of a run), and the distribution of its calls per run. Every count table
is a ``Counts``: at most ``cap`` kept entries, the occurrences of the rest summed in
``others``. Loading validates every field and names the first wrong one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import GuardrailsError

__all__ = ["FORMAT", "VERSION", "AgentProfile", "Baseline", "BaselineError", "Counts"]

FORMAT = "guardrails-plugin/baseline"
VERSION = 1


class BaselineError(GuardrailsError):
    """A baseline file that cannot be read or does not hold a valid baseline."""


@dataclass(frozen=True, slots=True)
class Counts:
    """Occurrences per key, bounded: the kept keys (``values``) and the summed occurrences
    of keys not kept (``others``)."""

    values: Mapping[str, int] = field(default_factory=dict)
    others: int = 0

    @property
    def total(self) -> int:
        """Every occurrence counted, kept or not."""
        return sum(self.values.values()) + self.others

    @property
    def novelty(self) -> float:
        """The Good-Turing estimate of the chance that the next occurrence is a key never
        seen: keys seen once, plus every occurrence not kept, over the total (1.0 when
        nothing was counted)."""
        total = self.total
        if total == 0:
            return 1.0
        once = sum(1 for n in self.values.values() if n == 1)
        return min(1.0, (once + self.others) / total)

    def top(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` most frequent kept keys, most frequent first (ties by key)."""
        return sorted(self.values.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def to_doc(self) -> dict[str, Any]:
        """The JSON document of these counts."""
        return {"values": dict(sorted(self.values.items())), "others": self.others}


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """One agent's habits: ``tools`` (calls per tool), ``args`` (per tool, per argument, the
    keys of its values), ``params`` (per tool, the argument names its calls had),
    ``transitions`` (per previous tool, ``""`` for the start of a run, the next tool),
    ``volume`` (calls per run -> number of runs)."""

    tools: Counts
    args: Mapping[str, Mapping[str, Counts]] = field(default_factory=dict)
    params: Mapping[str, Counts] = field(default_factory=dict)
    transitions: Mapping[str, Counts] = field(default_factory=dict)
    volume: Mapping[int, int] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        """Calls learned for this agent."""
        return self.tools.total

    @property
    def runs(self) -> int:
        """Runs learned for this agent (calls that named a thread or a run)."""
        return sum(self.volume.values())

    def quantile(self, q: float) -> int | None:
        """The smallest number of calls per run that at least ``q`` of the runs stayed
        within (``None`` without runs)."""
        runs = self.runs
        if runs == 0:
            return None
        need, seen = q * runs, 0
        for n in sorted(self.volume):
            seen += self.volume[n]
            if seen >= need:
                return n
        return max(self.volume)

    def to_doc(self) -> dict[str, Any]:
        """The JSON document of this profile."""
        return {
            "tools": self.tools.to_doc(),
            "args": {
                t: {a: c.to_doc() for a, c in sorted(args.items())}
                for t, args in sorted(self.args.items())
            },
            "params": {t: c.to_doc() for t, c in sorted(self.params.items())},
            "transitions": {p: c.to_doc() for p, c in sorted(self.transitions.items())},
            "volume": {str(n): r for n, r in sorted(self.volume.items())},
        }


@dataclass(frozen=True, slots=True)
class Baseline:
    """What each agent habitually did, learned from recorded traffic (``learn``).

    ``save`` / ``load`` (or ``to_json`` / ``from_json``) keep it as versioned JSON;
    ``from_json`` refuses anything but a valid baseline with one ``BaselineError`` naming
    the field. ``cap`` is the number of keys each count table kept while learning.
    """

    agents: Mapping[str, AgentProfile]
    cap: int = 64
    calls: int = 0
    """Calls learned, all agents together."""
    skipped: int = 0
    """Calls seen but not learned: calls that did not run (denied, stopped), and calls of
    agents past ``max_agents``."""

    def __repr__(self) -> str:
        return f"Baseline(agents={len(self.agents)}, calls={self.calls}, cap={self.cap})"

    def to_doc(self) -> dict[str, Any]:
        """The JSON document (``FORMAT``, ``VERSION``)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "cap": self.cap,
            "calls": self.calls,
            "skipped": self.skipped,
            "agents": {a: p.to_doc() for a, p in sorted(self.agents.items())},
        }

    def to_json(self, indent: int | None = None) -> str:
        """The baseline as JSON text (keys sorted: the same baseline, the same text)."""
        return json.dumps(self.to_doc(), indent=indent, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, *, name: str = "baseline") -> Baseline:
        """Read a baseline from JSON text; ``BaselineError`` naming ``name`` and the field
        for anything else."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BaselineError(f"{name}: not JSON: {exc.msg} (line {exc.lineno})") from None
        except RecursionError:
            raise BaselineError(f"{name}: JSON nested too deeply") from None
        return cls.from_doc(doc, name=name)

    @classmethod
    def from_doc(cls, doc: Any, *, name: str = "baseline") -> Baseline:
        """Read a baseline from its JSON document (see ``from_json``)."""
        r = _Reader(name)
        d = r.obj(doc, "", {"format", "version", "cap", "calls", "skipped", "agents"})
        if d.get("format") != FORMAT:
            raise BaselineError(f"{name}: not a baseline ('format' must be {FORMAT!r})")
        version = d.get("version")
        if version != VERSION:
            raise BaselineError(
                f"{name}: baseline version {version!r} is not supported (this version reads "
                f"{VERSION})"
            )
        cap = r.count(d.get("cap"), "cap", positive=True)
        agents = {}
        for agent, p in r.obj(d.get("agents"), "agents").items():
            agents[agent] = r.profile(p, f"agents.{agent}", cap)
        return cls(
            agents=agents,
            cap=cap,
            calls=r.count(d.get("calls"), "calls"),
            skipped=r.count(d.get("skipped", 0), "skipped"),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the baseline to ``path`` (JSON, indented), through a temporary file."""
        name = os.fspath(path)
        tmp = f"{name}.tmp-{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(self.to_json(indent=1) + "\n")
            os.replace(tmp, name)
        except OSError as exc:
            raise BaselineError(f"cannot write {name!r}: {exc.strerror or exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Baseline:
        """Read a baseline file; ``BaselineError`` if it is missing or not a valid one."""
        name = os.fspath(path)
        try:
            with open(name, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise BaselineError(f"cannot read {name!r}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise BaselineError(f"{name}: not UTF-8 text: {exc.reason}") from None
        return cls.from_json(text, name=name)


class _Reader:
    """Validation of a baseline document, naming the first wrong field."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, where: str, problem: str) -> BaselineError:
        return BaselineError(f"{self.name}: {where or 'the document'}: {problem}")

    def obj(self, value: Any, where: str, known: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be an object, found {_kind(value)}")
        if known is not None:
            extra = set(value) - known
            if extra:
                raise self.fail(where, f"unknown keys: {', '.join(sorted(extra))}")
        return value

    def count(self, value: Any, where: str, *, positive: bool = False) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < int(positive):
            least = "a positive integer" if positive else "an integer >= 0"
            raise self.fail(where, f"must be {least}, found {value!r:.40}")
        return value

    def counts(self, value: Any, where: str, cap: int) -> Counts:
        d = self.obj(value, where, {"values", "others"})
        values = self.obj(d.get("values"), f"{where}.values")
        if len(values) > cap:
            raise self.fail(where, f"keeps {len(values)} keys, more than the cap {cap}")
        kept = {k: self.count(n, f"{where}.values.{k}", positive=True) for k, n in values.items()}
        return Counts(kept, self.count(d.get("others", 0), f"{where}.others"))

    def profile(self, value: Any, where: str, cap: int) -> AgentProfile:
        d = self.obj(value, where, {"tools", "args", "params", "transitions", "volume"})
        tools = self.counts(d.get("tools"), f"{where}.tools", cap)
        args: dict[str, dict[str, Counts]] = {}
        for tool, per in self.obj(d.get("args", {}), f"{where}.args").items():
            if tool not in tools.values:
                raise self.fail(f"{where}.args.{tool}", "names a tool the profile does not keep")
            a = self.obj(per, f"{where}.args.{tool}")
            args[tool] = {k: self.counts(c, f"{where}.args.{tool}.{k}", cap) for k, c in a.items()}
        params: dict[str, Counts] = {}
        for tool, c in self.obj(d.get("params", {}), f"{where}.params").items():
            if tool not in tools.values:
                raise self.fail(f"{where}.params.{tool}", "names a tool the profile does not keep")
            params[tool] = self.counts(c, f"{where}.params.{tool}", cap)
        transitions = {
            p: self.counts(c, f"{where}.transitions.{p}", cap)
            for p, c in self.obj(d.get("transitions", {}), f"{where}.transitions").items()
        }
        volume: dict[int, int] = {}
        for n, runs in self.obj(d.get("volume", {}), f"{where}.volume").items():
            if not (n.isascii() and n.isdigit()) or int(n) > 10**12:
                raise self.fail(f"{where}.volume", f"key {n!r:.40} is not a number of calls")
            volume[int(n)] = self.count(runs, f"{where}.volume.{n}", positive=True)
        return AgentProfile(tools, args, params, transitions, volume)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number" if not isinstance(value, float) or math.isfinite(value) else "NaN"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"
