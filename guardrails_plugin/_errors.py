"""Every error guardrails-plugin raises.

Our exception hierarchy::

    * GuardrailsError
      x GuardDecisionError            a guarded call did not go ahead
        + ToolCallDenied              the policy (or a person) said no
          - BudgetExceeded            a budget or rate ran out
        + ApprovalRequired            a person must decide and nobody could be asked
        + RunKilled                   an operator killed the run
        + RunPaused                   an operator paused it (outside a graph that can
                                      interrupt; inside one, a pause is an interrupt)
      x PolicyError                   a policy is malformed (raised at load time)
        + PolicyFileError             ... in a YAML file (names file and rule)
      x ScopeError                    a scope was built with bad settings
      x ScopeViolation                a value is outside a scope (a check's "no"; the
                                      guard turns it into a deny with this message)
      x DelegationError               a delegation asked for more than the delegator has
      x StoreError                    the shared store failed or holds bad data
      x ApproverClosed                a QueueApprover was closed; nobody will answer
      x ApprovalAnswerError           a resume answering an approval cannot be read
                                      (nothing was decided; answer it again)
      x RollbackError                 a rollback could not start (no target, no checkpoint)
        + RollbackBusy                another rollback holds the thread (in
                                      ``guardrails_plugin.rollback``)

Catch ``GuardDecisionError`` around an agent run to handle "the guard stopped this";
catch ``PolicyError`` where policies are loaded.

The errors that carry a ``Decision`` (``GuardDecisionError`` and below) are defined next to
it, in ``_decision.py``, and named here too: import any error from this module.
"""

from __future__ import annotations

from ._decision import (
    ApprovalRequired,
    BudgetExceeded,
    GuardDecisionError,
    RunKilled,
    RunPaused,
    ToolCallDenied,
)
from ._root_error import GuardrailsError

__all__ = [
    "ApprovalAnswerError",
    "ApprovalRequired",
    "ApproverClosed",
    "BudgetExceeded",
    "DelegationError",
    "GuardDecisionError",
    "GuardrailsError",
    "PolicyError",
    "PolicyFileError",
    "RollbackError",
    "RunKilled",
    "RunPaused",
    "ScopeError",
    "ScopeViolation",
    "StoreError",
    "ToolCallDenied",
]


class ApproverClosed(GuardrailsError):
    """``QueueApprover.next()`` was awaited on (or while) the approver was closed."""


class ApprovalAnswerError(GuardrailsError):
    """The value a graph was resumed with, answering a guard's approval interrupt, cannot be
    read (an unknown decision type, the wrong number of decisions, an edit of another tool).
    Raised to the caller of ``invoke`` / ``stream``; nothing was decided and the approval is
    still pending, so it can be answered again."""


class RollbackError(GuardrailsError):
    """A rollback cannot be planned or carried out: no violation or safe point to go back to,
    an unknown checkpoint or effect, an async compensation run from a sync rollback.

    An undo that fails is not this error: it is reported in the ``UndoReport`` and recorded
    in the journal, and the rollback goes no further.
    """


class PolicyError(GuardrailsError):
    """A policy could not be built: the message says what was expected and what was found."""


class PolicyFileError(PolicyError):
    """A policy file is malformed; the message names the file, the rule and the problem."""

    def __init__(self, path: str, where: str, problem: str) -> None:
        self.path = path
        self.where = where
        self.problem = problem
        super().__init__(f"{path}: {where}: {problem}")


class ScopeError(GuardrailsError):
    """A scope was constructed with invalid settings (for example a relative root path)."""


class ScopeViolation(GuardrailsError):
    """A value lies outside a scope. Raised by ``Scope.check``; the message says what was found
    and what the scope allows, and becomes the deny reason.

    ``short`` says what was found wrong without what the scope allows; ``allowed`` says what
    it allows. The operator, the audit log and approval requests read the whole message
    (``short; allowed``); the model reads ``short`` only, so a denial does not teach it (or
    instructions injected into it) which value would pass. Put every allowed value, bound,
    pattern or description in ``allowed``.

    ``unreadable=True`` says the scope could not understand the value at all (wrong type,
    parse error, a predicate that crashed) rather than finding it outside. The difference
    matters to ``deny`` rules: a value a deny rule cannot read is denied (fail closed), where a
    value it reads and finds outside its scope is not its business.
    """

    def __init__(self, message: str, *, unreadable: bool = False, allowed: str = "") -> None:
        super().__init__(f"{message}; {allowed}" if allowed else message)
        self.unreadable = unreadable
        self.short = message
        self.allowed = allowed


class DelegationError(GuardrailsError):
    """A delegation asked for more than the delegating agent holds (no escalation)."""


class StoreError(GuardrailsError):
    """The shared store failed, or holds data the guard cannot read."""
