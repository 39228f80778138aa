"""Plain run limits: model calls, tool calls (also per tool), seconds, tokens.

Checked at model and tool start, before the call goes out: with `max_model_calls = 3` the
fourth call is refused, so exactly three go out. Thresholds are worked out once per policy.
The settings are the policy section `limits`; the same keys at the top level of a policy (how
they were always written) mean the same.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt

from loopguard.events import Event, ModelStart, Token, ToolStart
from loopguard.state import RunState
from loopguard.verdict import Verdict, abort, warn

_NAMES = ("model_calls", "tool_calls", "seconds", "tokens")


class LimitsConfig(BaseModel):
    """Policy section `limits`: a hard stop at max_*, a warning at warn_* (default: the
    policy's warn_ratio of max). Every limit is optional (None = no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)

    max_model_calls: NonNegativeInt | None = 150
    warn_model_calls: NonNegativeInt | None = None
    max_tool_calls: NonNegativeInt | None = 300
    warn_tool_calls: NonNegativeInt | None = None
    max_calls_per_tool: dict[str, NonNegativeInt] = Field(default_factory=dict)
    """Per tool name, e.g. `{web_search = 10}`; warned at warn_ratio of each."""
    max_seconds: NonNegativeFloat | None = None
    warn_seconds: NonNegativeFloat | None = None
    max_tokens: NonNegativeInt | None = None
    """Input plus output tokens over the whole run (cache tokens are part of input)."""
    warn_tokens: NonNegativeInt | None = None
    max_depth: NonNegativeInt | None = 8
    """How deeply agents may nest (a sub-agent called as a tool or run as a subgraph inside a
    guarded run is 1 deep): a run nested deeper than the max_depth of its own policy or of any
    run enclosing it is refused at its start. The guard enforces it, not this detector."""

    def check(self) -> None:
        """Raises ValueError when a warning threshold is above its limit. `Policy` calls it
        once every key is valid, so the error names the keys as a policy file writes them."""
        for name in _NAMES:
            hard, soft = getattr(self, f"max_{name}"), getattr(self, f"warn_{name}")
            if hard is not None and soft is not None and soft > hard:
                raise ValueError(f"warn_{name} ({soft}) must not be above max_{name} ({hard})")

    def warn_at(self, name: str, ratio: float) -> float | None:
        """The warning threshold of limit `name` (e.g. "model_calls")."""
        soft: float | None = getattr(self, f"warn_{name}")
        if soft is not None:
            return soft
        hard: float | None = getattr(self, f"max_{name}")
        return None if hard is None else hard * ratio


class RunLimits:
    name: ClassVar[str] = "limits"
    # On streamed text it only reads the clock: a piece of a few chunks is as good a moment.
    token_pieces: ClassVar[bool] = True

    def __init__(self, config: LimitsConfig | None = None, warn_ratio: float = 0.8) -> None:
        config = config if config is not None else LimitsConfig()
        self.max_model_calls = config.max_model_calls
        self.warn_model_calls = config.warn_at("model_calls", warn_ratio)
        self.max_tool_calls = config.max_tool_calls
        self.warn_tool_calls = config.warn_at("tool_calls", warn_ratio)
        self.per_tool = dict(config.max_calls_per_tool)
        self.warn_ratio = warn_ratio
        self.max_seconds = config.max_seconds
        self.warn_seconds = config.warn_at("seconds", warn_ratio)
        self.max_tokens = config.max_tokens
        self.warn_tokens = config.warn_at("tokens", warn_ratio)
        # Streamed chunks only matter when there is a clock to watch mid-answer.
        self.events: tuple[type[Event], ...] = (
            (ModelStart, ToolStart, Token)
            if self.max_seconds is not None
            else (ModelStart, ToolStart)
        )

    def __call__(self, state: RunState, event: ModelStart | ToolStart | Token) -> Verdict | None:
        if self.max_seconds is not None:
            elapsed = event.ts - state.started
            if elapsed >= self.max_seconds:
                return abort(
                    self.name,
                    f"run exceeded max_seconds={self.max_seconds:g} ({elapsed:.1f}s elapsed)",
                    limit="max_seconds",
                    value=round(elapsed, 3),
                    max=self.max_seconds,
                )
            if type(event) is Token:
                return None
            if self.warn_seconds is not None and elapsed >= self.warn_seconds:
                found = self._once(
                    state,
                    "seconds",
                    f"seconds at {elapsed:.1f}; the limit is {self.max_seconds:g}",
                    round(elapsed, 3),
                    self.max_seconds,
                )
                if found:
                    return found
        if type(event) is ModelStart:
            return self._model_start(state, event)
        if type(event) is ToolStart:
            return self._tool_start(state, event)
        return None  # a streamed chunk, with no clock to watch

    def _model_start(self, state: RunState, event: ModelStart) -> Verdict | None:
        n = state.model_calls + 1  # the call about to go out
        if self.max_model_calls is not None and n > self.max_model_calls:
            return abort(
                self.name,
                f"model call {n} would exceed max_model_calls={self.max_model_calls}",
                limit="max_model_calls",
                value=n,
                max=self.max_model_calls,
            )
        used = state.usage.input_tokens + state.usage.output_tokens
        if self.max_tokens is not None:
            projected = used + event.input_tokens + (event.max_tokens or 0)
            if projected > self.max_tokens:
                return abort(
                    self.name,
                    f"model call {n} could bring the run to {projected} "
                    f"tokens, over max_tokens={self.max_tokens}",
                    limit="max_tokens",
                    value=used,
                    projected=projected,
                    max=self.max_tokens,
                )
        if self.warn_model_calls is not None and n >= self.warn_model_calls:
            found = self._once(
                state,
                "model_calls",
                f"model calls at {n}; the limit is {self.max_model_calls}",
                n,
                self.max_model_calls,
            )
            if found:
                return found
        if self.warn_tokens is not None and used >= self.warn_tokens:
            return self._once(
                state,
                "tokens",
                f"tokens at {used}; the limit is {self.max_tokens}",
                used,
                self.max_tokens,
            )
        return None

    def _tool_start(self, state: RunState, event: ToolStart) -> Verdict | None:
        n = state.tool_calls + 1
        if self.max_tool_calls is not None and n > self.max_tool_calls:
            return abort(
                self.name,
                f"tool call {n} would exceed max_tool_calls={self.max_tool_calls}",
                limit="max_tool_calls",
                value=n,
                max=self.max_tool_calls,
                tool=event.tool,
            )
        per_tool = self.per_tool.get(event.tool) if self.per_tool else None
        if per_tool is not None:
            k = state.tool_counts.get(event.tool, 0) + 1
            if k > per_tool:
                return abort(
                    self.name,
                    f"call {k} of tool {event.tool!r} would exceed "
                    f"max_calls_per_tool.{event.tool}={per_tool}",
                    limit=f"max_calls_per_tool.{event.tool}",
                    value=k,
                    max=per_tool,
                    tool=event.tool,
                )
            if k >= per_tool * self.warn_ratio:
                found = self._once(
                    state,
                    f"tool:{event.tool}",
                    f"call {k} of tool {event.tool!r}; the limit is {per_tool}",
                    k,
                    per_tool,
                )
                if found:
                    return found
        if self.warn_tool_calls is not None and n >= self.warn_tool_calls:
            return self._once(
                state,
                "tool_calls",
                f"tool calls at {n}; the limit is {self.max_tool_calls}",
                n,
                self.max_tool_calls,
            )
        return None

    def _once(
        self, state: RunState, key: str, reason: str, value: float, hard: float | None
    ) -> Verdict | None:
        warned = state.slot(self.name, set)
        if key in warned:
            return None
        warned.add(key)
        return warn(self.name, reason, limit=key, value=value, max=hard)
