"""Jaeger's JSON trace format (what the Jaeger UI's "Upload" tab opens), for users
without a collector.

The spans are the same tree the OpenTelemetry sink makes (`tree.SpanTree`), recorded as plain
data by `JaegerBackend` and written by `write()`. Two ways in: `JaegerFileSink` on a live guard,
and `loopguard export FILE.jsonl --format jaeger` on a recording.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopguard.telemetry.tree import SpanTree, TreeSink

if TYPE_CHECKING:
    from loopguard.events import RunEnd
    from loopguard.state import RunState


@dataclass(slots=True)
class SpanRecord:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_id: str | None
    name: str
    kind: str
    start: float  # seconds since the epoch
    end: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)
    error: str | None = None


def _trace_id(run: str) -> str:
    # LangChain run ids are UUIDs: the trace id is the root run id, so traces can be found by it.
    hexed = run.replace("-", "").lower()
    if len(hexed) == 32 and all(c in "0123456789abcdef" for c in hexed) and hexed != "0" * 32:
        return hexed
    return hashlib.sha256(run.encode()).hexdigest()[:32]


class JaegerBackend:
    """Records the tree's spans. A run's spans become a finished trace when its root ends."""

    # Spans are recorded in start order, which the deterministic span ids are derived from.
    defers = False
    own_spans = True

    def __init__(self, max_traces: int | None = 1000) -> None:
        self.traces: deque[list[SpanRecord]] = deque(maxlen=max_traces)
        self._open: dict[str, list[SpanRecord]] = {}  # trace id -> spans of a live run
        self._lock = threading.Lock()

    def start(
        self,
        name: str,
        kind: str,
        parent: SpanRecord | None,
        ts: float,
        attrs: dict[str, Any],
        key: str | None,
    ) -> SpanRecord:
        if parent is None:
            trace_id = _trace_id(key or name)
            spans = self._open[trace_id] = []
        else:
            trace_id = parent.trace_id
            spans = self._open.setdefault(trace_id, [])
        # Deterministic ids: exporting the same recording twice gives the same file.
        span_id = hashlib.sha256(f"{trace_id}/{len(spans)}".encode()).hexdigest()[:16]
        record = SpanRecord(
            trace_id, span_id, parent.span_id if parent else None, name, kind, ts, attrs=dict(attrs)
        )
        spans.append(record)
        return record

    def finished(self) -> list[list[SpanRecord]]:
        """The finished traces, oldest first."""
        with self._lock:
            return list(self.traces)

    def set(self, span: SpanRecord, attrs: dict[str, Any]) -> None:
        span.attrs.update(attrs)

    def add_event(self, span: SpanRecord, name: str, ts: float, attrs: dict[str, Any]) -> None:
        span.events.append((name, ts, dict(attrs)))

    def set_error(self, span: SpanRecord, description: str) -> None:
        span.error = description

    def records(self, root: SpanRecord) -> bool:
        return True

    def end(self, span: SpanRecord, ts: float) -> None:
        span.end = ts
        if span.parent_id is None:
            spans = self._open.pop(span.trace_id, None)
            if spans is not None:
                with self._lock:
                    self.traces.append(spans)


# --- the JSON format ------------------------------------------------------------------------


def _tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if not isinstance(value, str):
        value = json.dumps(value, default=str)
    return {"key": key, "type": "string", "value": value}


def _us(ts: float) -> int:
    return round(ts * 1_000_000)


def _span(record: SpanRecord) -> dict[str, Any]:
    end = record.end if record.end is not None else record.start
    tags = [_tag(k, v) for k, v in record.attrs.items()]
    tags.append(_tag("span.kind", record.kind))
    if record.error is not None:
        # How Jaeger shows an OpenTelemetry ERROR status.
        tags += [
            _tag("error", True),
            _tag("otel.status_code", "ERROR"),
            _tag("otel.status_description", record.error),
        ]
    refs = (
        [{"refType": "CHILD_OF", "traceID": record.trace_id, "spanID": record.parent_id}]
        if record.parent_id
        else []
    )
    logs = [
        {
            "timestamp": _us(ts),
            "fields": [_tag("event", name)] + [_tag(k, v) for k, v in attrs.items()],
        }
        for name, ts, attrs in record.events
    ]
    return {
        "traceID": record.trace_id,
        "spanID": record.span_id,
        "operationName": record.name,
        "references": refs,
        "startTime": _us(record.start),
        "duration": max(0, _us(end) - _us(record.start)),
        "tags": tags,
        "logs": logs,
        "processID": "p1",
        "warnings": None,
        "flags": 1,
    }


def to_jaeger(traces: list[list[SpanRecord]], service_name: str = "loopguard") -> dict[str, Any]:
    """Jaeger's JSON document (`{"data": [trace, ...]}`) for these traces."""
    from loopguard import __version__

    process = {
        "serviceName": service_name,
        "tags": [
            _tag("telemetry.sdk.name", "loopguard"),
            _tag("telemetry.sdk.version", __version__),
        ],
    }
    return {
        "data": [
            {
                "traceID": spans[0].trace_id,
                "spans": [_span(s) for s in spans],
                "processes": {"p1": process},
                "warnings": None,
            }
            for spans in traces
            if spans
        ]
    }


def write(
    path: str | os.PathLike[str], traces: list[list[SpanRecord]], service_name: str = "loopguard"
) -> None:
    """Write the traces to `path`, replacing it atomically (a reader never sees half a file)."""
    target = Path(path)
    doc = to_jaeger(traces, service_name)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


class JaegerFileSink(TreeSink):
    """A guard sink that keeps the last `max_traces` runs' spans and rewrites `path` as Jaeger
    JSON at the end of every run (and on `close()`). For development and offline runs: the
    rewrite happens in the run's own thread; in production, export over OTLP."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        service_name: str = "loopguard",
        max_traces: int = 1000,
    ) -> None:
        self.path = Path(path)
        self.service_name = service_name
        self.backend = JaegerBackend(max_traces)
        super().__init__(SpanTree(self.backend))
        self._write_lock = threading.Lock()

    def on_run_end(self, state: RunState, event: RunEnd) -> None:
        self.tree.run_end(state, event)
        self.flush()

    def flush(self) -> None:
        with self._write_lock:
            write(self.path, self.backend.finished(), self.service_name)

    close = flush
