"""Undo what an agent did to the world: compensations, a durable journal, exactly-once undo.

Three pieces, framework-free (LangGraph's part lives in ``guardrails_plugin.langgraph``):

- ``Compensations``: which action undoes which tool, and what it needs to know
  (``capture``, taken when the tool ran).
- ``Journal``: every side effect a tool had (an ``SideEffect``), every safe point and every
  violation, kept per thread in the guard's ``Store`` (a ``SQLiteStore`` can share the file
  of a LangGraph ``SqliteSaver``). Each write is one ``put`` of a whole document, so each
  entry is always either the old or the new version, never half of each.
- ``undo_effects``: runs the compensations of a thread's effects, newest first, and
  exactly once across crashes (see ``undo_effects`` for the protocol) and across
  concurrent rollbacks: each claims its thread first (``Journal.claim_rollback``, an
  atomic ``put_if`` in the store; a crashed holder's claim is taken over).

>>> from guardrails_plugin import MemoryStore, ToolCall
>>> compensations = Compensations()
>>> posts = []
>>> @compensations.undo("post", capture=lambda args, result: {"post_id": result})
... def delete_post(effect):
...     if effect.data["post_id"] in posts:  # idempotent: a retry finds it gone
...         posts.remove(effect.data["post_id"])
>>> journal = Journal(MemoryStore())
>>> call = ToolCall("post", {"text": "hello"})
>>> posts.append("p-1")  # the tool ran and returned "p-1"
>>> effect = journal.record_effect(
...     "thread-1", None, "", call, compensations.capture("post", call.args, "p-1")
... )
>>> report = undo_effects(journal, compensations, "thread-1", after_checkpoint=None)
>>> report.ok, posts, journal.effects("thread-1")[0].status.value
(True, [], 'undone')
"""

from .._errors import RollbackError
from ._claim import DEFAULT_LEASE, ClaimHolder, RollbackBusy, RollbackClaim
from ._compensations import Compensation, Compensations
from ._journal import Journal, at_or_after
from ._records import (
    EffectStatus,
    RollbackRecord,
    SafePoint,
    SideEffect,
    Violation,
    new_entry_id,
)
from ._undo import UndoReport, aundo_effects, undo_effects

__all__ = [
    "DEFAULT_LEASE",
    "ClaimHolder",
    "Compensation",
    "Compensations",
    "SideEffect",
    "EffectStatus",
    "Journal",
    "RollbackBusy",
    "RollbackClaim",
    "RollbackError",
    "RollbackRecord",
    "SafePoint",
    "UndoReport",
    "Violation",
    "at_or_after",
    "aundo_effects",
    "new_entry_id",
    "undo_effects",
]
