"""A fake Amazon Bedrock Runtime on loopback: Converse and ConverseStream, scripted.

Point boto3's `bedrock-runtime` client or langchain-aws's `ChatBedrockConverse` at
`FakeBedrock.endpoint_url` with dummy credentials. Shapes follow botocore's service model
(bedrock-runtime 2023-09-30): `POST /model/{modelId}/converse` answers JSON,
`/converse-stream` answers AWS's binary event stream (chunked, with valid CRCs).

Stdlib only. The server never talks to anything but the sockets it accepted on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import re
import select
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from loopguard.testing import eventstream
from loopguard.testing.script import (
    Fault,
    Reply,
    Request,
    Responder,
    Response,
    Script,
    count_tokens,
    output_tokens,
)

DEFAULT_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
# The largest request body read; a larger declared Content-Length is refused unread. Far above
# any conversation a test sends, and bounded so a bad header cannot make the server allocate GBs.
MAX_BODY_BYTES = 32 * 1024 * 1024
_PATH = re.compile(r"^/model/(?P<model>[^/?]+)/(?P<op>converse|converse-stream)/?(?:\?.*)?$")


class ScriptError(AssertionError):
    """The script failed or asked for something a model cannot do (a tool it was not offered).
    The server answered 500; `FakeBedrock.__exit__` raises this so the failure is not lost."""


@dataclass(slots=True)
class Call:
    """What the server did with one request. `outcome` is `complete`, `error` (an HTTP
    error), `cut` (a `cut` fault), `stream_error`, or `client_closed` (the client went away
    before the stream ended)."""

    request: Request
    response: Response | None = None
    events_total: int = 0
    events_sent: int = 0
    outcome: str = "pending"
    usage: dict[str, int] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def wait(self, timeout: float = 5.0) -> bool:
        """Wait until the server has finished with this request."""
        return self.done.wait(timeout)


class FakeBedrock:
    """A scripted Bedrock Runtime server on 127.0.0.1 (a free port unless given).

    `script` is a list of `Reply`/`Fault`/str, a function `request -> Reply | Fault`, or a
    scenario name (see `loopguard.testing.scenarios`; the default, `echo`, fits any agent).
    `strict` makes the server reject what
    real Bedrock rejects (conversations that do not alternate, tool calls without results,
    tool blocks without toolConfig) with a ValidationException. `chunk_delay` is the default
    pause between stream events; `prompt_cache` serves cache reads/writes for `cachePoint`s.

    Use it as a context manager or call `start()` / `stop()`.
    """

    def __init__(
        self,
        script: Sequence[Response | str] | Responder | str = "echo",
        *,
        port: int = 0,
        strict: bool = True,
        chunk_delay: float = 0.0,
        prompt_cache: bool = True,
    ) -> None:
        self.script = script if isinstance(script, Script) else Script(script)
        self.strict = strict
        self.chunk_delay = chunk_delay
        self.prompt_cache = prompt_cache
        self.calls: list[Call] = []
        self.script_errors: list[str] = []
        self._cache: set[str] = set()
        self._lock = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeBedrock:
        if self._server is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        server = _Server(("127.0.0.1", self._port), handler)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            name="FakeBedrock",
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeBedrock:
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop()
        if exc_type is None:
            self.raise_script_errors()

    def use(self, script: Sequence[Response | str] | Responder | str) -> FakeBedrock:
        """Serve `script` from now on (a list, a function, or a scenario name)."""
        self.script = script if isinstance(script, Script) else Script(script)
        return self

    def raise_script_errors(self) -> None:
        if self.script_errors:
            raise ScriptError("FakeBedrock script failed:\n" + "\n".join(self.script_errors))

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(
                "FakeBedrock is not started; use `with FakeBedrock(...)` or .start()"
            )
        return self._server.server_address[1]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- clients -----------------------------------------------------------------------------

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `boto3.client("bedrock-runtime", ...)` aimed at this server."""
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }

    def client(self, *, retries: int = 0, **kwargs: Any) -> Any:
        """A boto3 `bedrock-runtime` client for this server. `retries` is how many times
        botocore may retry (default 0, so injected faults reach the caller)."""
        import boto3
        from botocore.config import Config

        config = Config(retries={"total_max_attempts": retries + 1, "mode": "standard"})
        return boto3.client(
            "bedrock-runtime", **{**self.client_kwargs(), "config": config, **kwargs}
        )

    def chat_model(self, model: str = DEFAULT_MODEL, *, retries: int = 0, **kwargs: Any) -> Any:
        """A langchain-aws `ChatBedrockConverse` for this server (needs the `aws` extra)."""
        from langchain_aws import ChatBedrockConverse

        options = {**self.client_kwargs(), "max_retries": retries, **kwargs}
        return ChatBedrockConverse(model_id=model, **options)

    # --- what happened -----------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        return [c.request for c in self.calls]

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every request received so far has been fully handled."""
        deadline = time.monotonic() + timeout
        for call in list(self.calls):
            if not call.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    # --- serving (called from the handler threads) -------------------------------------------

    def _new_call(
        self, operation: str, model_id: str, body: dict[str, Any], headers: dict[str, str]
    ) -> Call:
        with self._lock:
            call = Call(Request(operation, model_id, body, len(self.calls), headers))
            self.calls.append(call)
        return call

    def _script_error(self, call: Call, message: str) -> None:
        with self._lock:
            self.script_errors.append(f"request {call.request.index}: {message}")

    def _usage(self, request: Request, reply: Reply) -> dict[str, int]:
        total_in = request.estimate_input_tokens()
        read, write = reply.cache_read_tokens, reply.cache_write_tokens
        if read is None and write is None and self.prompt_cache:
            read, write = self._cached(request)
        read, write = read or 0, write or 0
        inp = (
            reply.input_tokens
            if reply.input_tokens is not None
            else max(total_in - read - write, 0)
        )
        out = reply.output_tokens if reply.output_tokens is not None else output_tokens(reply)
        # Bedrock reports inputTokens without the cache tokens; totalTokens counts them all.
        usage = {"inputTokens": inp, "outputTokens": out, "totalTokens": inp + out + read + write}
        if read or write:
            usage["cacheReadInputTokens"] = read
            usage["cacheWriteInputTokens"] = write
        return usage

    def _cached(self, request: Request) -> tuple[int, int]:
        """Prompt caching: the prefix up to the last cachePoint is written once, then read."""
        body = request.body
        # Bedrock's cache order: tools, then system, then the messages.
        blocks = [
            *((body.get("toolConfig") or {}).get("tools") or []),
            *(body.get("system") or []),
            *(b for m in body.get("messages") or [] for b in m.get("content") or []),
        ]
        parts: list[Any] = []
        prefix: list[Any] | None = None
        for block in blocks:
            if "cachePoint" in block:
                prefix = list(parts)
            else:
                parts.append(block)
        if not prefix:
            return 0, 0
        text = json.dumps(prefix, sort_keys=True)
        tokens = count_tokens(text)
        key = hashlib.sha256(f"{request.model_id}\0{text}".encode()).hexdigest()
        with self._lock:
            if key in self._cache:
                return tokens, 0
            self._cache.add(key)
        return 0, tokens


def shape_problem(body: Any) -> str | None:
    """What is wrongly shaped in a request body, in the fields the server reads (real Bedrock
    checks them all against its model and answers a ValidationException); None if nothing."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    messages = body.get("messages", [])
    if not isinstance(messages, list):
        return "messages: must be a list of messages"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role", ""), str):
            return f"messages.{i}: must be an object with a string role"
        if (problem := _blocks(m.get("content", []), f"messages.{i}.content")) is not None:
            return problem
    if (problem := _blocks(body.get("system", []), "system")) is not None:
        return problem
    tool_config = body.get("toolConfig", {})
    tools = tool_config.get("tools", []) if isinstance(tool_config, dict) else None
    if not isinstance(tools, list) or not all(
        isinstance(t, dict) and ("toolSpec" not in t or _named(t["toolSpec"], "name"))
        for t in tools
    ):
        return "toolConfig.tools: must be a list of {toolSpec: {name, ...}} objects"
    inference = body.get("inferenceConfig", {})
    limit = inference.get("maxTokens") if isinstance(inference, dict) else "?"
    if limit is not None and (type(limit) is not int or limit < 1):
        return "inferenceConfig.maxTokens: must be a positive integer"
    return None


def _blocks(blocks: Any, where: str) -> str | None:
    if not isinstance(blocks, list):
        return f"{where}: must be a list of content blocks"
    for j, block in enumerate(blocks):
        at = f"{where}.{j}"
        if not isinstance(block, dict):
            return f"{at}: must be a content block object"
        if "text" in block and not isinstance(block["text"], str):
            return f"{at}.text: must be a string"
        if "toolUse" in block and not _named(block["toolUse"], "toolUseId", "name"):
            return f"{at}.toolUse: must have a string toolUseId and name"
        if "toolResult" in block:
            result = block["toolResult"]
            if not _named(result, "toolUseId"):
                return f"{at}.toolResult: must have a string toolUseId"
            if (
                problem := _blocks(result.get("content", []), f"{at}.toolResult.content")
            ) is not None:
                return problem
    return None


def _named(value: Any, *keys: str) -> bool:
    return isinstance(value, dict) and all(isinstance(value.get(k), str) for k in keys)


def validate(request: Request) -> str | None:
    """What real Bedrock would reject in this request (a ValidationException message)."""
    messages = request.messages
    if not messages or messages[0].get("role") != "user":
        return (
            "A conversation must start with a user message. Try again with a conversation "
            "that starts with a user message."
        )
    uses_tools = False
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: value {role!r} is not one of user, assistant"
        if i and messages[i - 1].get("role") == role:
            return (
                "A conversation must alternate between user and assistant roles. Make sure "
                "the conversation alternates between user and assistant roles and try again."
            )
        content = m.get("content") or []
        if not content:
            return f"messages.{i}.content: the content field in the message is empty"
        ids = [b["toolUse"]["toolUseId"] for b in content if "toolUse" in b]
        uses_tools = uses_tools or bool(ids) or any("toolResult" in b for b in content)
        if ids:
            following = messages[i + 1]["content"] if i + 1 < len(messages) else None
            if following is None:
                continue  # the conversation ends with the model's tool call (prefill)
            answered = {b["toolResult"]["toolUseId"] for b in following if "toolResult" in b}
            missing = [x for x in ids if x not in answered]
            if missing:
                return (
                    f"messages.{i + 1}.content: Expected toolResult blocks at "
                    f"messages.{i + 1}.content for the following Ids: {', '.join(missing)}"
                )
    if uses_tools and not (request.body.get("toolConfig") or {}).get("tools"):
        return (
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (an aborted stream, a closed keep-alive connection) is normal.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeBedrock  # bound per server
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as botocore expects
    server_version = "FakeBedrock"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not declared.isascii() or not declared.isdigit():
            self._refuse(f"The Content-Length header {declared[:40]!r} is not a byte count.")
            return
        length = int(declared)
        if length > MAX_BODY_BYTES:
            self._refuse(
                f"The request body of {length:,} bytes is larger than the {MAX_BODY_BYTES:,} "
                "bytes accepted."
            )
            return
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:  # the client sent less than it declared and hung up
            self.close_connection = True
            return
        match = _PATH.match(self.path)
        if match is None:
            self._error(
                404,
                "UnknownOperationException",
                f"FakeBedrock serves POST /model/{{modelId}}/converse and "
                f"/converse-stream, not {self.path}",
            )
            return
        operation = "ConverseStream" if match["op"] == "converse-stream" else "Converse"
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, RecursionError):  # also: not UTF-8, integers too long to convert
            self._error(400, "ValidationException", "The request body is not valid JSON.")
            return
        if (problem := shape_problem(body)) is not None:
            self._error(400, "ValidationException", problem)
            return
        fake = self.fake
        call = fake._new_call(operation, unquote(match["model"]), body, dict(self.headers))
        try:
            self._serve(call)
        finally:
            call.done.set()

    def _serve(self, call: Call) -> None:
        fake, request = self.fake, call.request
        if fake.strict and (problem := validate(request)) is not None:
            call.outcome = "error"
            call.response = Fault.validation(problem)
            self._error(400, "ValidationException", problem)
            return
        try:
            response = fake.script.respond(request)
        except Exception as exc:  # noqa: BLE001 - report the script's bug, keep serving
            return self._script_failed(call, f"{type(exc).__name__}: {exc}")
        call.response = response
        reply = response if isinstance(response, Reply) else response.reply
        if fake.strict and reply is not None:
            offered = request.tool_names
            unknown = [c.name for c in reply.tool_calls if c.name not in offered]
            if unknown:
                return self._script_failed(
                    call, f"the script calls tool(s) {unknown} but the request offers {offered}"
                )
        if isinstance(response, Fault) and response.kind not in ("cut", "stream_error"):
            call.outcome = "error"
            self._error(*response.http)
            return
        reply = reply or Reply(text="A partial answer that never finishes.")
        if reply.delay:
            time.sleep(reply.delay)
        fault = response if isinstance(response, Fault) else None
        message, stop_reason, clipped = _message(request, reply)
        call.usage = fake._usage(request, clipped)
        latency = (
            reply.latency_ms
            if reply.latency_ms is not None
            else 120 + call.usage["outputTokens"] * 8
        )
        if request.stream:
            self._stream(call, message, stop_reason, clipped, latency, fault)
        else:
            self._converse(call, message, stop_reason, latency, fault)

    def _script_failed(self, call: Call, message: str) -> None:
        self.fake._script_error(call, message)
        call.outcome = "error"
        self._error(500, "InternalServerException", f"FakeBedrock script error: {message}")

    # --- Converse ---------------------------------------------------------------------------

    def _converse(
        self,
        call: Call,
        message: dict[str, Any],
        stop_reason: str,
        latency: int,
        fault: Fault | None,
    ) -> None:
        payload = json.dumps(
            {
                "output": {"message": message},
                "stopReason": stop_reason,
                "usage": call.usage,
                "metrics": {"latencyMs": latency},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        if fault is not None:  # a cut (a stream_error has no meaning without a stream)
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self._hang_up()
            call.outcome = "cut"
            return
        self.wfile.write(payload)
        call.outcome = "complete"

    # --- ConverseStream ----------------------------------------------------------------------

    def _stream(
        self,
        call: Call,
        message: dict[str, Any],
        stop_reason: str,
        reply: Reply,
        latency: int,
        fault: Fault | None,
    ) -> None:
        events = list(
            _stream_events(message, stop_reason, call.usage, latency, reply.words_per_chunk)
        )
        call.events_total = len(events)
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        delay = reply.chunk_delay if reply.chunk_delay is not None else self.fake.chunk_delay
        stop_at = fault.after_events if fault is not None else len(events)
        for i, (kind, payload) in enumerate(events[:stop_at]):
            if i and delay:
                time.sleep(delay)
            if self._client_gone() or not self._chunk(eventstream.event(kind, payload)):
                call.outcome = "client_closed"
                self.close_connection = True
                return
            call.events_sent += 1
        if fault is not None and fault.kind == "cut":
            self._hang_up()
            call.outcome = "cut"
            return
        if fault is not None:
            frame = eventstream.exception(
                fault.exception, fault.message or "The model stream failed."
            )
            if not self._chunk(frame):
                call.outcome = "client_closed"
                self.close_connection = True
                return
            call.outcome = "stream_error"
        else:
            call.outcome = "complete"
        if not self._chunk(b""):  # the last chunk
            call.outcome = "client_closed"
            self.close_connection = True

    def _chunk(self, data: bytes) -> bool:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            return True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            return False

    def _client_gone(self) -> bool:
        """True when the client has closed its end (a readable socket with nothing to read):
        it stopped reading the stream, e.g. because loopguard aborted the run mid-stream."""
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _refuse(self, message: str) -> None:
        """A ValidationException for a request whose body is left unread: the connection
        cannot carry another request, so it is closed."""
        self.close_connection = True
        self._error(400, "ValidationException", message)

    def _error(self, status: int, error_type: str, message: str) -> None:
        payload = json.dumps({"message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_header(
            "x-amzn-ErrorType", f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        )
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(payload)


def _message(request: Request, reply: Reply) -> tuple[dict[str, Any], str, Reply]:
    """The assistant message, its stop reason, and the reply as sent (clipped at maxTokens)."""
    text, calls = reply.text, list(reply.tool_calls)
    stop = reply.stop_reason or ("tool_use" if calls else "end_turn")
    limit = request.max_tokens
    if limit is not None and reply.output_tokens is None and output_tokens(reply) > limit:
        # A real model stops mid-sentence at maxTokens and drops unfinished tool calls.
        text, calls, stop = text[: limit * 4], [], "max_tokens"
        reply = Reply(
            text=text,
            stop_reason=stop,
            output_tokens=limit,
            input_tokens=reply.input_tokens,
            cache_read_tokens=reply.cache_read_tokens,
            cache_write_tokens=reply.cache_write_tokens,
            latency_ms=reply.latency_ms,
            chunk_delay=reply.chunk_delay,
            words_per_chunk=reply.words_per_chunk,
        )
    content: list[dict[str, Any]] = []
    if text:
        content.append({"text": text})
    for n, c in enumerate(calls):
        tool_id = c.id or f"tooluse_{request.index:04d}_{n}"
        content.append({"toolUse": {"toolUseId": tool_id, "name": c.name, "input": c.input}})
    if not content:
        content.append({"text": ""})
    return {"role": "assistant", "content": content}, stop, reply


def _stream_events(
    message: dict[str, Any],
    stop_reason: str,
    usage: dict[str, int],
    latency: int,
    words_per_chunk: int,
) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "messageStart", {"role": "assistant"}
    for index, block in enumerate(message["content"]):
        if "text" in block:
            for piece in _split_words(block["text"], words_per_chunk):
                yield "contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": index}
        else:
            use = block["toolUse"]
            yield (
                "contentBlockStart",
                {
                    "start": {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}},
                    "contentBlockIndex": index,
                },
            )
            raw = json.dumps(use["input"])
            for k in range(0, len(raw), 24):
                yield (
                    "contentBlockDelta",
                    {"delta": {"toolUse": {"input": raw[k : k + 24]}}, "contentBlockIndex": index},
                )
        yield "contentBlockStop", {"contentBlockIndex": index}
    yield "messageStop", {"stopReason": stop_reason}
    yield "metadata", {"usage": usage, "metrics": {"latencyMs": latency}}


def _split_words(text: str, per_chunk: int) -> list[str]:
    """Chunks of `per_chunk` words, spaces kept, so the chunks join back to the text."""
    if not text:
        return []
    words = re.findall(r"\S+\s*|\s+", text)
    n = max(1, per_chunk)
    return ["".join(words[i : i + n]) for i in range(0, len(words), n)]


__all__ = ["DEFAULT_MODEL", "MAX_BODY_BYTES", "Call", "FakeBedrock", "ScriptError", "validate"]
