"""Token velocity: tokens and dollars per minute over a sliding window, and bursts.

Every finished model call adds its tokens (input plus output) and its cost to a window of the
last `window_seconds`; what is inside the window is the rate, not an extrapolation, so a run's
first quick calls are not mistaken for a flood. A second, short window (`burst_seconds`)
catches a sudden flood earlier. Cost needs a pricer (the guard's); without one only tokens
are watched. Prompt-cache reads do not count in the token rules (they are priced, at their own
low rate, by the dollar rule). Warnings come at `warn_ratio` of each limit; a model cannot be
nudged to slow down, so there is no nudge. Rates are published as `loopguard.tokens_per_minute` and
`loopguard.usd_per_minute` in the run's attributes.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveInt

from loopguard.events import Event, ModelEnd
from loopguard.state import RunState
from loopguard.verdict import Verdict, abort, warn


class VelocityConfig(BaseModel):
    """Policy section `velocity`."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)

    enabled: bool = True
    """Run this detector at all."""
    window_seconds: float = Field(60.0, gt=0, le=3600)
    """Length of the sliding window the per-minute rates are measured over."""
    max_tokens_per_minute: PositiveInt | None = 2_000_000
    """Abort when the window holds more than this many tokens per minute (input + output)."""
    max_usd_per_minute: NonNegativeFloat | None = 6.0
    """Abort when the window holds more than this many dollars per minute (needs prices)."""
    burst_seconds: float = Field(10.0, gt=0, le=600)
    """Length of the short window of the burst rule."""
    burst_tokens: PositiveInt | None = 500_000
    """Abort when the short window holds more than this many tokens."""
    warn_ratio: float = Field(0.5, gt=0, le=1)
    """Warn (once per rule and run) at this fraction of each limit."""


class _Window:
    """Sums of (tokens, dollars) over the last `span` seconds; O(1) amortised per add."""

    __slots__ = ("items", "span", "tokens", "usd")

    def __init__(self, span: float) -> None:
        self.span = span
        self.items: deque[tuple[float, int, float]] = deque()
        self.tokens = 0
        self.usd = 0.0

    def add(self, ts: float, tokens: int, usd: float) -> None:
        self.items.append((ts, tokens, usd))
        self.tokens += tokens
        self.usd += usd
        horizon = ts - self.span
        items = self.items
        while items and items[0][0] <= horizon:
            _, t, u = items.popleft()
            self.tokens -= t
            self.usd -= u


class _Slot:
    __slots__ = ("burst", "minute", "warned")

    def __init__(self, window: float, burst: float) -> None:
        self.minute = _Window(window)
        self.burst = _Window(burst)
        self.warned: set[str] = set()


class Velocity:
    name: ClassVar[str] = "velocity"
    events: ClassVar[tuple[type[Event], ...]] = (ModelEnd,)

    def __init__(self, config: VelocityConfig) -> None:
        self.config = config
        self._new_slot = lambda: _Slot(config.window_seconds, config.burst_seconds)
        # Below these (warn_ratio of each limit) a call has nothing to report: most calls.
        self._quiet = tuple(
            float("inf") if limit is None else limit * config.warn_ratio
            for limit in (
                config.max_tokens_per_minute,
                config.max_usd_per_minute,
                config.burst_tokens,
            )
        )

    def __call__(self, state: RunState, event: ModelEnd) -> Verdict | None:
        cfg = self.config
        slot: _Slot = state.slot(self.name, self._new_slot)
        usage = event.usage
        # Prompt-cache reads are left out of the token rules: a big cached context sent at a
        # fast pace is an agent at work, not a flood, and the dollar rule prices them at their
        # own (low) rate.
        tokens = usage.input_tokens - usage.cache_read_tokens + usage.output_tokens
        usd = state.last_call_cost or 0.0
        slot.minute.add(event.ts, tokens, usd)
        slot.burst.add(event.ts, tokens, usd)
        per_minute = 60.0 / cfg.window_seconds
        tpm = slot.minute.tokens * per_minute
        upm = slot.minute.usd * per_minute
        attributes = state.attributes
        attributes["loopguard.tokens_per_minute"] = tpm
        attributes["loopguard.usd_per_minute"] = upm
        quiet_tpm, quiet_upm, quiet_burst = self._quiet
        if tpm < quiet_tpm and upm < quiet_upm and slot.burst.tokens < quiet_burst:
            return None
        for rule, value, limit in (
            ("tokens_per_minute", tpm, cfg.max_tokens_per_minute),
            ("usd_per_minute", upm, cfg.max_usd_per_minute),
            ("burst_tokens", slot.burst.tokens, cfg.burst_tokens),
        ):
            if limit is None or value < limit * cfg.warn_ratio:
                continue
            if value > limit:
                return abort(
                    self.name,
                    f"{self._show(rule, value)} is over {rule}={limit:,}",
                    rule=rule,
                    value=round(value, 6),
                    max=limit,
                    start_step=self._start(slot, state),
                )
            if rule not in slot.warned:
                slot.warned.add(rule)
                return warn(
                    self.name,
                    f"{self._show(rule, value)}; the limit is {rule}={limit:,}",
                    rule=rule,
                    value=round(value, 6),
                    max=limit,
                )
        return None

    def _show(self, rule: str, value: float) -> str:
        if rule == "usd_per_minute":
            return f"${value:,.2f}/min"
        if rule == "burst_tokens":
            return f"{value:,.0f} tokens in {self.config.burst_seconds:g}s"
        return f"{value:,.0f} tokens/min"

    @staticmethod
    def _start(slot: _Slot, state: RunState) -> int:
        # The model call where the calls now in the short window began.
        return max(1, state.model_calls - len(slot.burst.items) + 1)
