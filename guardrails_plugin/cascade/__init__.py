"""Cascade detection: loops, storms, replicating payloads and runaway delegation between agents.

``CascadeMonitor`` sees each ``AgentMessage`` and runs it through small, tunable signals,
each with its own bounded state per scope (thread or run) and an amortized constant cost
per message:

- ``Cycles``: hand-offs going round the same loop with no new fact (identifiers,
  numbers, names, quoted values, tool results): information, not wording;
- ``Storms``: deliveries multiplying generation after generation of the causal tree
  (logical time; a wall-clock window is optional);
- ``Infection``: content from an untrusted source (a tool the policy's data-flow rules
  mark) passed on by a second agent;
- ``Escalation``: an action denied to one agent, requested of another (held at the
  request) or made again by another it reached;
- ``Depth``: delegation chains too long;
- ``Replication`` (not a default): the same payload, lightly reworded, forwarded hop to
  hop (MinHash).

A ``Guard(policy, cascade=CascadeMonitor())`` feeds the monitor every hand-off its
adapters see and every call the policy denies; its ``Breaker`` acts on alarms (pause for a
person, quarantine an agent, stop the run) through the kill-switch flags in the Store and
records each ``Trip``.

Each trip is an ``Alarm`` naming the signal, the scope, the agents, a reason a person can act
on, and the messages (``Evidence``) it rests on. A signal is any object with a ``name`` and
a ``track()`` returning a per-scope ``Tracker``.

>>> from guardrails_plugin import AgentMessage
>>> monitor = CascadeMonitor([Depth(max_depth=2)])
>>> [a.reason for a in monitor.observe(AgentMessage("c", "d", "hi", path=("a", "b", "c")))]
['delegation too deep: the message from c to d has passed through 3 agents (a -> b -> c -> d), limit 2']
"""

from ._breaker import RESPONSES, Breaker, Response, Trip
from ._cycles import Cycles
from ._depth import Depth
from ._escalation import Escalation
from ._facts import facts
from ._infection import Infection
from ._monitor import CascadeMonitor, default_signals
from ._replication import Replication
from ._signals import Alarm, Evidence, Observed, Signal, Tracker
from ._sketch import Sketcher
from ._storms import Storms

__all__ = [
    "RESPONSES",
    "Alarm",
    "Breaker",
    "CascadeMonitor",
    "Cycles",
    "Depth",
    "Escalation",
    "Evidence",
    "Infection",
    "Observed",
    "Replication",
    "Response",
    "Signal",
    "Sketcher",
    "Storms",
    "Tracker",
    "Trip",
    "default_signals",
    "facts",
]
