"""OpenTelemetry for guarded runs: spans, metrics, a one-call setup, and Jaeger's JSON format."""

from loopguard.telemetry.setup import setup
from loopguard.telemetry.spans import SpanSink

__all__ = ["SpanSink", "setup"]
