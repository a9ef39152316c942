"""What every backend checks and encodes the same way, so that they agree to the byte."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

from .._errors import StoreError
from ._base import JSON


def encode_document(key: str, value: JSON) -> str:
    """``value`` as strict JSON text; ``TypeError`` naming ``key`` when it is not JSON."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"document {key!r} is not JSON-serializable: {exc}") from exc


def decode_document(key: str, text: str | bytes, where: str) -> JSON:
    """The document stored as ``text``; ``StoreError`` naming ``key`` when it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, TypeError) as exc:  # not JSON text, or not text at all
        raise StoreError(f"{where}: document {key!r} holds invalid JSON: {exc}") from exc


def check_amount(amount: float) -> None:
    if not math.isfinite(amount):
        raise ValueError(f"charge amount must be a finite number, found {amount!r}")


def check_window(window: float) -> None:
    if not (window > 0 and math.isfinite(window)):
        raise ValueError(f"window must be a positive, finite number of seconds, found {window!r}")


def unique_members(members: Iterable[str]) -> tuple[str, ...]:
    """``members`` without repeats, in first-seen order; a lone string is refused.

    ``add_members(key, "alice")`` would otherwise add five one-letter members.
    """
    if isinstance(members, str | bytes):
        raise TypeError(f"members must be an iterable of strings, not one string: {members!r}")
    out = tuple(dict.fromkeys(members))
    for member in out:
        if not isinstance(member, str):
            raise TypeError(f"set members must be strings, found {member!r}")
    return out


def same_document(found: JSON, expected: JSON) -> bool:
    """Whether two decoded JSON documents are the same value (``True != 1`` here)."""
    return _canonical(found) == _canonical(expected)


def _canonical(value: JSON) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True)
