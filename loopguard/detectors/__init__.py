"""Detectors, one concern each, and the registry that builds them from a policy.

`REGISTRY` is the one table: each line names a detector, the policy section that configures it
and that section's config class. `Policy` gets one field per section from it, and the guard
builds each policy's detectors from it. Adding a detector is one module and one line here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loopguard.detectors.base import Context, Detector, Pricer, Registered
from loopguard.detectors.budget import BudgetCheck
from loopguard.detectors.cycle import Cycle, CycleConfig
from loopguard.detectors.growth import Growth, GrowthConfig
from loopguard.detectors.limits import LimitsConfig, RunLimits
from loopguard.detectors.progress import Progress, ProgressConfig
from loopguard.detectors.repeated_errors import ErrorsConfig, RepeatedErrors
from loopguard.detectors.similarity import Similarity, SimilarityConfig
from loopguard.detectors.stream import StreamConfig, StreamRepeat
from loopguard.detectors.tool_repeat import ToolRepeat, ToolRepeatConfig
from loopguard.detectors.velocity import Velocity, VelocityConfig

if TYPE_CHECKING:
    from loopguard.policy import Policy

# In the order they run; the first abort of an event stops the rest.
REGISTRY: tuple[Registered, ...] = (
    Registered(
        RunLimits, "limits", LimitsConfig, lambda cfg, policy, _: RunLimits(cfg, policy.warn_ratio)
    ),
    # Runaway detectors, each switched by its section's `enabled`.
    Registered(Similarity, "similarity", SimilarityConfig),
    Registered(ToolRepeat, "tool_repeat", ToolRepeatConfig),
    Registered(Cycle, "cycle", CycleConfig),
    Registered(RepeatedErrors, "errors", ErrorsConfig),
    Registered(Velocity, "velocity", VelocityConfig),
    Registered(Growth, "growth", GrowthConfig),
    Registered(StreamRepeat, "stream", StreamConfig),
    Registered(Progress, "progress", ProgressConfig),
    # Money: top-level policy keys (max_cost_usd, budgets, ...), shared with the pricer.
    Registered(BudgetCheck, build=BudgetCheck.from_policy, last=True),
)

# The sections of the runaway detectors: those a policy switches on and off by `enabled`.
RUNAWAY: tuple[str, ...] = tuple(
    e.section
    for e in REGISTRY
    if e.section is not None and e.config is not None and "enabled" in e.config.model_fields
)


def build_detectors(
    policy: Policy, extra: Sequence[Detector[Any]] = (), context: Context | None = None
) -> list[Detector[Any]]:
    """The policy's detectors in registry order, with `extra` (a Guard's own) before the
    `last` ones. `context` carries the guard's parts (its pricer); default: the default pricer."""
    if context is None:
        from loopguard.pricing import default_pricer

        context = Context(pricer=default_pricer())
    first: list[Detector[Any]] = []
    last: list[Detector[Any]] = []
    for entry in REGISTRY:
        detector = entry.from_policy(policy, context)
        if detector is not None:
            (last if entry.last else first).append(detector)
    return [*first, *extra, *last]


__all__ = [
    "REGISTRY",
    "RUNAWAY",
    "BudgetCheck",
    "Context",
    "Cycle",
    "Detector",
    "Growth",
    "Pricer",
    "Progress",
    "Registered",
    "RepeatedErrors",
    "RunLimits",
    "Similarity",
    "StreamRepeat",
    "ToolRepeat",
    "Velocity",
    "build_detectors",
]
