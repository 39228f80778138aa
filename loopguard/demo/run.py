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


def trace_sink(path: Path) -> tuple[Any, str, Any]:
    """OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces one) is set, else a Jaeger JSON file.
    Returns (sink, where the traces go, the telemetry handle to shut down or None)."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if endpoint:
        from loopguard.telemetry import SpanSink, setup

        telemetry = setup("loopguard-demo", metrics=False)
        return SpanSink(metrics=False), f"OTLP at {endpoint}", telemetry
    from loopguard.telemetry.jaeger import JaegerFileSink

    return JaegerFileSink(path, service_name="loopguard-demo"), str(path), None


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
    sink, traces, telemetry = trace_sink(traces_path)
    guard = Guard(policy, sinks=[LiveSink(view, renderer), sink])
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
    if telemetry is not None:
        telemetry.shutdown()  # flush the batch exporter before the process ends
    return DemoResult(
        scenario,
        model,
        view,
        verdict,
        answer,
        seconds,
        traces,
        (getattr(agent, "config", None) or {}).get("recursion_limit"),
        policy,
        cut,
    )


__all__ = ["DEMO_MODEL", "SYSTEM_PROMPT", "DemoResult", "build_agent", "run", "trace_sink"]
