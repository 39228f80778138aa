"""Cycles of tool calls: A,B,A,B or A,B,C,A,B,C ... of any period up to `max_period`.

Each finished tool call is a symbol: the tool, its canonical arguments and its result (or
error). Two symbols match when tool and result are the same, the identifiers in the arguments
(numbers, ids, paths, snake_case names) are the same, and the arguments are at least `threshold`
alike (so a query reworded slightly still matches). For every period p the detector keeps how
many consecutive calls have matched the call p places before, so each call costs `max_period`
comparisons, whatever the length of the run. Period 1 (the same call again) is
`tool_repeat`'s; a cycle whose results change (reading two files that are being written) is
progress and never matches.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, model_validator

from loopguard.detectors._calls import finished, started
from loopguard.detectors._escalation import Escalation, escalate, forget
from loopguard.events import Event, ToolEnd, ToolFailed, ToolStart
from loopguard.normalize import clip, identifiers, similar
from loopguard.state import RunState
from loopguard.verdict import Action, Verdict

_MAX_CHARS = 4000  # characters of a call's arguments compared (head and tail)


class CycleConfig(Escalation):
    """Policy section `cycle`. Repeats count whole repetitions of the cycle."""

    min_period: int = Field(2, ge=1, le=32)
    """Shortest cycle reported (1 would duplicate `tool_repeat`)."""
    max_period: int = Field(6, ge=1, le=32)
    """Longest cycle looked for, in tool calls."""
    threshold: float = Field(0.85, gt=0, le=1)
    """Indel similarity (0..1) at which two calls' arguments are near-identical."""

    @model_validator(mode="after")
    def _periods(self) -> CycleConfig:
        if self.min_period > self.max_period:
            raise ValueError(
                f"min_period ({self.min_period}) must not be above max_period ({self.max_period})"
            )
        return self


@dataclass(slots=True)
class _Call:
    tool: str
    args: str
    outcome: tuple[bool, int]
    step: int
    _ids: tuple[str, ...] | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        """The identifiers in the arguments, found when first compared: most calls never
        meet one with the same tool and result, and finding them is a regex pass."""
        if self._ids is None:
            self._ids = identifiers(self.args)
        return self._ids


class _Slot:
    __slots__ = ("emitted", "history", "runs", "scores", "starts")

    def __init__(self, max_period: int) -> None:
        self.history: deque[_Call] = deque(maxlen=max_period + 1)
        self.runs = [0] * (max_period + 1)  # runs[p]: calls in a row matching the one p before
        self.starts = [0] * (max_period + 1)  # starts[p]: model call where that run's cycle began
        self.scores = [1.0] * (max_period + 1)  # scores[p]: the least similar match in that run
        self.emitted: dict[object, Action] = {}


class Cycle:
    name: ClassVar[str] = "cycle"
    events: ClassVar[tuple[type[Event], ...]] = (ToolStart, ToolEnd, ToolFailed)

    def __init__(self, config: CycleConfig) -> None:
        self.config = config
        self._new_slot = lambda: _Slot(config.max_period)

    def __call__(self, state: RunState, event: ToolStart | ToolEnd | ToolFailed) -> Verdict | None:
        cfg = self.config
        slot: _Slot = state.slot(self.name, self._new_slot)
        if type(event) is ToolStart:
            started(state, event)
            return None
        tool, args, step, outcome = finished(state, event)
        # Compared with up to max_period calls, so bounded as similarity's steps are: the
        # comparison's cost grows with the square of the length (1 MB arguments took seconds).
        call = _Call(tool, clip(args, _MAX_CHARS), outcome, step)
        history, runs = slot.history, slot.runs
        history.append(call)
        n = len(history)
        period = 0  # the shortest period whose run of matches covers a whole cycle
        for p in range(1, cfg.max_period + 1):
            score = (
                self._same(call, earlier)
                if p < n and (earlier := history[-1 - p]).outcome == call.outcome
                else 0.0
            )
            if score:
                if runs[p] == 0:
                    slot.starts[p], slot.scores[p] = earlier.step, score
                runs[p] += 1
                slot.scores[p] = min(slot.scores[p], score)
                if not period and runs[p] >= p:
                    period = p
            else:
                runs[p] = 0
        if period < cfg.min_period:
            if period == 0:
                forget(cfg, slot.emitted)
            return None
        repeated = runs[period]
        tools = [c.tool for c in list(history)[-period:]]
        pattern = " -> ".join(tools)
        return escalate(
            cfg,
            slot.emitted,
            period,
            self.name,
            repeated,
            period,
            f"tool calls cycle with period {period} ({pattern}), repeated {repeated // period} "
            "times with the same results",
            f"You are going in circles: the sequence {pattern} has repeated "
            f"{repeated // period} times with the same results. Change approach or finish.",
            start_step=slot.starts[period],
            similarity=round(slot.scores[period], 3),
            tools=tools,
        )

    def _same(self, a: _Call, b: _Call) -> float:
        """How alike two calls are (0 when they do not match)."""
        if a.tool != b.tool or a.outcome != b.outcome or a.ids != b.ids:
            return 0.0
        return similar(a.args, b.args, self.config.threshold)
