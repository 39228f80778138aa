"""Plain events: what adapters report and the guard consumes.

These mirror the JSON Lines contract in docs/events.md (version 2). Adapters build them on the hot
path, so they are slotted dataclasses rather than pydantic models; validation happens once, when a
recording is read (`from_dict`, or `Decoder` for a recording's lines in order).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, final

from loopguard.errors import EventFormatError as EventFormatError  # also importable here

FORMAT_VERSION = 2
# Every version ever written, all still read. 2: a model_start may carry only the messages after
# the first `prefix` ones of its run's previous model_start (recordings grow linearly).
VERSIONS = (1, 2)

ROLES = ("system", "user", "assistant", "tool")
RUN_STATUSES = ("ok", "error", "aborted")


@dataclass(slots=True)
class Message:
    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            d["tool_calls"] = self.tool_calls
        return d


@dataclass(slots=True)
class ToolCall:
    name: str
    args: dict[str, Any] | str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": self.args}


# No model reads or writes this many tokens in one call: a larger count is a bug upstream.
MAX_CALL_TOKENS = 100_000_000


def token_count(value: Any) -> int | None:
    """A reported token count, 0 when absent, or None when it cannot be trusted: negative,
    NaN, infinite, fractional, above MAX_CALL_TOKENS, or not a number at all."""
    if value is None:
        return 0
    if type(value) is int:
        return value if 0 <= value <= MAX_CALL_TOKENS else None
    if type(value) is float and math.isfinite(value) and value.is_integer():
        return token_count(int(value))
    return None


@dataclass(slots=True)
class Usage:
    """Token counts of one call. No usage, or usage that could not be trusted, is all zeros
    (see `known`): adapters never pass on a negative, NaN or absurd count."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    # Of cache_write_tokens, those written with the 1-hour TTL (billed at their own rate).
    cache_write_1h_tokens: int = 0

    @property
    def known(self) -> bool:
        """Whether the provider reported this call's usage: every real call reads at least one
        input token."""
        return self.input_tokens > 0

    @property
    def total_tokens(self) -> int:
        # Cache tokens are reported inside input_tokens by LangChain's usage_metadata
        # (input_token_details), so they are not added again here.
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.cache_write_1h_tokens += other.cache_write_1h_tokens

    def to_dict(self) -> dict[str, int]:
        d = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
        }
        if (
            self.cache_write_1h_tokens
        ):  # optional: recordings without 1-hour writes stay as they were
            d["cache_write_1h_tokens"] = self.cache_write_1h_tokens
        return d


# The event types below are final: the guard dispatches on the exact type of an event (a
# dict lookup per event), so a subclass would reach no detector; type checkers know it too.
@dataclass(slots=True, kw_only=True)
class Event:
    """Common fields. `id`/`parent` are the framework's own ids of this call and its parent
    (LangChain run ids); they are optional in recordings and used to nest spans."""

    type: ClassVar[str] = ""
    run: str
    agent: str | None = None
    ts: float = field(default_factory=time.time)
    id: str | None = None
    parent: str | None = None
    meta: dict[str, Any] | None = None
    """Run labels from the framework (LangChain metadata such as thread_id or a tenant key);
    adapters set it on run_start and model_start only."""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "type": self.type,
            "run": self.run,
            "agent": self.agent,
            "ts": self.ts,
        }
        if self.id is not None:
            d["id"] = self.id
        if self.parent is not None:
            d["parent"] = self.parent
        if self.meta:
            d["meta"] = self.meta
        d.update(self._payload())
        return d

    def _payload(self) -> dict[str, Any]:
        return {}


@final
@dataclass(slots=True, kw_only=True)
class RunStart(Event):
    """Extension of the v1 contract: a guarded run began (its root chain or agent started)."""

    type: ClassVar[str] = "run_start"
    name: str | None = None

    def _payload(self) -> dict[str, Any]:
        return {"name": self.name}


@final
@dataclass(slots=True, kw_only=True)
class ModelStart(Event):
    type: ClassVar[str] = "model_start"
    model: str
    messages: list[Message] = field(default_factory=list)
    max_tokens: int | None = None
    _input_tokens: int | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def input_tokens(self) -> int:
        """Its input tokens as `loopguard.tokens` estimates them, worked out once: the run
        limits and the money check both project the call from it."""
        if self._input_tokens is None:
            from loopguard.tokens import estimate_input_tokens  # tokens imports this module

            self._input_tokens = estimate_input_tokens(self.messages)
        return self._input_tokens

    def _payload(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [m.to_dict() for m in self.messages],
            "max_tokens": self.max_tokens,
        }


@final
@dataclass(slots=True, kw_only=True)
class ModelEnd(Event):
    type: ClassVar[str] = "model_end"
    model: str
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    response_model: str | None = None
    """The model that answered, as the provider named it (optional)."""
    finish_reason: str | None = None
    """Why the model stopped, as the provider said it (`end_turn`, `tool_use`, ...; optional)."""

    def _payload(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.model,
            "text": self.text,
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "usage": self.usage.to_dict(),
        }
        if self.response_model is not None:
            d["response_model"] = self.response_model
        if self.finish_reason is not None:
            d["finish_reason"] = self.finish_reason
        return d


@final
@dataclass(slots=True, kw_only=True)
class ModelFailed(Event):
    """Extension of the v1 contract: a model call that failed (throttled, cut, aborted)."""

    type: ClassVar[str] = "model_error"
    model: str
    error: str
    usage: Usage | None = None
    """Estimated usage when the call was billed before it failed (a stream cut mid-answer):
    the provider never reported it, but the tokens streamed so far were paid for."""

    def _payload(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model, "error": self.error}
        if self.usage is not None:
            d["usage"] = self.usage.to_dict()
        return d


@final
@dataclass(slots=True, kw_only=True)
class Token(Event):
    type: ClassVar[str] = "token"
    text: str

    def _payload(self) -> dict[str, Any]:
        return {"text": self.text}


@final
@dataclass(slots=True, kw_only=True)
class ToolStart(Event):
    type: ClassVar[str] = "tool_start"
    tool: str
    args: dict[str, Any] | str = field(default_factory=dict)
    call_id: str | None = None
    """The id the model gave this tool call (optional; `id` is the framework's run id)."""

    def _payload(self) -> dict[str, Any]:
        d: dict[str, Any] = {"tool": self.tool, "args": self.args}
        if self.call_id is not None:
            d["call_id"] = self.call_id
        return d


@final
@dataclass(slots=True, kw_only=True)
class ToolEnd(Event):
    type: ClassVar[str] = "tool_end"
    tool: str
    output: str = ""

    def _payload(self) -> dict[str, Any]:
        return {"tool": self.tool, "output": self.output}


@final
@dataclass(slots=True, kw_only=True)
class ToolFailed(Event):
    type: ClassVar[str] = "tool_error"
    tool: str
    error: str

    def _payload(self) -> dict[str, Any]:
        return {"tool": self.tool, "error": self.error}


@final
@dataclass(slots=True, kw_only=True)
class RunEnd(Event):
    type: ClassVar[str] = "run_end"
    status: str = "ok"

    def _payload(self) -> dict[str, Any]:
        return {"status": self.status}


# The names these classes had before 0.2, when they read like exceptions; kept for imports.
ModelError = ModelFailed
ToolError = ToolFailed

EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunStart,
        ModelStart,
        ModelEnd,
        ModelFailed,
        Token,
        ToolStart,
        ToolEnd,
        ToolFailed,
        RunEnd,
    )
}


# --- reading recordings -------------------------------------------------------------------


def _need(d: dict[str, Any], key: str, kinds: type | tuple[type, ...], what: str) -> Any:
    if key not in d:
        raise EventFormatError(f"missing field {key!r} ({what})")
    value = d[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
        raise EventFormatError(f"field {key!r} must be {what}, got {type(value).__name__}")
    return value


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _opt(
    d: dict[str, Any], key: str, kinds: type | tuple[type, ...], what: str, default: Any = None
) -> Any:
    if d.get(key) is None:
        return default
    return _need(d, key, kinds, what)


def _messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list):
        raise EventFormatError("field 'messages' must be a list of {role, content} objects")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise EventFormatError(f"messages[{i}] must be an object")
        role = m.get("role")
        if role not in ROLES:
            raise EventFormatError(
                f"messages[{i}].role must be one of {', '.join(ROLES)}; got {role!r}"
            )
        content = m.get("content", "")
        if not isinstance(content, str):
            raise EventFormatError(f"messages[{i}].content must be a string")
        calls = m.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise EventFormatError(f"messages[{i}].tool_calls must be a list")
        out.append(Message(role, content, calls or None))
    return out


def _tool_calls(raw: Any) -> list[ToolCall]:
    if not isinstance(raw, list):
        raise EventFormatError("field 'tool_calls' must be a list of {name, args} objects")
    out = []
    for i, c in enumerate(raw):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise EventFormatError(f"tool_calls[{i}] must be an object with a string 'name'")
        args = c.get("args", {})
        if not isinstance(args, (dict, str)):
            raise EventFormatError(f"tool_calls[{i}].args must be an object or a string")
        out.append(ToolCall(c["name"], args))
    return out


_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
)


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    if not isinstance(raw, dict):
        raise EventFormatError("field 'usage' must be an object")
    values = {}
    for key in _USAGE_KEYS:
        v = raw.get(key)
        if v is not None and type(v) not in (int, float):
            raise EventFormatError(f"usage.{key} must be a number, got {type(v).__name__}")
        count = token_count(v)
        if count is None:  # a nonsense count (negative, NaN, huge): the call's usage is unknown
            return Usage()
        values[key] = count
    return Usage(**values)


def _seconds(value: int | float) -> float:
    try:
        ts = float(value)
    except OverflowError:  # an integer too large for a float
        ts = math.inf
    if not math.isfinite(ts):
        raise EventFormatError("field 'ts' must be a finite number of seconds since the epoch")
    return ts


def from_dict(d: Any) -> Event:
    """Build an event from one decoded JSON line; raises EventFormatError naming the field.
    A model_start that keeps messages of an earlier line (`prefix`) needs a `Decoder`."""
    return _event(d, None)


class Decoder:
    """Builds the events of one recording from its lines, in order: a version-2 model_start
    that keeps the first `prefix` messages of its run's previous model_start gets them back.
    Holds the last message list of each run until the run's run_end."""

    def __init__(self) -> None:
        self._messages: dict[str, list[Message]] = {}

    def decode(self, d: Any) -> Event:
        """Like `from_dict`, for the recording's next line."""
        event = _event(d, self._messages)
        if type(event) is ModelStart:
            self._messages[event.run] = event.messages
        elif type(event) is RunEnd:
            self._messages.pop(event.run, None)
        return event


def _kept(d: dict[str, Any], run: str, earlier: dict[str, list[Message]] | None) -> list[Message]:
    """The messages a model_start keeps from its run's previous one (`prefix`)."""
    prefix = _opt(d, "prefix", int, "a count of messages", 0)
    if prefix == 0:
        return []
    if d["v"] < 2 or prefix < 0:
        raise EventFormatError(f"field 'prefix' must be a count of messages, got {prefix!r}")
    previous = earlier.get(run) if earlier is not None else None
    if previous is None:
        raise EventFormatError(
            f"field 'prefix' keeps {prefix} messages of this run's previous model_start, "
            "which is not in the lines read before"
        )
    if prefix > len(previous):
        raise EventFormatError(
            f"field 'prefix' keeps {prefix} messages; this run's previous model_start has "
            f"{len(previous)}"
        )
    return previous[:prefix]


def _event(d: Any, earlier: dict[str, list[Message]] | None) -> Event:
    if not isinstance(d, dict):
        raise EventFormatError(f"an event must be a JSON object, got {type(d).__name__}")
    v = d.get("v")
    if type(v) is not int or v not in VERSIONS:
        raise EventFormatError(
            f"field 'v' must be one of {', '.join(map(str, VERSIONS))}, got {v!r}"
        )
    kind = d.get("type")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise EventFormatError(
            f"field 'type' must be one of {', '.join(EVENT_TYPES)}; got {kind!r}"
        )
    common = {
        "run": _need(d, "run", str, "a string"),
        "agent": _opt(d, "agent", str, "a string or null"),
        "ts": _seconds(_need(d, "ts", (int, float), "seconds since the epoch")),
        "id": _opt(d, "id", str, "a string"),
        "parent": _opt(d, "parent", str, "a string"),
        "meta": _opt(d, "meta", dict, "an object"),
    }
    if cls is RunStart:
        return RunStart(**common, name=_opt(d, "name", str, "a string"))
    if cls is ModelStart:
        mt = _opt(d, "max_tokens", int, "an integer or null")
        kept = _kept(d, common["run"], earlier)
        return ModelStart(
            **common,
            model=_need(d, "model", str, "a string"),
            messages=kept + _messages(d.get("messages", [])),
            max_tokens=mt,
        )
    if cls is ModelEnd:
        return ModelEnd(
            **common,
            model=_need(d, "model", str, "a string"),
            text=_opt(d, "text", str, "a string", ""),
            tool_calls=_tool_calls(d.get("tool_calls", [])),
            usage=_usage(d.get("usage")),
            response_model=_opt(d, "response_model", str, "a string"),
            finish_reason=_opt(d, "finish_reason", str, "a string"),
        )
    if cls is ModelFailed:
        return ModelFailed(
            **common,
            model=_need(d, "model", str, "a string"),
            error=_opt(d, "error", str, "a string", ""),
            usage=_usage(d["usage"]) if d.get("usage") is not None else None,
        )
    if cls is Token:
        return Token(**common, text=_need(d, "text", str, "a string"))
    if cls is ToolStart:
        args = d.get("args", {})
        if not isinstance(args, (dict, str)):
            raise EventFormatError("field 'args' must be an object or a string")
        return ToolStart(
            **common,
            tool=_need(d, "tool", str, "a string"),
            args=args,
            call_id=_opt(d, "call_id", str, "a string"),
        )
    if cls is ToolEnd:
        return ToolEnd(
            **common,
            tool=_need(d, "tool", str, "a string"),
            output=_opt(d, "output", str, "a string", ""),
        )
    if cls is ToolFailed:
        return ToolFailed(
            **common,
            tool=_need(d, "tool", str, "a string"),
            error=_opt(d, "error", str, "a string", ""),
        )
    status = d.get("status", "ok")
    if status not in RUN_STATUSES:
        raise EventFormatError(
            f"field 'status' must be one of {', '.join(RUN_STATUSES)}; got {status!r}"
        )
    return RunEnd(**common, status=status)
