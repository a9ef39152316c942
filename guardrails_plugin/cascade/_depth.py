"""Depth: delegation chains grown too long."""

from __future__ import annotations

from ._signals import Alarm, Observed, Tracker, chain


class Depth:
    """Trip when a message has passed through more than ``max_depth`` agents
    (``len(message.path)``, the chain of agents it passed through, as the adapter records
    it). Stateless: each too-deep message reports. A message without a path (an adapter that
    does not record provenance) has depth 0 and never trips.
    """

    name = "depth"

    def __init__(self, max_depth: int = 8) -> None:
        if max_depth < 1:
            raise ValueError(f"Depth: expected max_depth >= 1, got {max_depth}")
        self.max_depth = max_depth

    def track(self) -> Tracker:
        """This signal keeps no state: it is its own tracker."""
        return self

    @property
    def deeper_than(self) -> int:
        """``max_depth``: the monitor feeds this tracker only messages whose path is
        longer (the others cannot trip it)."""
        return self.max_depth

    def observe(self, seen: Observed) -> Alarm | None:
        """An alarm when the message's delegation path is deeper than ``max_depth``."""
        message = seen.message
        if len(message.path) <= self.max_depth:
            return None
        path = message.path
        agents = path if path[-1] == message.recipient else (*path, message.recipient)
        return Alarm(
            signal=self.name,
            scope=seen.scope,
            agents=agents,
            reason=(
                f"delegation too deep: the message from {message.sender} to "
                f"{message.recipient} has passed through {len(message.path)} agents "
                f"({chain(agents)}), limit {self.max_depth}"
            ),
            evidence=(seen.evidence,),
            at_message=seen.index,
        )
