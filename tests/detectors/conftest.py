"""Helpers for the detector tests: the benchmark's run simulator, and a feeder that collects
verdicts instead of raising."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from loopguard import Guard, LoopGuardAbort, Policy
from loopguard.detectors import RUNAWAY
from loopguard.events import Event
from loopguard.verdict import Verdict


def feed(
    events: Iterable[Event], policy: Policy | None = None, **overrides: object
) -> tuple[list[Verdict], Verdict | None]:
    """Run `events` through a guard; returns (warnings and nudges, the abort or None).

    Events after an abort are not fed (they would never have happened)."""
    if policy is None:
        policy = Policy(**overrides)  # type: ignore[arg-type]
    guard = Guard(policy)
    verdicts: list[Verdict] = []
    for event in events:
        try:
            verdict = guard.process(event)
        except LoopGuardAbort as stop:
            return verdicts, stop.verdict
        if verdict is not None:
            verdicts.append(verdict)
    return verdicts, None


def only(name: str, **section: object) -> Policy:
    """A policy in which only the runaway detector `name` runs (plus plain limits, off)."""
    data: dict[str, object] = {n: {"enabled": n == name} for n in RUNAWAY}
    data[name] = {"enabled": True, **section}
    return Policy(max_model_calls=None, max_tool_calls=None, **data)  # type: ignore[arg-type]
