"""Fixtures: an SDK tracer provider with the in-memory exporter, a metric reader, and helpers
that build the events of a run."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from loopguard.events import (
    Message,
    ModelEnd,
    ModelFailed,
    ModelStart,
    RunEnd,
    RunStart,
    Token,
    ToolCall,
    ToolEnd,
    ToolFailed,
    ToolStart,
    Usage,
)
from loopguard.policy import Policy
from loopguard.state import RunState
from loopguard.testing.text import unrelated_text

T0 = 1_800_000_000.0  # event times: fixed, so span times can be checked exactly
RUN = "0192f0c4-1111-7000-8000-000000000001"


class Otel:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> Any:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return found[0]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        out = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        out.extend(m.data.data_points)
        return out


@pytest.fixture
def otel() -> Otel:
    o = Otel()
    yield o
    o.tracer_provider.shutdown()
    o.meter_provider.shutdown()


def _words(seed: str) -> str:
    # Unrelated texts per call: a repeat detector must not see a loop in these runs.
    return unrelated_text(seed, 12)


class Script:
    """Builds a run's events with ids, parents and increasing timestamps."""

    def __init__(self, run: str = RUN, agent: str | None = "researcher") -> None:
        self.run, self.agent = run, agent
        self.ts = T0
        self._ids = itertools.count(1)

    def _common(self, dt: float, **kw: Any) -> dict[str, Any]:
        self.ts += dt
        return {"run": self.run, "agent": self.agent, "ts": self.ts, **kw}

    def new_id(self) -> str:
        return f"0192f0c4-2222-7000-8000-{next(self._ids):012d}"

    def run_start(self, name: str = "agent", meta: dict | None = None) -> RunStart:
        return RunStart(**self._common(0.0, id=self.run, meta=meta), name=name)

    def model_start(
        self,
        call: str,
        parent: str | None = None,
        model: str = "anthropic.claude-3-5-haiku-20241022-v1:0",
        dt: float = 0.1,
        text: str | None = None,
        meta: dict | None = None,
    ) -> ModelStart:
        # Distinct texts per call by default, so no repeat detector sees a loop.
        return ModelStart(
            **self._common(dt, id=call, parent=parent or self.run, meta=meta),
            model=model,
            messages=[Message("system", "be brief"), Message("user", text or _words(str(call)))],
            max_tokens=256,
        )

    def model_end(
        self,
        call: str,
        parent: str | None = None,
        model: str = "anthropic.claude-3-5-haiku-20241022-v1:0",
        dt: float = 1.5,
        text: str | None = None,
        tool_calls: list[ToolCall] | None = None,
        usage: Usage | None = None,
    ) -> ModelEnd:
        return ModelEnd(
            **self._common(dt, id=call, parent=parent or self.run),
            model=model,
            text=_words(f"{call}a") if text is None else text,
            tool_calls=tool_calls or [],
            usage=usage or Usage(120, 30, 100, 0),
        )

    def model_error(self, call: str, error: str, dt: float = 0.5) -> ModelFailed:
        return ModelFailed(
            **self._common(dt, id=call, parent=self.run),
            model="anthropic.claude-3-5-haiku-20241022-v1:0",
            error=error,
        )

    def token(self, call: str, text: str, dt: float = 0.05) -> Token:
        return Token(**self._common(dt, id=call), text=text)

    def tool_start(
        self, call: str, tool: str = "calculator", args: Any = None, dt: float = 0.01
    ) -> ToolStart:
        return ToolStart(
            **self._common(dt, id=call, parent=self.run),
            tool=tool,
            args=args if args is not None else {"expression": "2+2"},
        )

    def tool_end(
        self, call: str, tool: str = "calculator", output: str = "4", dt: float = 0.2
    ) -> ToolEnd:
        return ToolEnd(**self._common(dt, id=call), tool=tool, output=output)

    def tool_error(
        self, call: str, tool: str = "calculator", error: str = "ValueError: bad", dt: float = 0.2
    ) -> ToolFailed:
        return ToolFailed(**self._common(dt, id=call), tool=tool, error=error)

    def run_end(self, status: str = "ok", dt: float = 0.1) -> RunEnd:
        return RunEnd(**self._common(dt, id=self.run), status=status)

    def model_calls(self, n: int, status: str = "ok") -> list[Any]:
        """A whole run: its start, `n` model calls, its end."""
        events: list[Any] = [self.run_start()]
        for _ in range(n):
            call = self.new_id()
            events += [self.model_start(call), self.model_end(call)]
        return [*events, self.run_end(status)]


def feed(guard: Any, events: list[Any]) -> list[Any]:
    """Process events as a live run would; returns the aborts raised."""
    from loopguard.verdict import LoopGuardAbort

    aborts = []
    for event in events:
        try:
            guard.process(event)
        except LoopGuardAbort as exc:
            aborts.append(exc)
    return aborts


@pytest.fixture
def script() -> Script:
    return Script()


class Driver:
    """Calls a sink as the guard does, with verdicts of our choosing."""

    def __init__(self, sink: Any, policy: Policy | None = None) -> None:
        self.sink = sink
        self.policy = policy or Policy()
        self.state: RunState | None = None

    def send(self, event: Any, verdict: Any = None) -> None:
        if self.state is None:
            self.state = RunState(event.run, event.agent, self.policy, event.ts)
        if event.type == "model_end":
            self.state.usage.add(event.usage)
        self.sink.on_event(self.state, event)
        if verdict is not None:
            verdict.run, verdict.agent = self.state.run, self.state.agent
            self.sink.on_verdict(self.state, event, verdict)
        if event.type == "run_end":
            self.sink.on_run_end(self.state, event)


def ns(ts: float) -> int:
    return int(ts * 1e9)


class OtlpReceiver:
    """An OTLP/HTTP trace receiver on loopback: decodes each ExportTraceServiceRequest."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.requests: list[Any] = []
        self.paths: list[str] = []
        self.content_types: list[str] = []
        received = threading.Condition()
        self._received = received
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with received:
                    outer.paths.append(self.path)
                    outer.content_types.append(self.headers.get("Content-Type", ""))
                    if self.path == "/v1/traces":
                        outer.requests.append(ExportTraceServiceRequest.FromString(body))
                    received.notify_all()
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[Any]:
        return [
            span
            for req in self.requests
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]

    def resources(self) -> list[dict[str, Any]]:
        return [attrs(rs.resource.attributes) for req in self.requests for rs in req.resource_spans]

    def wait_for(self, n_spans: int, timeout: float = 10.0) -> list[Any]:
        with self._received:
            self._received.wait_for(lambda: len(self.spans()) >= n_spans, timeout)
        return self.spans()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attrs(kvs: Any) -> dict[str, Any]:
    """OTLP KeyValues as a dict of plain values."""
    out = {}
    for kv in kvs:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None
    return out


@pytest.fixture
def otlp_receiver():
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


_HEX = set("0123456789abcdef")
_TAG_TYPES = {"string": str, "bool": bool, "int64": int, "float64": float}


def _check_tag(tag: dict[str, Any], where: str) -> None:
    assert set(tag) == {"key", "type", "value"}, where
    assert isinstance(tag["key"], str) and tag["key"], where
    kind = _TAG_TYPES[tag["type"]]
    value = tag["value"]
    assert isinstance(value, kind) and (kind is bool or not isinstance(value, bool)), (
        f"{where}: {tag}"
    )


def validate_jaeger(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Check a document against Jaeger's JSON trace format (as its UI's JSON upload reads it);
    returns all spans."""
    assert set(doc) == {"data"} and isinstance(doc["data"], list)
    all_spans = []
    for trace in doc["data"]:
        tid = trace["traceID"]
        assert len(tid) == 32 and set(tid) <= _HEX and tid != "0" * 32
        assert trace["warnings"] is None
        processes = trace["processes"]
        for pid, process in processes.items():
            assert isinstance(process["serviceName"], str) and process["serviceName"]
            for tag in process["tags"]:
                _check_tag(tag, f"process {pid}")
        ids = {s["spanID"] for s in trace["spans"]}
        assert len(ids) == len(trace["spans"])
        roots = 0
        for span in trace["spans"]:
            where = f"span {span.get('operationName')}"
            assert set(span) == {
                "traceID",
                "spanID",
                "operationName",
                "references",
                "startTime",
                "duration",
                "tags",
                "logs",
                "processID",
                "warnings",
                "flags",
            }, where
            assert span["traceID"] == tid
            assert len(span["spanID"]) == 16 and set(span["spanID"]) <= _HEX
            assert isinstance(span["operationName"], str) and span["operationName"]
            assert isinstance(span["startTime"], int) and not isinstance(span["startTime"], bool)
            assert 10**15 < span["startTime"] < 10**17, "microseconds since the epoch"
            assert isinstance(span["duration"], int) and span["duration"] >= 0
            assert span["processID"] in processes and span["flags"] == 1
            assert span["warnings"] is None
            if not span["references"]:
                roots += 1
            for ref in span["references"]:
                assert ref == {"refType": "CHILD_OF", "traceID": tid, "spanID": ref["spanID"]}
                assert ref["spanID"] in ids
            for tag in span["tags"]:
                _check_tag(tag, where)
            for log in span["logs"]:
                assert set(log) == {"timestamp", "fields"}
                assert isinstance(log["timestamp"], int) and 10**15 < log["timestamp"] < 10**17
                for tag in log["fields"]:
                    _check_tag(tag, f"{where} log")
        assert roots == 1
        all_spans.extend(trace["spans"])
    return all_spans


def tags(span_or_log: dict[str, Any]) -> dict[str, Any]:
    items = span_or_log.get("tags", span_or_log.get("fields"))
    return {t["key"]: t["value"] for t in items}


# What OpenLLMetry's and OpenInference's LangChain instrumentors patch. OpenLLMetry's
# uninstrument() leaves its wrappers in place (and a second instrument() then adds nothing), so
# tests put LangChain back as it was themselves.
_PATCHED_CLASSES = (
    ("langchain_core.callbacks", "BaseCallbackManager"),
    ("langgraph.pregel", "Pregel"),
    ("langgraph.types", "Command"),
    ("langchain.agents.middleware.types", "AgentMiddleware"),
    ("langchain_openai.chat_models.base", "BaseChatOpenAI"),
    ("langchain_openai.llms.base", "BaseOpenAI"),
)
_PATCHED_FUNCTIONS = (
    ("langgraph.prebuilt.chat_agent_executor", "create_react_agent"),
    ("langgraph.prebuilt", "create_react_agent"),
    ("langchain.agents.factory", "create_agent"),
    ("langchain.agents", "create_agent"),
)


@contextmanager
def langchain_restored() -> Iterator[None]:
    """Undo every patch a LangChain instrumentor makes inside the block."""
    import importlib

    saved: list[tuple[Any, str, Any]] = []
    for module, name in _PATCHED_CLASSES:
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        saved += [(cls, k, v) for k, v in vars(cls).items() if callable(v)]
    for module, name in _PATCHED_FUNCTIONS:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(mod, name):
            saved.append((mod, name, getattr(mod, name)))
    try:
        yield
    finally:
        for owner, name, value in saved:
            current = vars(owner).get(name) if isinstance(owner, type) else getattr(owner, name)
            if current is not value:
                setattr(owner, name, value)
