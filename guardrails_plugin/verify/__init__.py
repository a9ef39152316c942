"""Verification: prove what a policy can never allow, with z3, or find the call that breaks it.

    >>> from guardrails_plugin import Policy, allow, ask
    >>> from guardrails_plugin.scopes import Emails
    >>> from guardrails_plugin.verify import Verifier
    >>> policy = Policy([ask("send_email", args={"to": Emails(domains=["example.com"])})])
    >>> Verifier(policy).check("no agent reaches send_email.to outside example.com").status
    'proven'

z3 is an optional dependency (``pip install 'guardrails-plugin[verify]'``): this package
imports it only when a formula is built. See ``docs/verification.md``.
"""

from ._answers import Counterexample, Delegation, Repeated, Result, Step
from ._assert import assert_never_widens, assert_proves
from ._compare import Diff, Region, diff
from ._lint import deep_lint
from ._props import Property, PropertyError, parse
from ._sequences import replay_sequence
from ._verifier import Verifier, replay
from ._z3 import VerifyUnavailable

__all__ = [
    "Counterexample",
    "Delegation",
    "Diff",
    "Property",
    "PropertyError",
    "Region",
    "Repeated",
    "Result",
    "Step",
    "Verifier",
    "VerifyUnavailable",
    "assert_never_widens",
    "assert_proves",
    "deep_lint",
    "diff",
    "parse",
    "replay",
    "replay_sequence",
]
