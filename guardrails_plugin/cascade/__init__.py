"""Cascade detection: loops, storms, replicating payloads and runaway delegation between agents.

``CascadeMonitor`` sees each ``AgentMessage`` and runs it through small, tunable signals,
each with its own bounded state per scope (thread or run) and an amortized constant cost
per message:

- ``Cycles``: hand-offs going round a loop of up to N agents with little new content;
- ``Storms``: message rate, fan-out and volume per time window;
- ``Replication``: the same payload, lightly reworded, forwarded hop to hop (MinHash);
- ``Escalation``: a call denied to one agent, made again by another it reached;
- ``Depth``: delegation chains too long.

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
    "Observed",
    "Replication",
    "Response",
    "Signal",
    "Sketcher",
    "Storms",
    "Tracker",
    "Trip",
    "default_signals",
]
