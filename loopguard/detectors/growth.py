"""Snowballing output: each answer longer than the last, step after step.

An agent that rewrites its whole work product on every step (appending to it each time) pays
for ever longer outputs and ever longer prompts. A step "grows" when its output tokens are at
least `ratio` times the previous step's; repeats count consecutive growing steps, and only
once an output is at least `min_tokens` long (short answers growing is normal conversation).

The context snowball is the same on the input side: every call re-sends (and re-bills) all
that the run has read so far, so when each step brings back a long result, the dollars per call
rise step after step even at a real model's pace, where no per-minute rate is reached. A call
*re-bills a growing context* when its input grew, beyond the previous call's own answer, by at
least `input_tokens`. After `input_steps` such calls in a row, a call that asks for yet more
(its answer calls a tool) is stopped, once the input is at least `input_ratio` times what it
was before the run of calls began (the reading, re-sent, is now most of every call's bill): a
warning at half of them, a nudge one call before. Tool results are what grows it: an agent
writing long sections grows its prompt by its own answers, which do not count; one that
summarises as it reads keeps its input flat; one that reads and then answers is not stopped at
its answer; one whose prompt is large already (many tools, a long system prompt) is stopped
only when the reading has come to dominate it.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, PositiveInt

from loopguard.detectors._escalation import Escalation, escalate, forget
from loopguard.events import Event, ModelEnd
from loopguard.state import RunState
from loopguard.tokens import estimate_text_tokens
from loopguard.verdict import Action, Verdict, abort, nudge, warn


class GrowthConfig(Escalation):
    """Policy section `growth`. Repeats count consecutive steps whose output grew."""

    warn_repeats: PositiveInt | None = 2
    nudge_repeats: PositiveInt | None = 3
    abort_repeats: PositiveInt | None = 3
    ratio: float = Field(1.3, gt=1, le=100)
    """A step grows when its output is at least this many times the previous step's."""
    min_tokens: PositiveInt = 1000
    """Growth is only judged once the latest output has at least this many tokens."""
    input_tokens: PositiveInt | None = 1000
    """A call re-bills a growing context when its input grew by at least this many tokens
    beyond the previous call's answer (None switches the input rule off)."""
    input_steps: int = Field(5, ge=2, le=1000)
    """Abort at this many such calls in a row when the last asks for more (calls a tool); warn
    at half of them, nudge one call before."""
    input_ratio: float = Field(3.0, ge=1, le=1000)
    """...and only once the input is at least this many times the input before the run of
    calls began: the re-sent reading is most of every call's bill."""


class _Slot:
    __slots__ = (
        "emitted",
        "fed",
        "fed_since",
        "first",
        "last",
        "last_cost",
        "last_input",
        "nudged",
        "since",
        "sizes",
        "streak",
    )

    def __init__(self) -> None:
        self.last = 0
        self.streak = 0
        self.since = 0
        self.sizes: list[int] = []  # the streak's sizes, at most a few
        self.emitted: dict[object, Action] = {}
        self.last_input = 0  # the previous call's input tokens
        self.last_cost: float | None = None  # and its dollars
        self.fed = 0  # calls in a row whose input grew by at least input_tokens
        self.fed_since = 0  # the model call where that run began
        self.first: tuple[int, float | None] = (0, None)  # the input and cost before it
        self.nudged = False  # this run of calls has had its one nudge


class Growth:
    name: ClassVar[str] = "growth"
    events: ClassVar[tuple[type[Event], ...]] = (ModelEnd,)

    def __init__(self, config: GrowthConfig) -> None:
        self.config = config

    def __call__(self, state: RunState, event: ModelEnd) -> Verdict | None:
        slot: _Slot = state.slot(self.name, _Slot)
        fed = self._input(state, slot, event)
        out = self._output(state, slot, event)
        # The stronger verdict of the two rules (the output rule's on a tie, so that each rule's
        # record of what it said is what was said); the input rule's nudge counts once given.
        if fed is None or (out is not None and out.action >= fed.action):
            return out
        if fed.action is Action.NUDGE:
            slot.nudged = True
        return fed

    def _output(self, state: RunState, slot: _Slot, event: ModelEnd) -> Verdict | None:
        """The output rule: answers growing by `ratio` step after step."""
        cfg = self.config
        size = event.usage.output_tokens or estimate_text_tokens(event.text)
        if slot.last and size >= slot.last * cfg.ratio:
            if slot.streak == 0:
                slot.since, slot.sizes = max(1, state.model_calls - 1), [slot.last]
            slot.streak += 1
            slot.sizes = ([*slot.sizes, size])[-8:]
        else:
            slot.streak, slot.sizes = 0, []
        slot.last = size
        if not slot.streak:
            forget(cfg, slot.emitted)
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

    def _input(self, state: RunState, slot: _Slot, event: ModelEnd) -> Verdict | None:
        """The input rule: calls in a row re-billing a context that grew by a long result."""
        cfg = self.config
        tokens = event.usage.input_tokens
        before, slot.last_input = slot.last_input, tokens
        before_cost, slot.last_cost = slot.last_cost, state.last_call_cost
        if cfg.input_tokens is None or not before or tokens - before - slot.last < cfg.input_tokens:
            slot.fed, slot.nudged = 0, False
            return None
        if slot.fed == 0:
            slot.fed_since, slot.first = state.model_calls, (before, before_cost)
        slot.fed += 1
        # Stopping saves money only when the run asks for more: a call that answers (no tool
        # call) is where a reader ends, not where a snowball goes on.
        due = (
            slot.fed >= cfg.input_steps - 1
            and bool(event.tool_calls)
            and tokens >= slot.first[0] * cfg.input_ratio
        )
        if due and slot.nudged:  # nudged on an earlier call, so fed >= input_steps now
            level = Action.ABORT
        elif due:
            level = Action.NUDGE  # the one chance, always given before the stop
        elif slot.fed == (cfg.input_steps + 1) // 2:
            level = Action.WARN
        else:
            return None
        return self._input_verdict(state, slot, level, tokens)

    def _input_verdict(self, state: RunState, slot: _Slot, level: Action, tokens: int) -> Verdict:
        cfg = self.config
        before, first_cost = slot.first
        cost = state.last_call_cost
        per_call = (
            f"; ${first_cost:.3f} -> ${cost:.3f} per call"
            if first_cost is not None and cost is not None
            else ""
        )
        reason = (
            f"the input grew by at least {cfg.input_tokens:,} tokens on each of the last "
            f"{slot.fed} calls ({before:,} -> {tokens:,} tokens, {tokens / before:.1f}x"
            f"{per_call}): every call re-bills all that was read"
        )
        evidence = {
            "rule": "input",
            "start_step": slot.fed_since,
            "repeats": slot.fed,
            "input_tokens": [before, tokens],
            "usd_per_call": [first_cost, cost],
        }
        if level is Action.ABORT:
            return abort(self.name, reason, **evidence)
        if level is Action.NUDGE:
            message = (
                f"Each of your last {slot.fed} steps added a long result that every later "
                "call re-sends and re-bills. Do not read more in full: answer from what you "
                "have, or summarise and finish."
            )
            return nudge(self.name, reason, message=message, **evidence)
        return warn(self.name, reason, **evidence)
