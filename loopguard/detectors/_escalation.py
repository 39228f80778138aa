"""Escalation shared by the repeat detectors: warn, then nudge, then abort.

A loop is measured in *repeated steps*: steps that repeat the step one period earlier. With a
period of 1 (the same thing again) that is simply the number of repeats. The thresholds are in
repetitions of the whole loop, so they mean the same for every period:

- warn when the loop has repeated `warn_repeats` times,
- nudge (middleware: one message to the model) when it has repeated `nudge_repeats` times,
- abort on the first step that continues the loop after `abort_repeats` repetitions.

With the defaults (1, 2, 2) an A,B,A,B,A,B ping-pong is warned at its first repetition, nudged
at its second, and stopped if the very next step continues it: the model gets one chance to
heed the nudge. With `nudge_once` (the default) that chance is the only one: a nudged loop that
shows again later in the run (after a fresh step or two, the same loop is flagged again) is
stopped at once, instead of being warned and nudged all over.
"""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import BaseModel, ConfigDict, PositiveInt, model_validator

from loopguard.verdict import Action, Verdict, abort, nudge, warn

_CONFIG = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)


class Escalation(BaseModel):
    """Knobs every repeat detector has. `None` switches a level off."""

    model_config = _CONFIG

    enabled: bool = True
    """Run this detector at all."""
    warn_repeats: PositiveInt | None = 1
    """Warn when the loop has repeated this many times."""
    nudge_repeats: PositiveInt | None = 2
    """Nudge (one message to the model, through the middleware) at this many repetitions."""
    abort_repeats: PositiveInt | None = 2
    """Abort on the first step that continues the loop after this many repetitions."""
    nudge_once: bool = True
    """After its nudge, a loop flagged again (at any level, later in the run) is stopped."""

    @model_validator(mode="after")
    def _ordered(self) -> Escalation:
        levels = [
            (n, v)
            for n, v in (
                ("warn_repeats", self.warn_repeats),
                ("nudge_repeats", self.nudge_repeats),
                ("abort_repeats", self.abort_repeats),
            )
            if v is not None
        ]
        for (low, a), (high, b) in itertools.pairwise(levels):
            if a > b:
                raise ValueError(f"{low} ({a}) must not be above {high} ({b})")
        return self

    def level(self, repeated: int, period: int = 1) -> Action:
        """The action for a loop of `period` steps of which `repeated` steps repeat."""
        if self.abort_repeats is not None and repeated > self.abort_repeats * period:
            return Action.ABORT
        if self.nudge_repeats is not None and repeated >= self.nudge_repeats * period:
            return Action.NUDGE
        if self.warn_repeats is not None and repeated >= self.warn_repeats * period:
            return Action.WARN
        return Action.OK


_MAKE = {Action.WARN: warn, Action.NUDGE: nudge, Action.ABORT: abort}


def escalate(
    config: Escalation,
    emitted: dict[Any, Action],
    key: Any,
    detector: str,
    repeated: int,
    unit: int,
    reason: str,
    message: str,
    **evidence: Any,
) -> Verdict | None:
    """The verdict for a loop of `unit` steps per repetition, or None.

    Warn and nudge are given once per loop (`key`); the record of what was given is forgotten
    when the loop breaks (`repeated == 0`). Evidence gets `period` and `repeats` unless given.
    """
    action = config.level(repeated, unit)
    if action is Action.OK:
        if repeated == 0:
            forget(config, emitted, key)
        return None
    if action is not Action.ABORT and config.nudge_once and emitted.get(key) is Action.NUDGE:
        action = Action.ABORT  # it was nudged, and it goes on
        reason += " after a nudge"
    if action is not Action.ABORT:
        if emitted.get(key, Action.OK) >= action:
            return None
        if len(emitted) >= 64:  # bounded: forget the oldest loop
            emitted.pop(next(iter(emitted)))
        emitted[key] = action
    evidence.setdefault("period", unit)
    evidence.setdefault("repeats", repeated // unit)
    return _MAKE[action](detector, reason, message=message, **evidence)


_EVERY = object()


def forget(config: Escalation, emitted: dict[Any, Action], key: Any = _EVERY) -> None:
    """The loop `key` (by default every loop) broke: forget its warnings, so it is warned
    afresh if it comes back. A nudge is kept under `nudge_once`: the loop had its chance."""
    if not emitted:  # nothing to forget: most calls, and detectors call this on every event
        return
    keys = list(emitted) if key is _EVERY else [key] if key in emitted else []
    for k in keys:
        if not (config.nudge_once and emitted[k] is Action.NUDGE):
            del emitted[k]
