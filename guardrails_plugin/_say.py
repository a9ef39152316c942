"""How the ``guardrails-plugin`` command reports a failure: one line on standard error."""

from __future__ import annotations

import sys


def say_error(message: object) -> None:
    """Print ``error: message`` as one line: any line break or other whitespace run in it
    (a file name can hold a newline) becomes one space."""
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
