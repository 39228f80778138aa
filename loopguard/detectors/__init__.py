"""Detectors, one concern each, and the registry that builds them from a policy.

Adding a detector is adding one module here, one policy section, and one line in `_BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from loopguard.detectors.base import Detector
from loopguard.detectors.cycle import Cycle
from loopguard.detectors.growth import Growth
from loopguard.detectors.limits import RunLimits
from loopguard.detectors.progress import Progress
from loopguard.detectors.repeated_errors import RepeatedErrors
from loopguard.detectors.similarity import Similarity
from loopguard.detectors.stream import StreamRepeat
from loopguard.detectors.tool_repeat import ToolRepeat
from loopguard.detectors.velocity import Velocity

if TYPE_CHECKING:
    from loopguard.policy import Policy

# Each builder returns a detector for the policy, or None when the policy switches it off.
_BUILDERS: list[Callable[[Policy], Detector | None]] = [
    RunLimits,
    # Runaway detectors (issue 3), each switched by its section's `enabled`.
    lambda policy: Similarity(policy.similarity) if policy.similarity.enabled else None,
    lambda policy: ToolRepeat(policy.tool_repeat) if policy.tool_repeat.enabled else None,
    lambda policy: Cycle(policy.cycle) if policy.cycle.enabled else None,
    lambda policy: RepeatedErrors(policy.errors) if policy.errors.enabled else None,
    lambda policy: Velocity(policy.velocity) if policy.velocity.enabled else None,
    lambda policy: Growth(policy.growth) if policy.growth.enabled else None,
    lambda policy: StreamRepeat(policy.stream) if policy.stream.enabled else None,
    lambda policy: Progress(policy.progress) if policy.progress.enabled else None,
]


def _budget_check(policy: Policy) -> Detector | None:
    from loopguard.detectors.budget import build_budget_check

    return build_budget_check(policy)


def build_detectors(policy: Policy, extra: Sequence[Detector] = ()) -> list[Detector]:
    """The policy's detectors, then `extra` (a Guard's own), then the money check.

    The money check is always last: it reserves budget, so it must only see calls nothing else
    refused (the guard stops at the first abort). loopguard/detectors/budget.py.
    """
    built = [d for d in (build(policy) for build in _BUILDERS) if d is not None]
    built.extend(extra)
    money = _budget_check(policy)
    if money is not None:
        built.append(money)
    return built


__all__ = [
    "Cycle",
    "Detector",
    "Growth",
    "Progress",
    "RepeatedErrors",
    "RunLimits",
    "Similarity",
    "StreamRepeat",
    "ToolRepeat",
    "Velocity",
    "build_detectors",
]
