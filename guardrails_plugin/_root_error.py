"""``GuardrailsError``, the root every error of the package derives from.

Alone in its module so that ``_decision.py`` (the errors that carry a ``Decision``) and
``_errors.py`` (every other error, and the one place that names them all) can both build on
it without importing each other both ways.
"""

from __future__ import annotations


class GuardrailsError(Exception):
    """Root of every error raised by guardrails-plugin."""
