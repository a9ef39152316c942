"""Replay: what would a candidate policy have done to the traffic already recorded?

``replay(policy, source)`` re-decides recorded tool calls with ``policy`` on a fresh store,
at their recorded times, and reports the calls newly denied, newly asked and newly allowed,
per rule and per agent, and the budgets that would run out, and when. Sources: the
package's audit logs (``from_audit``), LangGraph checkpoint histories
(``from_checkpoints``) and JSON Lines of tool calls (``from_jsonl``, the format other
tracers convert to; ``docs/replay.md``). The command line::

    guardrails-plugin replay policy.yaml --from audit.db
    guardrails-plugin replay policy.yaml --from calls:traffic.jsonl --json
    guardrails-plugin replay policy.yaml --from checkpoints:sqlite:///graph.db --thread t-1
"""

from ._replay import open_source, replay
from ._report import BudgetRun, Change, Example, ReplayReport
from ._sources import (
    RecordedCall,
    RecordedResult,
    ReplayError,
    from_audit,
    from_checkpoints,
    from_jsonl,
)

__all__ = [
    "BudgetRun",
    "Change",
    "Example",
    "RecordedCall",
    "RecordedResult",
    "ReplayError",
    "ReplayReport",
    "from_audit",
    "from_checkpoints",
    "from_jsonl",
    "open_source",
    "replay",
]
