"""Retry storms: the same tool failing with the same error, again and again.

Errors are compared after normalization (numbers, timestamps and ids masked), so "rate limited,
retry in 3s" and "rate limited, retry in 5s" are the same error. Unlike `tool_repeat`, the
arguments may change between attempts: a model that keeps nudging a parameter and keeps getting
the same validation error is stuck too. A success of the tool ends the streak, so a retry after
one transient error, or a batch in which some items fail, is not a storm.
"""

from __future__ import annotations

from typing import ClassVar

from loopguard.detectors._escalation import Escalation, escalate
from loopguard.events import Event, ToolEnd, ToolFailed
from loopguard.normalize import normalize
from loopguard.state import RunState
from loopguard.verdict import Action, Verdict

_MAX_TOOLS = 64


class ErrorsConfig(Escalation):
    """Policy section `errors`. Repeats count consecutive identical errors of one tool."""


class _Slot:
    __slots__ = ("emitted", "streaks")

    def __init__(self) -> None:
        # tool -> (hash of the error, repeats after the first, model call of the first)
        self.streaks: dict[str, tuple[int, int, int]] = {}
        self.emitted: dict[object, Action] = {}


class RepeatedErrors:
    name: ClassVar[str] = "errors"
    events: ClassVar[tuple[type[Event], ...]] = (ToolEnd, ToolFailed)

    def __init__(self, config: ErrorsConfig) -> None:
        self.config = config

    def __call__(self, state: RunState, event: Event) -> Verdict | None:
        slot: _Slot = state.slot(self.name, _Slot)
        tool = event.tool  # type: ignore[attr-defined]
        if type(event) is ToolEnd:
            if slot.streaks.pop(tool, None) is not None:
                slot.emitted.pop(tool, None)
            return None
        text = normalize(event.error)  # type: ignore[attr-defined]
        key = hash(text)  # compared within this process only
        found = slot.streaks.get(tool)
        if found is None or found[0] != key:
            if len(slot.streaks) >= _MAX_TOOLS and tool not in slot.streaks:
                slot.streaks.pop(next(iter(slot.streaks)))
            slot.streaks[tool] = (key, 0, state.model_calls)
            slot.emitted.pop(tool, None)
            return None
        repeats = found[1] + 1
        slot.streaks[tool] = (key, repeats, found[2])
        return escalate(
            self.config,
            slot.emitted,
            tool,
            self.name,
            repeats,
            1,
            # The error's text is content (it may quote the arguments): not in the reason.
            f"tool {tool!r} failed {repeats + 1} times in a row with the same error",
            f"The tool {tool} has failed {repeats + 1} times in a row with the same error. "
            "Retrying will not help; change approach or finish.",
            start_step=found[2],
            similarity=1.0,
            tool=tool,
        )
