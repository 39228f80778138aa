"""Verdicts and the abort."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from loopguard import _safe
from loopguard.errors import LoopGuardAbort


class Action(IntEnum):
    """What a detector asks for; the strongest verdict of an event wins."""

    OK = 0
    WARN = 1
    NUDGE = 2  # middleware: tell the model once what it is repeating; handler: same as WARN
    ABORT = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(slots=True)
class Verdict:
    detector: str
    action: Action
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    # Filled in by the guard: run, agent, the 1-based model-call index at which it was given,
    # usage so far, and whether it was enforced (False in shadow mode).
    run: str | None = None
    agent: str | None = None
    step: int = 0
    usage: dict[str, Any] = field(default_factory=dict)
    enforced: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The verdict as it may leave the process (agent state, JSON output): evidence that
        is content is replaced by its size and digest."""
        return {
            "detector": self.detector,
            "action": str(self.action),
            "reason": _safe.text(self.reason),
            "evidence": _safe.evidence(self.evidence),
            "run": self.run,
            "agent": self.agent,
            "step": self.step,
            "usage": self.usage,
            "enforced": self.enforced,
        }


def warn(detector: str, reason: str, **evidence: Any) -> Verdict:
    return Verdict(detector, Action.WARN, reason, evidence)


def nudge(detector: str, reason: str, **evidence: Any) -> Verdict:
    return Verdict(detector, Action.NUDGE, reason, evidence)


def abort(detector: str, reason: str, **evidence: Any) -> Verdict:
    return Verdict(detector, Action.ABORT, reason, evidence)


__all__ = ["Action", "LoopGuardAbort", "Verdict", "abort", "nudge", "warn"]
