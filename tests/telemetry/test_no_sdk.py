"""Without an OpenTelemetry SDK the telemetry sink skips a run's work entirely."""

from __future__ import annotations

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import NoOpTracerProvider

from loopguard import Guard, Policy
from loopguard.events import ModelEnd, ModelStart, RunEnd, Usage
from loopguard.telemetry.spans import SpanSink


def _run(sink: SpanSink) -> bool:
    guard = Guard(Policy(), sinks=[sink])
    guard.process(ModelStart(run="r", id="c", model="anthropic.claude-3-haiku-20240307-v1:0"))
    off = sink.tree._runs["r"].off
    guard.process(
        ModelEnd(
            run="r", id="c", model="anthropic.claude-3-haiku-20240307-v1:0", usage=Usage(10, 5)
        )
    )
    guard.process(RunEnd(run="r"))
    assert sink.tree.open_runs == 0
    return off


def test_no_sdk_at_all_means_no_work() -> None:
    sink = SpanSink(tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
    assert _run(sink) is True


def test_live_metrics_keep_the_run_on_without_spans() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    sink = SpanSink(tracer_provider=NoOpTracerProvider(), meter_provider=provider)
    assert _run(sink) is False
    names = {
        m.name
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert {"gen_ai.client.operation.duration", "loopguard.tokens"} <= names
    provider.shutdown()
