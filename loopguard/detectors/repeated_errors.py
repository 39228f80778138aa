"""Retry storms: the same tool failing with the same error, again and again.

Errors are compared after normalization (numbers, timestamps and ids masked), so "rate limited,
retry in 3s" and "rate limited, retry in 5s" are the same error. Unlike `tool_repeat`, the
arguments may change between attempts: a model that keeps nudging a parameter and keeps getting
the same validation error is stuck too. A success of the tool ends the streak, so a retry after
one transient error, or a batch in which some items fail, is not a storm; so does another tool's
result that brings something new to the run (the progress signal): an agent that looks
alternatives up between two attempts is finding out more, not retrying blindly.

Errors that arrive as ordinary tool output count too (`normalize.error_kind`): "Error 404 File
not found", an HTTP 5xx page, a traceback, "command not found", a non-zero exit code printed by
a shell tool. Their reasons name the kind of error, never the output.
"""

from __future__ import annotations

from typing import ClassVar

from loopguard.detectors._escalation import Escalation, escalate, forget
from loopguard.detectors._progress import novelty
from loopguard.events import Event, ToolEnd, ToolFailed
from loopguard.normalize import error_kind, normalize
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

    def __call__(self, state: RunState, event: ToolEnd | ToolFailed) -> Verdict | None:
        slot: _Slot = state.slot(self.name, _Slot)
        tool = event.tool
        if type(event) is ToolEnd:
            kind = error_kind(event.output)
            if kind is None:
                ended = slot.streaks.pop(tool, None)
                if ended is not None:
                    forget(self.config, slot.emitted, (tool, ended[0]))
                elif slot.streaks and novelty(state, event).new:
                    # Another tool brought something new: the agent is finding out more
                    # before it tries again, so what failed before starts afresh.
                    slot.streaks.clear()
                    forget(self.config, slot.emitted)
                return None
            text, shown = event.output[:300], kind
        else:
            text, shown = event.error, "the same error"
        key = hash(normalize(text))  # compared within this process only
        found = slot.streaks.get(tool)
        if found is None or found[0] != key:
            if len(slot.streaks) >= _MAX_TOOLS and tool not in slot.streaks:
                slot.streaks.pop(next(iter(slot.streaks)))
            slot.streaks[tool] = (key, 0, state.model_calls)
            return None
        repeats = found[1] + 1
        slot.streaks[tool] = (key, repeats, found[2])
        return escalate(
            self.config,
            slot.emitted,
            (tool, key),
            self.name,
            repeats,
            1,
            # The error's text is content (it may quote the arguments): not in the reason.
            f"tool {tool!r} failed {repeats + 1} times in a row with {shown}",
            f"The tool {tool} has failed {repeats + 1} times in a row with {shown}. Retrying "
            "will not help; change approach or finish.",
            start_step=found[2],
            similarity=1.0,
            tool=tool,
        )
