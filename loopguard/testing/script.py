"""What the fake model says: requests as it sees them, replies, faults, and scripts.

A script is a list of replies (served in order), a function of the request, or the name of a
scenario in `loopguard.testing.scenarios`. Stdlib only.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

CHARS_PER_TOKEN = 4
"""The fake model's tokenizer: ceil(characters / 4), plus a few tokens of framing per message."""
_MESSAGE_OVERHEAD = 3
_TOOL_CALL_OVERHEAD = 12


def count_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(slots=True)
class ToolUse:
    """A tool call the model makes. `id` is filled in by the server when None."""

    name: str
    input: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(slots=True)
class Reply:
    """One model response.

    Token counts left as None are computed by the fake tokenizer: `input_tokens` from the
    request (minus cache tokens), `output_tokens` from the text and tool inputs. Cache tokens
    left as None come from the server's prompt cache, which honours `cachePoint` blocks.
    `stop_reason` defaults to `tool_use` when there are tool calls, else `end_turn`.
    """

    text: str = ""
    tool_calls: Sequence[ToolUse] = ()
    stop_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    latency_ms: int | None = None
    delay: float = 0.0
    """Seconds the server waits before it answers."""
    chunk_delay: float | None = None
    """Seconds between stream events (None: the server's default)."""
    words_per_chunk: int = 2

    @classmethod
    def calling(cls, name: str, text: str = "", /, **tool_input: Any) -> Reply:
        """A reply that calls one tool: `Reply.calling("web_search", query="x")`."""
        return cls(text=text, tool_calls=[ToolUse(name, tool_input)])


_ERRORS = {
    # kind: (HTTP status, error type, default message) as Bedrock Runtime reports them
    "throttle": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "server_error": (500, "InternalServerException", "The server encountered an internal error."),
    "unavailable": (503, "ServiceUnavailableException", "The service is unavailable. Try again."),
    "validation": (400, "ValidationException", "The request is invalid."),
    "model_error": (424, "ModelErrorException", "The model encountered an error."),
    "timeout": (408, "ModelTimeoutException", "The model timed out."),
    "access_denied": (
        403,
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ),
}


@dataclass(slots=True)
class Fault:
    """A failure to inject instead of (or in the middle of) a reply.

    `kind` is an HTTP error (`throttle`, `server_error`, `unavailable`, `validation`,
    `model_error`, `timeout`, `access_denied`), `cut` (the server closes the connection after
    `after_events` stream events, or half-way through a Converse body), or `stream_error` (an
    exception event inside the stream after `after_events` events). `reply` is what the stream
    was sending before it failed.
    """

    kind: str
    message: str | None = None
    after_events: int = 0
    reply: Reply | None = None
    exception: str = "modelStreamErrorException"

    def __post_init__(self) -> None:
        if self.kind not in _ERRORS and self.kind not in ("cut", "stream_error"):
            accepted = ", ".join([*_ERRORS, "cut", "stream_error"])
            raise ValueError(f"Fault kind {self.kind!r} is not one of: {accepted}")

    @classmethod
    def throttle(cls, message: str | None = None) -> Fault:
        return cls("throttle", message)

    @classmethod
    def server_error(cls, message: str | None = None) -> Fault:
        return cls("server_error", message)

    @classmethod
    def unavailable(cls, message: str | None = None) -> Fault:
        return cls("unavailable", message)

    @classmethod
    def validation(cls, message: str | None = None) -> Fault:
        return cls("validation", message)

    @classmethod
    def cut(cls, after_events: int = 3, reply: Reply | None = None) -> Fault:
        return cls("cut", after_events=after_events, reply=reply)

    @classmethod
    def stream_error(
        cls,
        after_events: int = 3,
        reply: Reply | None = None,
        *,
        exception: str = "modelStreamErrorException",
        message: str | None = None,
    ) -> Fault:
        return cls(
            "stream_error", message, after_events=after_events, reply=reply, exception=exception
        )

    @property
    def http(self) -> tuple[int, str, str]:
        """(status, error type, message) of an HTTP error fault."""
        status, error_type, default = _ERRORS.get(self.kind, _ERRORS["server_error"])
        return status, error_type, self.message or default


Response = Reply | Fault


@dataclass(slots=True)
class Request:
    """A Converse or ConverseStream request as the fake server received it."""

    operation: str  # "Converse" or "ConverseStream"
    model_id: str
    body: dict[str, Any]
    index: int  # 0-based position among all model requests this server has seen
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def stream(self) -> bool:
        return self.operation == "ConverseStream"

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages") or []

    @property
    def system(self) -> str:
        return "\n".join(b["text"] for b in self.body.get("system") or [] if "text" in b)

    @property
    def tool_names(self) -> list[str]:
        tools = (self.body.get("toolConfig") or {}).get("tools") or []
        return [t["toolSpec"]["name"] for t in tools if "toolSpec" in t]

    @property
    def max_tokens(self) -> int | None:
        return (self.body.get("inferenceConfig") or {}).get("maxTokens")

    @property
    def turn(self) -> int:
        """How many times the assistant has spoken in this conversation (0 on the first call).

        Scenarios key on this rather than on `index`, so several conversations can share one
        server."""
        return sum(1 for m in self.messages if m.get("role") == "assistant")

    @property
    def user_text(self) -> str:
        """The text of the first user message: the task the agent was given."""
        for m in self.messages:
            if m.get("role") == "user":
                return _text_of(m.get("content") or [])
        return ""

    @property
    def tool_results(self) -> list[str]:
        """The tool results in the last message, as text."""
        if not self.messages:
            return []
        out = []
        for block in self.messages[-1].get("content") or []:
            result = block.get("toolResult")
            if result is not None:
                out.append(_text_of(result.get("content") or []))
        return out

    def estimate_input_tokens(self) -> int:
        """The fake tokenizer's count of everything the model reads."""
        total = count_tokens(json.dumps((self.body.get("toolConfig") or {}).get("tools") or []))
        total += count_tokens(self.system)
        for m in self.messages:
            total += _MESSAGE_OVERHEAD + count_tokens(_text_of(m.get("content") or []))
        return total


def _text_of(blocks: Iterable[dict[str, Any]]) -> str:
    parts = []
    for b in blocks:
        if "text" in b:
            parts.append(b["text"])
        elif "toolUse" in b:
            parts.append(json.dumps(b["toolUse"].get("input", {})))
        elif "toolResult" in b:
            parts.append(_text_of(b["toolResult"].get("content") or []))
        elif "json" in b:
            parts.append(json.dumps(b["json"]))
    return "\n".join(parts)


def output_tokens(reply: Reply) -> int:
    return count_tokens(reply.text) + sum(
        _TOOL_CALL_OVERHEAD + count_tokens(json.dumps(c.input)) for c in reply.tool_calls
    )


class ScriptExhausted(RuntimeError):
    """A list script was asked for more replies than it holds."""


Responder = Callable[[Request], Response]


class Script:
    """Turns a list, a function or a scenario name into `respond(request) -> Reply | Fault`."""

    def __init__(self, source: Sequence[Response | str] | Responder | str) -> None:
        self._lock = threading.Lock()
        if isinstance(source, str):
            from loopguard.testing.scenarios import get

            self.name = source
            self._respond: Responder = get(source).respond
        elif callable(source):
            self.name = getattr(source, "__name__", "function")
            self._respond = source
        else:
            items = [Reply(text=i) if isinstance(i, str) else i for i in source]
            for n, item in enumerate(items):
                if not isinstance(item, (Reply, Fault)):
                    raise TypeError(
                        f"script item {n} must be a Reply, a Fault or a str, "
                        f"got {type(item).__name__}"
                    )
            self.name = "list"
            self._items = iter(items)
            self._size = len(items)
            self._respond = self._next_item

    def _next_item(self, request: Request) -> Response:
        with self._lock:
            item = next(self._items, None)
        if item is None:
            raise ScriptExhausted(
                f"the script's {self._size} replies are used up; request "
                f"{request.index} ({request.operation}) has none left"
            )
        return item

    def respond(self, request: Request) -> Response:
        response = self._respond(request)
        if isinstance(response, str):
            return Reply(text=response)
        if not isinstance(response, (Reply, Fault)):
            raise TypeError(
                f"a script must return a Reply, a Fault or a str, got {type(response).__name__}"
            )
        return response


def cycle(*responses: Response) -> Responder:
    """A script that repeats `responses` forever (a model stuck in a loop)."""
    it = itertools.cycle(responses)
    lock = threading.Lock()

    def respond(request: Request) -> Response:
        with lock:
            return next(it)

    return respond


__all__ = [
    "CHARS_PER_TOKEN",
    "Fault",
    "Reply",
    "Request",
    "Responder",
    "Response",
    "Script",
    "ScriptExhausted",
    "ToolUse",
    "count_tokens",
    "cycle",
    "output_tokens",
]
