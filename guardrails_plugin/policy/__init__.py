"""Policies: rules (allow / ask / deny with argument scopes), budgets, rates and data flows."""

from ._budgets import Budget, Measure, rate
from ._flows import DataFlow
from ._policy import DEFAULT_DENY, MALFORMED, Policy
from ._rules import Rule, RuleEffect, allow, ask, deny
from ._toolcheck import PolicyToolError, PolicyToolWarning, ToolProblem, ToolShape

__all__ = [
    "DEFAULT_DENY",
    "MALFORMED",
    "Budget",
    "DataFlow",
    "Measure",
    "Policy",
    "PolicyToolError",
    "PolicyToolWarning",
    "Rule",
    "RuleEffect",
    "ToolProblem",
    "ToolShape",
    "allow",
    "ask",
    "deny",
    "rate",
]
