"""Pytest helpers: fail a build when a policy change widens permissions or breaks a property."""

from __future__ import annotations

from ..policy import Policy
from ._answers import Result
from ._compare import Diff, diff
from ._verifier import Verifier


def assert_proves(policy: Policy, *properties: str) -> list[Result]:
    """Assert every property is proven for ``policy`` (``AssertionError`` naming the first
    that is not, with its counterexample); returns the results."""
    verifier = Verifier(policy)
    results = [verifier.check(p) for p in properties]
    for r in results:
        if not r.holds:
            raise AssertionError(str(r))
    return results


def assert_never_widens(old: Policy, new: Policy) -> Diff:
    """Assert ``new`` permits nothing ``old`` did not (no call denied before is now asked
    about or allowed, none asked about before is now allowed); returns the regions where
    ``new`` narrows."""
    regions = diff(old, new)
    wider = [r for r in regions if r.widens]
    if wider:
        raise AssertionError(
            f"{new.name!r} widens {old.name!r}:\n" + "\n".join(str(r) for r in wider)
        )
    if not regions.settled_widening:
        raise AssertionError(
            f"cannot show {new.name!r} widens nothing {old.name!r} did not allow:\n"
            + "\n".join(regions.unsettled)
        )
    return regions
