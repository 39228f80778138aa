"""One call to export loopguard's (and everything else's) telemetry over OTLP.

loopguard itself only uses the OpenTelemetry API. `setup()` is for users who have no
OpenTelemetry configuration yet: it installs SDK providers with OTLP exporters configured by the
standard `OTEL_*` variables, and leaves alone any provider that is already installed.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace

logger = logging.getLogger("loopguard")

PROTOCOLS = ("http/protobuf", "grpc")
EXPORTERS = ("otlp", "console", "none")


@dataclass
class Telemetry:
    """What `setup()` did. A provider is None where one was already installed (kept as is) or
    export of that signal is off."""

    tracer_provider: Any = None
    meter_provider: Any = None

    def shutdown(self) -> None:
        """Flush and stop the providers setup() installed (also done at interpreter exit)."""
        for provider in (self.tracer_provider, self.meter_provider):
            if provider is not None:
                provider.shutdown()


def _env(signal: str, name: str, default: str) -> str:
    # The per-signal variable wins over the general one, as the OTLP exporter spec says.
    value = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_{name}")
        or os.environ.get(f"OTEL_EXPORTER_OTLP_{name}")
        or default
    )
    return value.strip().lower()


def _choice(var: str, value: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise ValueError(
            f"{var}={value!r} is not supported by loopguard.telemetry.setup(); "
            f"accepted: {', '.join(accepted)}"
        )
    return value


def _exporter(signal: str, kind: str, timeout: float | None = None) -> Any:
    """The exporter OTEL_{signal}_EXPORTER names (None for `none`); `timeout` bounds an OTLP
    export in seconds (None: OTEL_EXPORTER_OTLP_TIMEOUT or the exporter's default)."""
    exporter = _choice(
        f"OTEL_{signal}_EXPORTER",
        os.environ.get(f"OTEL_{signal}_EXPORTER", "otlp").strip().lower().split(",")[0],
        EXPORTERS,
    )
    if exporter == "none":
        return None
    if exporter == "console":
        if kind == "traces":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return ConsoleSpanExporter()
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter()
    protocol = _choice(
        "OTEL_EXPORTER_OTLP_PROTOCOL", _env(signal, "PROTOCOL", "http/protobuf"), PROTOCOLS
    )
    module = "grpc" if protocol == "grpc" else "http"
    try:
        signal = "trace" if kind == "traces" else "metric"
        name = "OTLPSpanExporter" if kind == "traces" else "OTLPMetricExporter"
        found = importlib.import_module(
            f"opentelemetry.exporter.otlp.proto.{module}.{signal}_exporter"
        )
        return getattr(found, name)(timeout=timeout)
    except ImportError as exc:
        extra = "otlp-grpc" if module == "grpc" else "otlp"
        raise ImportError(
            f"OTLP export over {protocol} needs the exporter package: "
            f"pip install 'langchain-loopguard[{extra}]' ({exc})"
        ) from exc


def setup(
    service_name: str | None = None, *, traces: bool = True, metrics: bool = True
) -> Telemetry:
    """Install OTLP-exporting tracer and meter providers as the global ones, unless one is
    already installed. Configured by the standard variables: OTEL_EXPORTER_OTLP_ENDPOINT (and the
    per-signal ones), OTEL_EXPORTER_OTLP_PROTOCOL (`http/protobuf`, the default, or `grpc` with
    the `otlp-grpc` extra), OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME,
    OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER (`otlp`, `console`,
    `none`), OTEL_SDK_DISABLED. `service_name` is used when OTEL_SERVICE_NAME is not set.
    """
    done = Telemetry()
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return done
    try:
        from opentelemetry.sdk.resources import Resource
    except ImportError:
        raise ImportError(
            "loopguard.telemetry.setup() installs the OpenTelemetry SDK's providers: "
            "pip install 'langchain-loopguard[telemetry]' (or [otlp] to export over OTLP)"
        ) from None

    attrs = {}
    if service_name and not os.environ.get("OTEL_SERVICE_NAME"):
        attrs["service.name"] = service_name
    resource = Resource.create(attrs)

    if traces and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        exporter = _exporter("TRACES", "traces")
        if exporter is not None:
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider = TracerProvider(resource=resource)
            provider.add_span_processor(BatchSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            done.tracer_provider = provider
    elif traces:
        logger.info("loopguard.telemetry.setup: a tracer provider is already installed; kept")

    if metrics and _no_meter_provider():
        exporter = _exporter("METRICS", "metrics")
        if exporter is not None:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            meter_provider = MeterProvider(
                resource=resource, metric_readers=[PeriodicExportingMetricReader(exporter)]
            )
            otel_metrics.set_meter_provider(meter_provider)
            done.meter_provider = meter_provider
    elif metrics:
        logger.info("loopguard.telemetry.setup: a meter provider is already installed; kept")
    return done


def _no_meter_provider() -> bool:
    from loopguard.telemetry.metrics import is_proxy

    return is_proxy(otel_metrics.get_meter_provider())
