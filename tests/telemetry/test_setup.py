"""loopguard.telemetry.setup(): OTLP from the standard OTEL_* variables, never replacing a
provider. Each case runs in a fresh interpreter: global providers can be set once per process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import require

_RUN = textwrap.dedent("""
    from loopguard.events import ModelStart, ModelEnd, RunEnd, Usage
    from loopguard.guard import Guard
    from loopguard.telemetry import SpanSink, setup

    telemetry = setup("setup-test")
    guard = Guard(sinks=[SpanSink()])  # the global providers
    guard.process(ModelStart(run="r1", agent="a", ts=1.0e9, id="m1", model="gpt-4o"))
    guard.process(ModelEnd(run="r1", agent="a", ts=1.0e9 + 1, id="m1", model="gpt-4o",
                           usage=Usage(5, 7)))
    guard.process(RunEnd(run="r1", agent="a", ts=1.0e9 + 2))
    telemetry.shutdown()
""")


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_setup_exports_over_otlp_http_from_env(otlp_receiver):
    require("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    done = _python(_RUN, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint)
    assert done.returncode == 0, done.stderr
    spans = otlp_receiver.wait_for(2)
    assert sorted(s.name for s in spans) == ["chat gpt-4o", "invoke_agent a"]
    assert otlp_receiver.resources()[0]["service.name"] == "setup-test"
    assert "/v1/metrics" in otlp_receiver.paths  # metrics flushed at shutdown


def test_otel_service_name_wins_over_the_argument(otlp_receiver):
    require("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    done = _python(
        _RUN,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{otlp_receiver.endpoint}/v1/traces",
        OTEL_METRICS_EXPORTER="none",
        OTEL_SERVICE_NAME="from-env",
    )
    assert done.returncode == 0, done.stderr
    otlp_receiver.wait_for(2)
    assert otlp_receiver.resources()[0]["service.name"] == "from-env"
    assert "/v1/metrics" not in otlp_receiver.paths


def test_setup_keeps_a_provider_the_user_installed():
    code = textwrap.dedent("""
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        from loopguard.telemetry import setup

        mine, my_meters = TracerProvider(), MeterProvider()
        trace.set_tracer_provider(mine)
        metrics.set_meter_provider(my_meters)
        done = setup("x")
        assert trace.get_tracer_provider() is mine
        assert metrics.get_meter_provider() is my_meters
        assert done.tracer_provider is None and done.meter_provider is None
        print("kept")
    """)
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "kept"


def test_grpc_protocol_uses_the_grpc_exporter():
    require("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
    code = textwrap.dedent("""
        from opentelemetry import trace
        from loopguard.telemetry import setup

        done = setup(metrics=False)
        processor = done.tracer_provider._active_span_processor._span_processors[0]
        print(type(processor._batch_processor._exporter).__module__)
    """)
    done = _python(
        code, OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("opentelemetry.exporter.otlp.proto.grpc")


@pytest.mark.parametrize(
    "env, message",
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "accepted: http/protobuf, grpc"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "accepted: otlp, console, none"),
    ],
)
def test_unsupported_settings_are_named(env, message, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from loopguard.telemetry.setup import _exporter

    with pytest.raises(ValueError, match=message):
        _exporter("TRACES", "traces")


def test_sdk_disabled_does_nothing():
    code = textwrap.dedent("""
        from opentelemetry import trace
        from loopguard.telemetry import setup

        done = setup()
        assert done.tracer_provider is None
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        print("off")
    """)
    done = _python(code, OTEL_SDK_DISABLED="true")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "off"
