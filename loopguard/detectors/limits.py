"""Plain run limits: model calls, tool calls (also per tool), seconds, tokens.

Checked at model and tool start, before the call goes out: with `max_model_calls = 3` the
fourth call is refused, so exactly three go out.
"""

from __future__ import annotations

from typing import ClassVar

from loopguard.events import Event, ModelStart, Token, ToolStart
from loopguard.state import RunState
from loopguard.tokens import estimate_input_tokens
from loopguard.verdict import Verdict, abort, warn


class RunLimits:
    name: ClassVar[str] = "limits"
    events: ClassVar[tuple[type[Event], ...]] = (ModelStart, ToolStart, Token)

    def __call__(self, state: RunState, event: Event) -> Verdict | None:
        policy = state.policy
        elapsed = event.ts - state.started
        if policy.max_seconds is not None and elapsed >= policy.max_seconds:
            return abort(self.name, f"run exceeded max_seconds={policy.max_seconds:g} "
                         f"({elapsed:.1f}s elapsed)", limit="max_seconds",
                         value=round(elapsed, 3), max=policy.max_seconds)
        if type(event) is Token:
            return None
        if type(event) is ModelStart:
            return self._model_start(state, event) or self._soft(state, "seconds", elapsed)
        return self._tool_start(state, event) or self._soft(state, "seconds", elapsed)

    def _model_start(self, state: RunState, event: ModelStart) -> Verdict | None:
        policy = state.policy
        n = state.model_calls + 1  # the call about to go out
        if policy.max_model_calls is not None and n > policy.max_model_calls:
            return abort(self.name, f"model call {n} would exceed max_model_calls="
                         f"{policy.max_model_calls}", limit="max_model_calls", value=n,
                         max=policy.max_model_calls)
        if policy.max_tokens is not None:
            projected = (state.usage.total_tokens + estimate_input_tokens(event.messages)
                         + (event.max_tokens or 0))
            if projected > policy.max_tokens:
                return abort(self.name, f"model call {n} could bring the run to {projected} "
                             f"tokens, over max_tokens={policy.max_tokens}",
                             limit="max_tokens", value=state.usage.total_tokens,
                             projected=projected, max=policy.max_tokens)
        return (self._soft(state, "model_calls", n)
                or self._soft(state, "tokens", state.usage.total_tokens))

    def _tool_start(self, state: RunState, event: ToolStart) -> Verdict | None:
        policy = state.policy
        n = state.tool_calls + 1
        if policy.max_tool_calls is not None and n > policy.max_tool_calls:
            return abort(self.name, f"tool call {n} would exceed max_tool_calls="
                         f"{policy.max_tool_calls}", limit="max_tool_calls", value=n,
                         max=policy.max_tool_calls, tool=event.tool)
        per_tool = policy.max_calls_per_tool.get(event.tool)
        if per_tool is not None:
            k = state.tool_counts.get(event.tool, 0) + 1
            if k > per_tool:
                return abort(self.name, f"call {k} of tool {event.tool!r} would exceed "
                             f"max_calls_per_tool.{event.tool}={per_tool}",
                             limit=f"max_calls_per_tool.{event.tool}", value=k, max=per_tool,
                             tool=event.tool)
            if k >= per_tool * policy.warn_ratio:
                found = self._once(state, f"tool:{event.tool}", f"call {k} of tool "
                                   f"{event.tool!r}; the limit is {per_tool}", k, per_tool)
                if found:
                    return found
        return self._soft(state, "tool_calls", n)

    def _soft(self, state: RunState, name: str, value: float) -> Verdict | None:
        threshold = state.policy.warn_at(name)
        if threshold is None or value < threshold:
            return None
        hard = getattr(state.policy, f"max_{name}")
        return self._once(state, name, f"{name.replace('_', ' ')} at {value:g}; the limit "
                          f"is {hard:g}" if hard is not None else f"{name} at {value:g}",
                          value, hard)

    def _once(self, state: RunState, key: str, reason: str, value: float,
              hard: float | None) -> Verdict | None:
        warned = state.slot(self.name, set)
        if key in warned:
            return None
        warned.add(key)
        return warn(self.name, reason, limit=key, value=value, max=hard)
