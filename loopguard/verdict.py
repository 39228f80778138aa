"""Verdicts and the abort."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


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
        return {
            "detector": self.detector,
            "action": str(self.action),
            "reason": self.reason,
            "evidence": self.evidence,
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


class LoopGuardAbort(RuntimeError):
    """Raised to stop a run. `verdict` says which detector fired, why, and the spend so far.

    A RuntimeError so that LangGraph's default retry policy does not retry it; every later
    model or tool start of the same run raises it again, so no retry wrapper or error handler
    can make another paid call go out.
    """

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        super().__init__(
            f"loopguard stopped run {verdict.run} (agent {verdict.agent!r}) "
            f"at model call {verdict.step}: [{verdict.detector}] {verdict.reason}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.verdict,))
