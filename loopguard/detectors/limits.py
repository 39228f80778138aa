"""Plain run limits: model calls, tool calls (also per tool), seconds, tokens.

Checked at model and tool start, before the call goes out: with `max_model_calls = 3` the
fourth call is refused, so exactly three go out. Thresholds are worked out once per policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from loopguard.events import Event, ModelStart, Token, ToolStart
from loopguard.state import RunState
from loopguard.tokens import estimate_input_tokens
from loopguard.verdict import Verdict, abort, warn

if TYPE_CHECKING:
    from loopguard.policy import Policy


class RunLimits:
    name: ClassVar[str] = "limits"

    def __init__(self, policy: Policy) -> None:
        self.max_model_calls = policy.max_model_calls
        self.warn_model_calls = policy.warn_at("model_calls")
        self.max_tool_calls = policy.max_tool_calls
        self.warn_tool_calls = policy.warn_at("tool_calls")
        self.per_tool = dict(policy.max_calls_per_tool)
        self.warn_ratio = policy.warn_ratio
        self.max_seconds = policy.max_seconds
        self.warn_seconds = policy.warn_at("seconds")
        self.max_tokens = policy.max_tokens
        self.warn_tokens = policy.warn_at("tokens")
        # Streamed chunks only matter when there is a clock to watch mid-answer.
        self.events: tuple[type[Event], ...] = (
            (ModelStart, ToolStart, Token)
            if self.max_seconds is not None
            else (ModelStart, ToolStart)
        )

    def __call__(self, state: RunState, event: Event) -> Verdict | None:
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
        return self._tool_start(state, event)  # type: ignore[arg-type]

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
            projected = used + estimate_input_tokens(event.messages) + (event.max_tokens or 0)
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
