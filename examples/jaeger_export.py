"""Traces of a guarded run in Jaeger: over OTLP when a collector is configured, else as a
Jaeger JSON file you can open in the Jaeger UI (Search, then the "Upload" tab).

    python examples/jaeger_export.py                       # writes loopguard-traces-example.json
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 python examples/jaeger_export.py
"""

from __future__ import annotations

import json
import os

from _bedrock import chat_model
from langchain.agents import create_agent

from loopguard import Guard, LoopGuardAbort, LoopGuardCallbackHandler, Policy
from loopguard.demo.tools import web_search

TRACE_FILE = "loopguard-traces-example.json"
endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")

if endpoint:
    from loopguard.telemetry import setup

    telemetry = setup("loopguard-example")  # OTLP exporters from the OTEL_* variables
    # A handler that builds its own guard emits spans through the global tracer provider.
    handler = LoopGuardCallbackHandler(policy=Policy(), agent="shopper")
else:
    from loopguard.telemetry.jaeger import JaegerFileSink

    telemetry = None
    handler = LoopGuardCallbackHandler(
        Guard(Policy(), sinks=[JaegerFileSink(TRACE_FILE)]), agent="shopper"
    )

with chat_model("search-loop") as llm:
    agent = create_agent(llm, [web_search], name="shopper")
    try:
        agent.invoke(
            {"messages": [("user", "What does the ACME X100 cost today?")]},
            config={"callbacks": [handler]},
        )
    except LoopGuardAbort as stop:
        print(f"stopped by {stop.verdict.detector} at model call {stop.verdict.step}")

if telemetry is not None:
    telemetry.shutdown()  # flush before exit
    print(f"spans sent over OTLP to {endpoint}; in Jaeger look for service loopguard-example")
else:
    with open(TRACE_FILE, encoding="utf-8") as f:
        spans = [s for trace in json.load(f)["data"] for s in trace["spans"]]
    names = sorted({s["operationName"] for s in spans})
    print(f"wrote {len(spans)} spans to {TRACE_FILE}: {', '.join(names)}")
