"""OpenTelemetry spans and metrics for guarded runs: the telemetry sink of the guard.

Spans are created with an explicit parent context and explicit start and end times taken from the
events, and no context is ever attached: nothing is left current after a run, however it ends,
and spans are right when callbacks run on other threads.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from loopguard.telemetry.metrics import metrics_for
from loopguard.telemetry.tree import CLIENT, SpanTree, TreeSink

MODES = ("spans", "annotate")


class OtelBackend:
    """Makes the tree's spans real OpenTelemetry spans."""

    # Spans are started late, with all their attributes: the SDK's cost is per call, and one
    # start_span with every attribute is cheaper than a start plus set_attributes.
    defers = True
    own_spans = True

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        # The context of the last parent: in a run, most spans are children of its root. One
        # tuple, so threads replace it whole.
        self._last: tuple[Any, Any] = (None, None)

    def start(
        self, name: str, kind: str, parent: Any, ts: float, attrs: dict[str, Any], key: str | None
    ) -> Any:
        # The root has no loopguard parent: it joins whatever trace the caller has current
        # (a web request, a job), which is only read, never changed.
        context = None
        if parent is not None:
            last_parent, context = self._last
            if last_parent is not parent:
                context = trace.set_span_in_context(parent)
                self._last = (parent, context)
        return self.tracer.start_span(
            name,
            context=context,
            kind=SpanKind.CLIENT if kind == CLIENT else SpanKind.INTERNAL,
            attributes=attrs,
            start_time=int(ts * 1e9),
        )

    def set(self, span: Any, attrs: dict[str, Any]) -> None:
        span.set_attributes(attrs)

    def add_event(self, span: Any, name: str, ts: float, attrs: dict[str, Any]) -> None:
        span.add_event(name, attrs, timestamp=int(ts * 1e9))

    def set_error(self, span: Any, description: str) -> None:
        span.set_status(Status(StatusCode.ERROR, description))

    def end(self, span: Any, ts: float) -> None:
        span.end(end_time=int(ts * 1e9))

    def records(self, root: trace.Span) -> bool:
        return root.is_recording()


class SpanSink(TreeSink):
    """The guard's OpenTelemetry sink.

    Args:
        tracer_provider, meter_provider: default to the global providers (looked up when used,
            so a provider set after this sink is made still counts).
        mode: "spans" creates loopguard's own span tree; "annotate" creates none and adds
            loopguard's attributes, events and abort status to the spans another
            instrumentation (OpenInference, OpenLLMetry, or whatever span is current) made.
        metrics: also record metrics (default True).
        span_lookup: annotate mode only: a function from a LangChain run id to the span to
            annotate (default: found from the active instrumentation, see annotate.py).
    """

    def __init__(
        self,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        *,
        mode: str = "spans",
        metrics: bool = True,
        span_lookup: Any = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"SpanSink mode must be one of {', '.join(MODES)}; got {mode!r}")
        from loopguard import __version__

        self.mode = mode
        if mode == "spans":
            backend: Any = OtelBackend(trace.get_tracer("loopguard", __version__, tracer_provider))
        else:
            from loopguard.telemetry.annotate import AnnotateBackend

            backend = AnnotateBackend(span_lookup)
        super().__init__(SpanTree(backend, metrics_for(meter_provider) if metrics else None))
