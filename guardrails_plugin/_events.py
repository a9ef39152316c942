"""Framework-free, immutable events: what the guard is asked about.

Adapters (LangChain, LangGraph, OpenAI) translate their hooks into these; the engine never
sees a framework object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

DEFAULT_AGENT = "agent"


def _frozen(args: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if args is None:
        return MappingProxyType({})
    if isinstance(args, MappingProxyType):
        return args
    return MappingProxyType(dict(args))


@dataclass(frozen=True, slots=True)
class ToolCall:
    """An agent wants to call a tool.

    ``args`` is what the model produced, before the tool runs, kept read-only. When it is not a
    mapping with string keys (a bare string, a list, ``None``), it is moved to ``raw_args``,
    ``readable`` is ``False``, and the guard denies the call: it cannot tell what the tool
    would touch. An adapter that decides on what the tool will receive (the tool's schema
    applied to what the model sent) may keep what was sent in ``raw_args`` of a readable
    call: the call's identity across re-runs (parsing is not stable: a ``default_factory``).
    """

    tool: str
    args: Mapping[str, Any] = field(default_factory=dict)
    agent: str = DEFAULT_AGENT
    call_id: str | None = None
    run_id: str | None = None
    thread_id: str | None = None
    step: int | None = None
    raw_args: Any = field(default=None, compare=False)
    message: AgentMessage | None = field(default=None, compare=False, repr=False)
    """Set when the call passes control or a message to another agent (a hand-off): the
    guard's cascade monitor sees the message before the call is decided."""
    problem: str | None = field(default=None, compare=False)
    """Set by an adapter that cannot tell what the tool would receive (arguments its schema
    does not know or rejects, a tool whose schema it cannot see): the call is unreadable and
    denied with this reason; ``args`` is then empty and ``raw_args`` holds what was sent."""
    readable: bool = field(default=True, init=False, compare=False)

    def __post_init__(self) -> None:
        if self.problem is not None:
            object.__setattr__(self, "raw_args", self.args)
            object.__setattr__(self, "readable", False)
            object.__setattr__(self, "args", _frozen({}))
        elif isinstance(self.args, Mapping) and all(isinstance(k, str) for k in self.args):
            object.__setattr__(self, "args", _frozen(self.args))
        else:
            # Unreadable arguments (None included) are kept for the record and denied.
            object.__setattr__(self, "raw_args", self.args)
            object.__setattr__(self, "readable", False)
            object.__setattr__(self, "args", _frozen({}))

    def __hash__(self) -> int:
        return hash((self.tool, self.agent, self.call_id, self.run_id, self.thread_id))

    @property
    def scope_key(self) -> str:
        """The run this call belongs to, for per-run state (thread id, else run id)."""
        return self.thread_id or self.run_id or "-"

    def with_args(self, args: Mapping[str, Any]) -> ToolCall:
        """The same call with other arguments (an edit by a person, say)."""
        return ToolCall(
            tool=self.tool,
            args=args,
            agent=self.agent,
            call_id=self.call_id,
            run_id=self.run_id,
            thread_id=self.thread_id,
            step=self.step,
            message=self.message,
        )


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool returned. The guard records taint (untrusted content) and result tokens."""

    tool: str
    content: str
    agent: str = DEFAULT_AGENT
    call_id: str | None = None
    run_id: str | None = None
    thread_id: str | None = None
    is_error: bool = False

    @property
    def scope_key(self) -> str:
        """The run this result belongs to, for per-run state (thread id, else run id)."""
        return self.thread_id or self.run_id or "-"


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """One agent hands a message (or control) to another.

    Provenance: ``path`` is the chain of agents the work passed through before ``sender``
    (delegation depth is ``len(path)``), ``run_id`` / ``thread_id`` the run. ``id``, when
    given, makes observing the same message twice (a re-run task) count once.

    Taint across runs: ``run_id`` / ``thread_id`` are the run the message lands in. When the
    sender works in another run (agents in separate threads, graphs or processes), set
    ``origin`` to the sender's run (its thread id, else run id): the guard carries that
    run's data-flow labels (the untrusted sources its content came from) into the
    recipient's run, so sink rules see them there. ``labels`` adds labels explicitly.
    """

    sender: str
    recipient: str
    content: str
    run_id: str | None = None
    thread_id: str | None = None
    step: int | None = None
    path: tuple[str, ...] = ()
    id: str | None = None
    labels: frozenset[str] = frozenset()
    origin: str | None = None
    passive: bool = False
    """Reported by a passive observer (``CascadeWatcher``), which reconstructs hand-offs
    from what a callback sees of the graph's tasks. Once an adapter that sees hand-offs
    themselves (``guard_node``, a guarded hand-off tool) reports in a run, the monitor
    ignores passive reports there: the same hand-off told twice, under two ids, would break
    every chain it follows."""
    parent: str | None = None
    """The ``id`` of the message whose delivery started the sender's current activation
    (``None`` for a message sent by an agent the run's input started): messages of one run
    form a causal tree."""
    generation: int | None = None
    """Depth in that causal tree: 0 for a message whose sender the run's input started,
    the parent's generation + 1 otherwise; ``None`` when the reporter cannot tell."""
    packets: int = 1
    """How many deliveries this message stands for (a ``Send`` fan-out reported at once)."""

    @property
    def scope_key(self) -> str:
        """The run this message lands in, for per-run state (thread id, else run id)."""
        return self.thread_id or self.run_id or "-"


@dataclass(frozen=True, slots=True)
class ModelCall:
    """An agent is about to call its model with these tools on offer."""

    agent: str = DEFAULT_AGENT
    tools: tuple[str, ...] = ()
    run_id: str | None = None
    thread_id: str | None = None
    step: int | None = None

    @property
    def scope_key(self) -> str:
        """The run this model call belongs to, for per-run state (thread id, else run id)."""
        return self.thread_id or self.run_id or "-"


Event = ToolCall | ToolResult | AgentMessage | ModelCall
"""Anything the guard can be asked about."""


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """What one model answer used, as the model reported it (``estimated``: counted with
    tiktoken because the answer carried no usage). Recorded with ``Guard.record_usage``:
    model token and cost budgets (``of="model"``) are charged with it. Not a decision's
    event: a model's tokens are spent once it has answered; the budget then stops what
    comes next (the next model call, the tool calls it covers)."""

    model: str
    input_tokens: int
    output_tokens: int
    agent: str = DEFAULT_AGENT
    run_id: str | None = None
    thread_id: str | None = None
    estimated: bool = False

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ModelUsage.{name} must be an int >= 0, found {value!r}")

    @property
    def scope_key(self) -> str:
        """The run this usage belongs to, for per-run state (thread id, else run id)."""
        return self.thread_id or self.run_id or "-"
