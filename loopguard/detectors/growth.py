"""Snowballing output: each answer longer than the last, step after step.

An agent that rewrites its whole work product on every step (appending to it each time) pays
for ever longer outputs and ever longer prompts. A step "grows" when its output tokens are at
least `ratio` times the previous step's; repeats count consecutive growing steps, and only
once an output is at least `min_tokens` long (short answers growing is normal conversation).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, PositiveInt

from loopguard.detectors._escalation import Escalation, escalate
from loopguard.events import Event, ModelEnd
from loopguard.state import RunState
from loopguard.tokens import estimate_text_tokens
from loopguard.verdict import Action, Verdict


class GrowthConfig(Escalation):
    """Policy section `growth`. Repeats count consecutive steps whose output grew."""

    warn_repeats: PositiveInt | None = 2
    nudge_repeats: PositiveInt | None = 3
    abort_repeats: PositiveInt | None = 3
    ratio: float = Field(1.3, gt=1, le=100)
    """A step grows when its output is at least this many times the previous step's."""
    min_tokens: PositiveInt = 1000
    """Growth is only judged once the latest output has at least this many tokens."""


class _Slot:
    __slots__ = ("emitted", "last", "since", "sizes", "streak")

    def __init__(self) -> None:
        self.last = 0
        self.streak = 0
        self.since = 0
        self.sizes: list[int] = []  # the streak's sizes, at most a few
        self.emitted: dict[object, Action] = {}


class Growth:
    name: ClassVar[str] = "growth"
    events: ClassVar[tuple[type[Event], ...]] = (ModelEnd,)

    def __init__(self, config: GrowthConfig) -> None:
        self.config = config

    def __call__(self, state: RunState, event: Event) -> Verdict | None:
        cfg = self.config
        slot: _Slot = state.slot(self.name, _Slot)
        size = event.usage.output_tokens or estimate_text_tokens(event.text)  # type: ignore[attr-defined]
        if slot.last and size >= slot.last * cfg.ratio:
            if slot.streak == 0:
                slot.since, slot.sizes = max(1, state.model_calls - 1), [slot.last]
            slot.streak += 1
            slot.sizes = ([*slot.sizes, size])[-8:]
        else:
            slot.streak, slot.sizes = 0, []
        slot.last = size
        if not slot.streak:
            slot.emitted.clear()
            return None
        if size < cfg.min_tokens or cfg.level(slot.streak) is Action.OK:
            return None
        sizes = " -> ".join(f"{s:,}" for s in slot.sizes)
        return escalate(
            cfg,
            slot.emitted,
            None,
            self.name,
            slot.streak,
            1,
            f"output grew {slot.streak} steps in a row ({sizes} tokens)",
            f"Your answers have grown {slot.streak} steps in a row ({sizes} tokens). Do not "
            "repeat earlier output; answer with only what is new, or finish.",
            start_step=slot.since,
            sizes=list(slot.sizes),
        )
