"""Privacy: prompt, completion and tool text leave the process only when the user opts in."""

from __future__ import annotations

import json
import os
from typing import Any

from loopguard import _safe
from loopguard.events import Message, ToolCall

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# With opt-in, each content value (a message's text, a tool's arguments or result, an error
# message) is exported up to this many characters, and a message history up to
# MAX_HISTORY_CHARS of JSON (its most recent messages).
MAX_CHARS = 4096
MAX_HISTORY_CHARS = 65_536


def capture_enabled(policy: Any) -> bool:
    """The GenAI convention's env switch, or the policy's `capture_content` flag."""
    if os.environ.get(CAPTURE_ENV, "").strip().lower() == "true":
        return True
    return bool(getattr(policy, "capture_content", False))


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def clip(value: Any) -> Any:
    """A content value bounded to MAX_CHARS characters (strings inside lists and dicts too)."""
    if type(value) is str:
        if len(value) <= MAX_CHARS:
            return value
        return f"{value[:MAX_CHARS]}...[{len(value):,} chars]"
    if isinstance(value, dict):
        return {k: clip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clip(v) for v in value]
    return value


def input_messages(messages: list[Message]) -> str:
    """`gen_ai.input.messages`: the conventions' JSON shape (role plus typed parts), each text
    clipped, the oldest messages left out beyond MAX_HISTORY_CHARS."""
    out: list[str] = []
    size = 0
    for m in reversed(messages):
        parts: list[dict[str, Any]] = []
        if m.role == "tool":
            parts.append({"type": "tool_call_response", "response": clip(m.content)})
        elif m.content:
            parts.append({"type": "text", "content": clip(m.content)})
        for call in m.tool_calls or ():
            parts.append(
                {"type": "tool_call", "name": call.get("name"), "arguments": clip(call.get("args"))}
            )
        item = dumps({"role": m.role, "parts": parts})
        size += len(item) + 1
        if size > MAX_HISTORY_CHARS and out:
            break
        out.append(item)
    return "[" + ",".join(reversed(out)) + "]"


def output_messages(text: str, tool_calls: list[ToolCall]) -> str:
    """`gen_ai.output.messages` for one completion."""
    parts: list[dict[str, Any]] = []
    if text:
        parts.append({"type": "text", "content": clip(text)})
    for call in tool_calls:
        parts.append({"type": "tool_call", "name": call.name, "arguments": clip(call.args)})
    finish = "tool_call" if tool_calls else "stop"
    return dumps([{"role": "assistant", "parts": parts, "finish_reason": finish}])


def attr_value(value: Any) -> str | bool | int | float:
    """A span attribute value: primitives as they are, anything else as JSON."""
    if isinstance(value, (str, bool, int, float)):
        return value
    return dumps(value)


def evidence_value(key: str, value: Any, capture: bool) -> str | bool | int | float:
    """An evidence value as a span attribute: content (see `_safe.CONTENT_KEYS`) only with
    opt-in and clipped, otherwise its size and digest; other strings escaped and bounded."""
    if key in _safe.CONTENT_KEYS:
        return attr_value(clip(value)) if capture else _safe.withheld(value)
    if type(value) is float:
        return _safe.sig(value)
    if type(value) is bool or type(value) is int:
        return value
    # Strings and JSON (lists of tool names...): escaped and bounded like a reason.
    return _safe.text(value if type(value) is str else dumps(value))
