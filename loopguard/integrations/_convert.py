"""LangChain objects to loopguard events: one place for both adapters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loopguard.events import Message, ToolCall, Usage
from loopguard.pricing.usage import usage_from_counts, usage_from_metadata

_ROLES = {
    "system": "system",
    "human": "user",
    "ai": "assistant",
    "tool": "tool",
    "AIMessageChunk": "assistant",
    "function": "tool",
    "chat": "user",
}


def text_of(content: Any) -> str:
    """The text of a message's content, which may be a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping):
                text = block.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "".join(parts)
    return "" if content is None else str(content)


def messages_of(messages: Sequence[Any]) -> list[Message]:
    out = []
    for m in messages:
        if type(m) is Message:
            out.append(m)
            continue
        kind = getattr(m, "type", "")
        # Only AI messages have tool calls; asking others makes pydantic raise and catch.
        calls = getattr(m, "tool_calls", None) if kind in _WITH_TOOL_CALLS else None
        out.append(
            Message(
                _ROLES.get(kind, "user"),
                text_of(getattr(m, "content", m)),
                [{"name": c["name"], "args": c.get("args", {})} for c in calls] if calls else None,
            )
        )
    return out


_WITH_TOOL_CALLS = frozenset(("ai", "AIMessageChunk"))


class PromptConverter:
    """Converts each run's prompts incrementally.

    An agent's prompt grows by a message or two per step, and the earlier messages are the same
    objects every time. Converting only what follows the unchanged prefix keeps the cost of a
    model start proportional to what is new, not to the length of the conversation. Agents
    rebuild some messages each call (create_agent its system prompt), so a message also matches
    an earlier one that converts the same (`_converts_alike`): pydantic's `==` over every
    field would cost more than converting the message again.
    """

    def __init__(self, max_runs: int = 1024) -> None:
        self._last: dict[str, tuple[list[Any], list[Message]]] = {}
        self.max_runs = max_runs

    def convert(self, run: str, raw: Sequence[Any]) -> list[Message]:
        last = self._last.get(run)
        if last is None:
            converted = messages_of(raw)
            if len(self._last) >= self.max_runs:  # bounded: forget the oldest run
                self._last.pop(next(iter(self._last)), None)
        else:
            old_raw, old = last
            n, limit = 0, min(len(raw), len(old_raw))
            while n < limit and (raw[n] is old_raw[n] or _converts_alike(raw[n], old_raw[n])):
                n += 1
            converted = old[:n] + messages_of(raw[n:]) if n else messages_of(raw)
        # A copy: a framework may append to the same list object between calls.
        self._last[run] = (list(raw), converted)
        return converted

    def last(self, run: str) -> list[Message]:
        """The latest prompt converted for `run` (empty when none is kept)."""
        found = self._last.get(run)
        return found[1] if found is not None else []

    def forget(self, run: str) -> None:
        self._last.pop(run, None)


def _converts_alike(a: Any, b: Any) -> bool:
    """Whether `messages_of` makes the same Message of both: same type, content, tool calls."""
    if type(a) is not type(b):
        return False
    if type(a) is Message:  # passed through as is: a dataclass, cheap to compare whole
        return bool(a == b)
    if getattr(a, "content", a) != getattr(b, "content", b):
        return False
    kind = getattr(a, "type", "")
    return bool(kind not in _WITH_TOOL_CALLS or a.tool_calls == b.tool_calls)


def tool_calls_of(message: Any) -> list[ToolCall]:
    calls = getattr(message, "tool_calls", None) or ()
    out = [ToolCall(c.get("name", ""), c.get("args", {})) for c in calls]
    for bad in getattr(message, "invalid_tool_calls", None) or ():
        out.append(ToolCall(bad.get("name") or "", bad.get("args") or ""))
    return out


def usage_of(message: Any, llm_output: Mapping[str, Any] | None = None) -> Usage:
    """Usage from `usage_metadata` (cache tokens from `input_token_details`, including
    langchain-aws's per-TTL cache-write breakdown), else from `llm_output`. No usage, or usage
    that cannot be trusted, is all zeros (`Usage.known` is false); it never raises."""
    um = getattr(message, "usage_metadata", None)
    if isinstance(um, Mapping) and um:
        return usage_from_metadata(um)
    usage = (llm_output or {}).get("usage") or (llm_output or {}).get("token_usage")
    if isinstance(usage, Mapping):
        return usage_from_counts(usage)
    return Usage()


# Where providers' LangChain integrations put the answering model and the stop reason in
# `response_metadata` (Bedrock Converse, OpenAI, Anthropic, Vertex / Gemini, Bedrock InvokeModel).
_RESPONSE_MODEL_KEYS = ("model_name", "model", "model_id")
_FINISH_KEYS = ("stopReason", "finish_reason", "stop_reason", "stop_reason_type")


def response_info(message: Any) -> tuple[str | None, str | None]:
    """(response model, finish reason) of an answer, when its provider reports them."""
    meta = getattr(message, "response_metadata", None)
    if not isinstance(meta, Mapping):
        return None, None
    found = []
    for keys in (_RESPONSE_MODEL_KEYS, _FINISH_KEYS):
        value = next((meta[k] for k in keys if isinstance(meta.get(k), str) and meta[k]), None)
        found.append(value)
    return found[0], found[1]


def model_id(metadata: Mapping[str, Any] | None, params: Mapping[str, Any] | None) -> str | None:
    """The model id LangChain reports for a call, or None (the caller falls back to a name)."""
    if metadata:
        value = metadata.get("ls_model_name")
        if isinstance(value, str) and value:
            return value
    if params:
        for key in ("model_id", "model", "model_name"):
            value = params.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def max_tokens_of(
    metadata: Mapping[str, Any] | None, params: Mapping[str, Any] | None
) -> int | None:
    for source, key in ((metadata, "ls_max_tokens"), (params, "max_tokens"), (params, "maxTokens")):
        if source:
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


# Metadata keys worth keeping as run labels (thread_id for conversation budgets, user keys for
# tenants); LangGraph's per-step bookkeeping and LangChain's own keys are not, but for
# ls_provider (the provider of a model call, for telemetry).
_SKIP_META_PREFIXES = ("langgraph_", "checkpoint_", "ls_", "lc_", "__")
_LABEL_TYPES = (str, int, float, bool)


_PLANS: dict[tuple[str, ...], tuple[str, ...]] = {}
_MAX_PLANS = 1024


def labels_of(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not metadata:
        return None
    # Which keys may be labels is worked out once per key set: LangGraph sends a dozen keys
    # with every call (langgraph_step, langgraph_node, ...), in a few distinct sets.
    keys = tuple(metadata)
    plan = _PLANS.get(keys)
    if plan is None:
        plan = tuple(k for k in keys if not k.startswith(_SKIP_META_PREFIXES) or k == "ls_provider")
        if len(_PLANS) < _MAX_PLANS:
            _PLANS[keys] = plan
    out = None
    for k in plan:
        v = metadata[k]
        if isinstance(v, _LABEL_TYPES):  # not LangChain's dicts and lists
            if out is None:
                out = {}
            out[k] = v
    return out


def agent_of(metadata: Mapping[str, Any] | None) -> str | None:
    """The agent a run's metadata names: `loopguard_agent`, else LangGraph's `lc_agent_name`."""
    if metadata:
        for key in ("loopguard_agent", "lc_agent_name"):
            value = metadata.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def stop_message(verdict: Any) -> str:
    """What an agent stopped gracefully tells its caller."""
    return (
        f"Stopped by loopguard [{verdict.detector}] at model call {verdict.step}: {verdict.reason}"
    )
