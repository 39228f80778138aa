"""Privacy: prompt, completion and tool text leave the process only when the user opts in."""

from __future__ import annotations

import json
import os
from typing import Any

from loopguard.events import Message, ToolCall

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

NOT_CAPTURED = "<not captured; opt in with capture_content>"

# Evidence keys that carry content by the detectors' naming convention; without opt-in their
# values are replaced by a note of their size.
CONTENT_KEYS = frozenset(
    {
        "args",
        "arguments",
        "text",
        "content",
        "output",
        "messages",
        "prompt",
        "completion",
        "result",
        "sample",
    }
)


def capture_enabled(policy: Any) -> bool:
    """The GenAI convention's env switch, or the policy's `capture_content` flag."""
    if os.environ.get(CAPTURE_ENV, "").strip().lower() == "true":
        return True
    return bool(getattr(policy, "capture_content", False))


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def input_messages(messages: list[Message]) -> str:
    """`gen_ai.input.messages`: the conventions' JSON shape (role plus typed parts)."""
    out = []
    for m in messages:
        parts: list[dict[str, Any]] = []
        if m.role == "tool":
            parts.append({"type": "tool_call_response", "response": m.content})
        elif m.content:
            parts.append({"type": "text", "content": m.content})
        for call in m.tool_calls or ():
            parts.append(
                {"type": "tool_call", "name": call.get("name"), "arguments": call.get("args")}
            )
        out.append({"role": m.role, "parts": parts})
    return dumps(out)


def output_messages(text: str, tool_calls: list[ToolCall]) -> str:
    """`gen_ai.output.messages` for one completion."""
    parts: list[dict[str, Any]] = []
    if text:
        parts.append({"type": "text", "content": text})
    for call in tool_calls:
        parts.append({"type": "tool_call", "name": call.name, "arguments": call.args})
    finish = "tool_call" if tool_calls else "stop"
    return dumps([{"role": "assistant", "parts": parts, "finish_reason": finish}])


def attr_value(value: Any) -> str | bool | int | float:
    """A span attribute value: primitives as they are, anything else as JSON."""
    if isinstance(value, (str, bool, int, float)):
        return value
    return dumps(value)


def evidence_value(key: str, value: Any, capture: bool) -> str | bool | int | float:
    if not capture and key in CONTENT_KEYS:
        return NOT_CAPTURED
    return attr_value(value)
