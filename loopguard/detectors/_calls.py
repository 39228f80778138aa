"""Tool calls as the tool detectors see them: each result paired with the call that produced it.

A result event carries no arguments, so the call's canonical arguments are remembered from its
start. Several detectors look at the same call; the work is done once per event and shared
through one slot of the run (`tool_repeat`, `cycle` and any detector that needs it).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

from loopguard.events import Event, ToolEnd, ToolFailed, ToolStart
from loopguard.normalize import canonical_args, normalize, same_call_result
from loopguard.state import RunState

_SLOT = "_tool_calls"
_MAX_PENDING = 32


class Finished(NamedTuple):
    tool: str
    args: str  # canonical arguments ("" when the start was never seen)
    step: int  # the model call that asked for it
    outcome: tuple[bool, int]  # (is it an error, hash of the result or error, noise masked:
    # `same_call_result` for a result, `normalize` for an error)


class _Tracker:
    __slots__ = ("finished", "pending", "result", "started")

    def __init__(self) -> None:
        self.pending: OrderedDict[Any, tuple[str, int]] = OrderedDict()
        self.started: Event | None = None  # the last start recorded (events are seen by
        self.finished: Event | None = None  # several detectors; do the work once)
        self.result: Finished | None = None


def started(state: RunState, event: ToolStart) -> None:
    """Remember a call's canonical arguments until its result comes."""
    tracker: _Tracker = state.slot(_SLOT, _Tracker)
    if tracker.started is event:
        return
    tracker.started = event
    key = event.id or event.tool
    pending = tracker.pending
    pending.pop(key, None)
    pending[key] = (canonical_args(event.args), state.model_calls)
    if len(pending) > _MAX_PENDING:
        pending.popitem(last=False)


def finished(state: RunState, event: ToolEnd | ToolFailed) -> Finished:
    """The call `event` ends, with its outcome."""
    tracker: _Tracker = state.slot(_SLOT, _Tracker)
    if tracker.finished is event and tracker.result is not None:
        return tracker.result
    found = tracker.pending.pop(event.id or event.tool, None)
    if found is None and event.id is not None:
        found = tracker.pending.pop(event.tool, None)
    args, step = found if found is not None else ("", state.model_calls)
    # Python's own str hash: compared only within this process, cached on the string, and much
    # cheaper than a cryptographic digest on every tool result.
    if type(event) is ToolEnd:
        outcome = (False, hash(same_call_result(event.output)))
    else:
        outcome = (True, hash(normalize(event.error)))
    tracker.finished, tracker.result = event, Finished(event.tool, args, step, outcome)
    return tracker.result
