"""Identical tool calls: the same call returning the same result is no progress.

Calls are keyed by tool name and canonical arguments (keys sorted, strings folded), so
`{"a": 1, "b": 2}` and `{"b": 2, "a": 1}` are the same call. Results are compared after masking
what changes on every call anyway (`normalize.same_call_result`: timestamps, UUIDs, request ids,
relative times, ids the service made up for this call; durations, percentages and counters in
long results); other numbers are kept.

- The same call returning the same result (or the same error) again, with no other tool call
  between, is a repeat; it escalates warn, nudge, abort (`*_repeats`). A call repeated with
  other work between (run the tests, edit, run the tests again) is not: repeating patterns of
  several calls are `cycle`'s and `similarity`'s.
- The same call returning a *new* result is progress: an agent polling a job. Polling has its
  own, looser cap (`max_polls`), so an agent that polls a long job is not stopped, but one that
  polls forever is.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

from pydantic import PositiveInt, model_validator

from loopguard.detectors._calls import finished, started
from loopguard.detectors._escalation import Escalation, escalate
from loopguard.events import Event, ToolEnd, ToolFailed, ToolStart
from loopguard.state import RunState
from loopguard.verdict import Action, Verdict, abort, warn

_MAX_KEYS = 64


class ToolRepeatConfig(Escalation):
    """Policy section `tool_repeat`. Repeats count identical calls with identical results."""

    warn_polls: PositiveInt | None = 20
    """Warn when one call has returned a new result this many times (polling)."""
    max_polls: PositiveInt | None = 40
    """Abort when one call has returned a new result this many times (polling forever)."""

    @model_validator(mode="after")
    def _polls_ordered(self) -> ToolRepeatConfig:
        if (
            self.warn_polls is not None
            and self.max_polls is not None
            and self.warn_polls > self.max_polls
        ):
            raise ValueError(
                f"warn_polls ({self.warn_polls}) must not be above max_polls ({self.max_polls})"
            )
        return self


class _Record:
    __slots__ = ("first", "outcome", "polls", "polls_warned", "since", "stale")

    def __init__(self, outcome: tuple[bool, int], step: int) -> None:
        self.outcome = outcome
        self.stale = 0  # consecutive repeats of the same result
        self.polls = 0  # times this call returned something new
        self.since = step  # model call where the current run of same results began
        self.first = step  # model call of the first call (where polling began)
        self.polls_warned = False


class _Slot:
    __slots__ = ("emitted", "last", "records")

    def __init__(self) -> None:
        self.last: tuple[str, str] | None = None  # the previous finished call
        self.records: OrderedDict[tuple[str, str], _Record] = OrderedDict()
        self.emitted: dict[object, Action] = {}


class ToolRepeat:
    name: ClassVar[str] = "tool_repeat"
    events: ClassVar[tuple[type[Event], ...]] = (ToolStart, ToolEnd, ToolFailed)

    def __init__(self, config: ToolRepeatConfig) -> None:
        self.config = config

    def __call__(self, state: RunState, event: ToolStart | ToolEnd | ToolFailed) -> Verdict | None:
        slot: _Slot = state.slot(self.name, _Slot)
        if type(event) is ToolStart:
            started(state, event)
            return None
        _, args, step, outcome = finished(state, event)
        key = (event.tool, args)
        consecutive, slot.last = slot.last == key, key
        record = slot.records.get(key)
        if record is None:
            slot.records[key] = _Record(outcome, step)
            if len(slot.records) > _MAX_KEYS:
                slot.records.popitem(last=False)
            return None
        slot.records.move_to_end(key)
        if record.outcome == outcome:
            if consecutive:
                record.stale += 1
            else:  # other work came between: count again from here
                record.stale, record.since = 0, step
        else:
            record.outcome, record.stale, record.since = outcome, 0, step
            record.polls += 1
            return self._polling(event.tool, args, record)
        # The reason and the nudge name the tool, never its arguments (they are content).
        tool = event.tool
        same = "error" if outcome[0] else "result"
        return escalate(
            self.config,
            slot.emitted,
            key,
            self.name,
            record.stale,
            1,
            f"the same call to {tool} returned the same {same} {record.stale + 1} times",
            f"You have made the same call to {tool} {record.stale + 1} times, with the same "
            f"{same}. Change approach or finish.",
            start_step=record.since,
            similarity=1.0,
            tool=tool,
        )

    def _polling(self, tool: str, args: str, record: _Record) -> Verdict | None:
        cfg = self.config
        if cfg.max_polls is not None and record.polls >= cfg.max_polls:
            return abort(
                self.name,
                f"the same call to {tool} was polled {record.polls + 1} times "
                f"(max_polls={cfg.max_polls})",
                tool=tool,
                polls=record.polls + 1,
                repeats=record.polls,
                period=1,
                start_step=record.first,
            )
        if (
            cfg.warn_polls is not None
            and record.polls >= cfg.warn_polls
            and not record.polls_warned
        ):
            record.polls_warned = True
            return warn(
                self.name,
                f"the same call to {tool} polled {record.polls + 1} times; the "
                f"limit is {cfg.max_polls}",
                tool=tool,
                polls=record.polls + 1,
                repeats=record.polls,
                period=1,
            )
        return None
