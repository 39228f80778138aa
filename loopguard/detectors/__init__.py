"""Detectors, one concern each, and the registry that builds them from a policy.

Adding a detector is adding one module here, one policy section, and one line in `_BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from loopguard.detectors.base import Detector
from loopguard.detectors.limits import RunLimits

if TYPE_CHECKING:
    from loopguard.policy import Policy

# Each builder returns a detector for the policy, or None when the policy switches it off.
_BUILDERS: list[Callable[[Policy], Detector | None]] = [
    lambda policy: RunLimits(),
    # Keep last: the money check reserves budget, so it must only see calls nothing else
    # refused (the guard stops at the first abort). Issue 4; loopguard/budget.py.
    lambda policy: _budget_check(policy),
]


def _budget_check(policy: Policy) -> Detector | None:
    from loopguard.budget import build_budget_check

    return build_budget_check(policy)


def build_detectors(policy: Policy) -> list[Detector]:
    return [d for d in (build(policy) for build in _BUILDERS) if d is not None]


__all__ = ["Detector", "RunLimits", "build_detectors"]
