"""Spans sent with the real OTLP/HTTP exporter to a receiver on loopback, decoded from protobuf."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from loopguard.guard import Guard
from loopguard.policy import Policy
from loopguard.telemetry.spans import SpanSink
from tests.conftest import require
from tests.telemetry.conftest import attrs, feed, ns


def test_otlp_http_export_of_an_aborted_run(otlp_receiver, script):
    http = require("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    require("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
    exporter = http.OTLPSpanExporter(endpoint=f"{otlp_receiver.endpoint}/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": "otlp-test"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    guard = Guard(
        Policy(max_tool_calls=1),
        sinks=[SpanSink(tracer_provider=provider, meter_provider=None, metrics=False)],
    )
    s = script
    m1, t1, m2, t2 = s.new_id(), s.new_id(), s.new_id(), s.new_id()
    events = [
        s.run_start(),
        s.model_start(m1),
        s.model_end(m1),
        s.tool_start(t1),
        s.tool_end(t1),
        s.model_start(m2),
        s.model_end(m2),
        s.tool_start(t2),
        s.run_end("aborted"),
    ]
    assert len(feed(guard, events)) == 1
    assert provider.force_flush(10_000)
    spans = otlp_receiver.wait_for(5)
    provider.shutdown()

    assert set(otlp_receiver.paths) == {"/v1/traces"}
    assert otlp_receiver.content_types[0] == "application/x-protobuf"
    assert otlp_receiver.resources()[0]["service.name"] == "otlp-test"
    by_name: dict[str, list] = {}
    for sp in spans:
        by_name.setdefault(sp.name, []).append(sp)
    assert sorted((k, len(v)) for k, v in by_name.items()) == [
        ("chat anthropic.claude-3-5-haiku-20241022-v1:0", 2),
        ("execute_tool calculator", 2),
        ("invoke_agent researcher", 1),
        ("run_guardrail loopguard", 2),
    ]
    [root] = by_name["invoke_agent researcher"]
    assert root.parent_span_id == b""
    assert len(root.trace_id) == 16 and len(root.span_id) == 8
    for sp in spans:
        assert sp.trace_id == root.trace_id
        if sp is not root and sp.name != "run_guardrail loopguard":
            assert sp.parent_span_id == root.span_id
    assert root.start_time_unix_nano == ns(events[0].ts)
    assert root.end_time_unix_nano == ns(events[-1].ts)

    # The abort: ERROR status (2 = STATUS_CODE_ERROR), error.type and the evidence event.
    assert root.status.code == 2
    ra = attrs(root.attributes)
    assert ra["error.type"] == "LoopGuardAbort"
    assert ra["gen_ai.operation.name"] == "invoke_agent"
    assert ra["gen_ai.agent.name"] == "researcher"
    [abort] = [ev for ev in root.events if ev.name == "loopguard.abort"]
    ea = attrs(abort.attributes)
    assert ea["loopguard.detector"] == "limits"
    assert ea["loopguard.evidence.max"] == 1
    assert ea["loopguard.step"] == 3
    assert abort.time_unix_nano == ns(events[7].ts)

    chat = attrs(by_name["chat anthropic.claude-3-5-haiku-20241022-v1:0"][0].attributes)
    assert chat["gen_ai.provider.name"] == "aws.bedrock"
    assert chat["gen_ai.usage.input_tokens"] == 120
    assert chat["gen_ai.usage.output_tokens"] == 30
    assert by_name["chat anthropic.claude-3-5-haiku-20241022-v1:0"][0].kind == 3  # CLIENT
    refused = [
        sp
        for sp in by_name["execute_tool calculator"]
        if attrs(sp.attributes).get("loopguard.refused")
    ]
    assert len(refused) == 1 and refused[0].status.code == 2
