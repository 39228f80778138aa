"""Run one scenario: a create_agent agent with the real ChatBedrockConverse client on
FakeBedrock, guarded by loopguard's callback handler under the default policy."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from loopguard.demo.live import LiveSink, PlainRenderer, RichRenderer, RunView
from loopguard.demo.tools import tools_for
from loopguard.detectors import build_detectors
from loopguard.guard import Guard
from loopguard.policy import Policy
from loopguard.testing import Call, FakeBedrock, Scenario
from loopguard.testing.scenarios import get
from loopguard.verdict import LoopGuardAbort, Verdict

DEMO_MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
"""Claude Sonnet 4 through the US cross-region inference profile, as agents commonly call it."""

SYSTEM_PROMPT = """You are a careful research assistant for an online shop's customers.

How to work:
- Use the tools to find facts before you answer. Never guess prices, stock or delivery dates.
- Prefer the shop's own pages over reviews and price trackers; say which source you used.
- If a tool result does not contain what you need, change your approach rather than
  repeating the same call: try another query, open a different result, or say what is missing.
- Keep tool calls to what the question needs; each one costs the customer time.

How to answer:
- One short paragraph, plain language, with the source of each fact.
- Give prices with their currency and the date you checked them.
- If you could not find something, say so plainly and suggest where the customer can look.
"""


@dataclass
class DemoResult:
    scenario: Scenario
    model: str
    view: RunView
    verdict: Verdict | None
    answer: str | None
    seconds: float
    traces: str
    recursion_limit: int | None
    policy: Policy
    cut_stream: Call | None = None
    """The fake server's record of a stream loopguard closed mid-answer, if it did."""
    traces_error: str | None = None
    """Why the traces did not reach `traces`, when they did not."""


def build_agent(llm: Any, scenario: Scenario) -> Any:
    """The agent every demo and example uses: create_agent with the scenario's tools and a
    system prompt ending in a cache point (so Bedrock's prompt cache shows in the usage)."""
    from langchain.agents import create_agent
    from langchain_core.messages import SystemMessage

    system = SystemMessage(
        content=[{"type": "text", "text": SYSTEM_PROMPT}, {"cachePoint": {"type": "default"}}]
    )
    return create_agent(
        llm, tools_for(scenario.tools), system_prompt=system, name=f"{scenario.name}-agent"
    )


OTLP_TIMEOUT = 3.0
"""Seconds the demo gives an OTLP export when OTEL_EXPORTER_OTLP_TIMEOUT is not set: long enough
for a collector on the network, short enough that one nobody runs is reported promptly."""


class Traces:
    """Where the demo's spans go (`where`, for the summary) and, after `finish()`, whether they
    got there. `sink` is the guard sink, None when tracing is off."""

    def __init__(self, sink: Any, where: str) -> None:
        self.sink, self.where = sink, where

    def finish(self) -> str | None:
        """Deliver what is pending; why the traces did not arrive, or None when they did."""
        return None


class _JaegerFile(Traces):
    def finish(self) -> str | None:
        try:
            self.sink.flush()  # the guard writes at the run's end, but swallows a failure
        except OSError as exc:
            return f"cannot write {self.sink.path}: {exc.strerror or exc}"
        return None


class _Otlp(Traces):
    def __init__(self, sink: Any, where: str, provider: Any, delivery: Any) -> None:
        super().__init__(sink, where)
        self.provider, self.delivery = provider, delivery

    def finish(self) -> str | None:
        self.provider.shutdown()  # flushes the batch, through the exporter's own retries
        sent, lost = self.delivery.sent, self.delivery.lost
        if lost:
            return (
                f"the {self.where.removeprefix('OTLP at ')} OTLP endpoint did not take "
                f"{lost} of {sent + lost} spans (no answer, or an error; check "
                "OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_PROTOCOL)"
            )
        return None


def _delivery(exporter: Any) -> Any:
    """`exporter`, counting the spans it delivered and lost (the SDK only logs a failure)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Delivery(SpanExporter):
        def __init__(self) -> None:
            self.sent = self.lost = 0

        def export(self, spans: Any) -> SpanExportResult:
            result: SpanExportResult = exporter.export(spans)
            if result is SpanExportResult.SUCCESS:
                self.sent += len(spans)
            else:
                self.lost += len(spans)
            return result

        def shutdown(self) -> None:
            exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(exporter.force_flush(timeout_millis))

    return Delivery()


def trace_sink(path: Path) -> Traces:
    """Where the traces go: nowhere when OTEL_SDK_DISABLED=true; over OTLP when
    OTEL_EXPORTER_OTLP_ENDPOINT (or the traces one) is set, to a tracer provider of the demo's
    own; else a Jaeger JSON file at `path`."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Traces(None, "off (OTEL_SDK_DISABLED=true)")
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if endpoint:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from loopguard.telemetry import SpanSink
        from loopguard.telemetry.setup import _exporter

        timed = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_TIMEOUT"
        )
        exporter = _exporter("TRACES", "traces", None if timed else OTLP_TIMEOUT)
        if exporter is None:
            return Traces(None, "off (OTEL_TRACES_EXPORTER=none)")
        attrs = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "loopguard-demo"}
        provider = TracerProvider(resource=Resource.create(attrs))
        delivery = _delivery(exporter)
        provider.add_span_processor(BatchSpanProcessor(delivery))
        sink = SpanSink(provider, metrics=False)
        return _Otlp(sink, f"OTLP at {endpoint}", provider, delivery)
    if str(path) == "-":
        from loopguard.telemetry.jaeger import JaegerBackend
        from loopguard.telemetry.tree import SpanTree, TreeSink

        backend = JaegerBackend(max_traces=None)
        return _JaegerStdout(TreeSink(SpanTree(backend)), "stdout", backend)
    from loopguard.telemetry.jaeger import JaegerFileSink

    return _JaegerFile(JaegerFileSink(path, service_name="loopguard-demo"), str(path))


class _JaegerStdout(Traces):
    """`--traces -`: the Jaeger JSON document on stdout once the run is over."""

    def __init__(self, sink: Any, where: str, backend: Any) -> None:
        super().__init__(sink, where)
        self.backend = backend

    def finish(self) -> str | None:
        import json
        import sys

        from loopguard.telemetry.jaeger import to_jaeger

        doc = to_jaeger(self.backend.finished(), "loopguard-demo")
        sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return None


def run(
    scenario_name: str,
    *,
    out: TextIO,
    live: bool,
    traces_path: Path,
    model: str = DEMO_MODEL,
    policy: Policy | None = None,
) -> DemoResult:
    scenario = get(scenario_name)
    policy = policy or Policy()  # the built-in default, whatever loopguard.toml is around
    view = RunView(detectors=[d.name for d in build_detectors(policy)])
    title = f"loopguard demo: {scenario.name}"
    renderer: Any = RichRenderer(out, title) if live else PlainRenderer(out)
    traces = trace_sink(traces_path)
    sinks = [LiveSink(view, renderer)] + ([traces.sink] if traces.sink is not None else [])
    guard = Guard(policy, sinks=sinks)
    from loopguard.integrations.langchain import LoopGuardCallbackHandler

    handler = LoopGuardCallbackHandler(guard, agent=f"{scenario.name}-agent")
    verdict: Verdict | None = None
    answer: str | None = None
    started = time.monotonic()
    # The fake model streams at a pace a terminal can show (and, like a real model, slower
    # than the client reads, so an abort mid-answer leaves most of it unsent).
    with FakeBedrock(scenario.name, chunk_delay=0.004 if live else 0.002) as fake:
        llm = fake.chat_model(model, streaming=True, max_tokens=4096)
        agent = build_agent(llm, scenario)
        with renderer:
            try:
                result = agent.invoke(
                    {"messages": [("user", scenario.task)]}, config={"callbacks": [handler]}
                )
                answer = result["messages"][-1].text
            except LoopGuardAbort as exc:
                verdict = exc.verdict
        fake.wait_idle(timeout=2.0)
        cut = next((c for c in fake.calls if c.outcome == "client_closed"), None)
    seconds = time.monotonic() - started
    traces_error = traces.finish()
    return DemoResult(
        scenario,
        model,
        view,
        verdict,
        answer,
        seconds,
        traces.where,
        (getattr(agent, "config", None) or {}).get("recursion_limit"),
        policy,
        cut,
        traces_error,
    )


__all__ = [
    "DEMO_MODEL",
    "SYSTEM_PROMPT",
    "DemoResult",
    "Traces",
    "build_agent",
    "run",
    "trace_sink",
]
