"""Metrics through the OpenTelemetry metrics API, read back with the SDK's in-memory reader."""

from __future__ import annotations

import pytest

from loopguard.events import Usage
from loopguard.guard import Guard
from loopguard.policy import Policy
from loopguard.telemetry import semconv as sc
from loopguard.telemetry.spans import SpanSink
from tests.telemetry.conftest import feed


def run(otel, script, policy):
    s = script
    guard = Guard(
        policy,
        sinks=[SpanSink(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)],
        pricer=lambda p, model, usage: 0.5,
    )
    m1, t1, m2, m3 = s.new_id(), s.new_id(), s.new_id(), s.new_id()
    events = [
        s.run_start(),
        s.model_start(m1),
        s.model_end(m1, dt=2.0, usage=Usage(100, 10)),
        s.tool_start(t1),
        s.tool_end(t1),
        s.model_start(m2),
        s.model_error(m2, "ThrottlingException: slow down", dt=0.3),
        s.model_start(m3),
        s.model_end(m3, dt=1.0, usage=Usage(200, 20)),
        s.model_start(s.new_id()),
        s.run_end("aborted"),
    ]
    feed(guard, events)


def test_genai_and_loopguard_metrics(otel, script):
    run(otel, script, Policy(max_model_calls=3, warn_model_calls=2))

    tokens = otel.points(sc.METRIC_TOKENS)
    by_type = {p.attributes[sc.TOKEN_TYPE]: p for p in tokens}
    assert set(by_type) == {"input", "output"}  # no cache types when they are 0
    assert by_type["input"].value == 300 and by_type["output"].value == 30
    assert by_type["input"].attributes == {
        sc.TOKEN_TYPE: "input",
        sc.AGENT_NAME: "researcher",
        sc.PROVIDER_NAME: "aws.bedrock",
        sc.REQUEST_MODEL: "anthropic.claude-3-5-haiku-20241022-v1:0",
    }

    durations = otel.points(sc.METRIC_OPERATION_DURATION)
    ok = [p for p in durations if sc.ERROR_TYPE not in p.attributes]
    failed = [p for p in durations if p.attributes.get(sc.ERROR_TYPE) == "ThrottlingException"]
    assert ok[0].count == 2 and ok[0].sum == pytest.approx(3.0)
    assert failed[0].count == 1 and failed[0].sum == pytest.approx(0.3)

    cost = otel.points(sc.METRIC_COST)
    assert sum(p.value for p in cost) == pytest.approx(1.0)  # two priced calls
    assert cost[0].attributes[sc.AGENT_NAME] == "researcher"

    calls = otel.points(sc.METRIC_MODEL_CALLS)
    assert sum(p.value for p in calls) == 3  # two answered, one failed; the refused one not
    tools = otel.points(sc.METRIC_TOOL_CALLS)
    assert [(p.attributes[sc.TOOL_NAME], p.value) for p in tools] == [("calculator", 1)]

    warnings = otel.points(sc.METRIC_WARNINGS)
    limit_warnings = [p for p in warnings if p.attributes[sc.LG_DETECTOR] == "limits"]
    assert limit_warnings and limit_warnings[0].attributes[sc.AGENT_NAME] == "researcher"
    [aborts] = otel.points(sc.METRIC_ABORTS)
    assert aborts.value == 1
    assert aborts.attributes == {
        sc.LG_DETECTOR: "limits",
        sc.LG_ACTION: "abort",
        sc.AGENT_NAME: "researcher",
        sc.LG_ENFORCED: True,
    }


def test_shadow_aborts_are_counted_as_not_enforced(otel, script):
    run(otel, script, Policy(mode="shadow", max_model_calls=3))
    [aborts] = otel.points(sc.METRIC_ABORTS)
    assert aborts.attributes[sc.LG_ENFORCED] is False


def test_many_handlers_on_one_provider_all_count(otel, script):
    # The SDK keeps the first observable counter of a name: the sinks must share it.
    for i in range(3):
        sink = SpanSink(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
        s = type(script)(run=f"0192f0c4-1111-7000-8000-00000000009{i}")
        feed(Guard(Policy(), sinks=[sink]), s.model_calls(2))
    assert sum(p.value for p in otel.points(sc.METRIC_MODEL_CALLS)) == 6


def test_cached_tokens_are_counted_by_type(otel, script):
    s = script
    m1, m2 = s.new_id(), s.new_id()
    sink = SpanSink(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    feed(
        Guard(Policy(), sinks=[sink]),
        [
            s.run_start(),
            s.model_start(m1),
            s.model_end(m1, usage=Usage(1000, 10, 800, 0)),
            s.model_start(m2),
            s.model_end(m2, usage=Usage(1200, 20, 900, 150)),
            s.run_end(),
        ],
    )
    by_type = {p.attributes[sc.TOKEN_TYPE]: p.value for p in otel.points(sc.METRIC_TOKENS)}
    assert by_type == {"input": 2200, "output": 30, "cache_read": 1700, "cache_write": 150}
