"""Nothing that leaves the process carries content by default (issue 12, items 10 and 11).

A real agent (create_agent + ChatBedrockConverse on the fake Bedrock server, streaming) with a
secret in every field it handles: the prompt, the model's answers, tool arguments, tool results,
a tool's error and the run's metadata. It loops on one tool call until loopguard stops it; a
second run streams a repeated passage until loopguard cuts the stream. Then no secret may appear
in what left the process: the spans as exported over OTLP (decoded on a loopback receiver), the
metrics, loopguard's log records (at DEBUG), the flight recording (record_content=False), the
abort's text and its verdict's dict.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from loopguard import LoopGuardAbort, LoopGuardCallbackHandler, Policy
from loopguard.telemetry import semconv as sc
from tests.conftest import require
from tests.telemetry.conftest import attrs

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
SECRETS = {
    "prompt": "PromptSecretQx41",
    "completion": "CompletionSecretZr82",
    "args": "ArgsSecretKv53",
    "result": "ResultSecretJw64",
    "tool error": "ToolErrorSecretHb75",
    "metadata": "user.secret.Np96@example.com",
    "stream": "StreamSecretTd17",
}


class Exported:
    """Everything one test's runs sent out of the process, as text to search."""

    def __init__(self, receiver: Any, reader: InMemoryMetricReader, tmp_path: Any) -> None:
        self.receiver, self.reader, self.tmp_path = receiver, reader, tmp_path
        self.exceptions: list[str] = []

    def places(self, caplog: Any, recording: str) -> dict[str, str]:
        metrics = self.reader.get_metrics_data()
        return {
            "spans (OTLP export requests)": "\n".join(str(r) for r in self.receiver.requests),
            "metrics": metrics.to_json() if metrics is not None else "",
            "log records": "\n".join(
                f"{r.getMessage()}\n{r.exc_text or ''}"
                for r in caplog.records
                if r.name.startswith("loopguard")
            ),
            "recording": recording,
            "exceptions and verdicts": "\n".join(self.exceptions),
        }


def _agent_runs(
    otlp_receiver: Any, tmp_path: Any, caplog: Any, adapter: str = "handler"
) -> tuple[Exported, list[Any]]:
    require("langchain.agents")
    require("langchain_aws")
    http = require("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    from langchain.agents import create_agent
    from langchain_core.tools import ToolException, tool

    from loopguard import LoopGuardMiddleware
    from loopguard.testing import FakeBedrock, Reply

    @tool
    def lookup(query: str) -> str:
        """Look a record up."""
        return f"record for {query}: {SECRETS['result']}"

    @tool
    def audit(query: str) -> str:
        """Audit a record."""
        raise ValueError(f"cannot audit {query}: {SECRETS['tool error']}")

    @tool("audit")
    def audit_handled(query: str) -> str:
        """Audit a record."""
        raise ToolException(f"cannot audit {query}: {SECRETS['tool error']}")

    audit_handled.handle_tool_error = True  # the error goes back to the model as a message

    provider = TracerProvider(resource=Resource.create({"service.name": "privacy"}))
    provider.add_span_processor(
        SimpleSpanProcessor(http.OTLPSpanExporter(endpoint=f"{otlp_receiver.endpoint}/v1/traces"))
    )
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    recording = tmp_path / "run.jsonl"
    options: dict[str, Any] = dict(
        policy=Policy(),
        agent="support",
        record_to=recording,
        record_content=False,
        tracer_provider=provider,
        meter_provider=meters,
    )
    guarded: Any
    if adapter == "handler":
        guarded = LoopGuardCallbackHandler(**options)
        config = {"callbacks": [guarded], "metadata": {"user_email": SECRETS["metadata"]}}
        middleware = []
    else:
        guarded = LoopGuardMiddleware(**options)
        config = {"metadata": {"user_email": SECRETS["metadata"]}}
        middleware = [guarded]
    exported = Exported(otlp_receiver, reader, tmp_path)
    said = f"Checking the record again. {SECRETS['completion']}"
    looping = [Reply.calling("lookup", said, query=SECRETS["args"]) for _ in range(8)]
    failing = [Reply.calling("audit", said, query=SECRETS["args"]), Reply(text=said)]
    repeated = f"The answer is {SECRETS['stream']} and nothing else, as said before. "
    streaming = [Reply(text="Here it is. " + repeated * 40, words_per_chunk=3)]
    aborts = []
    caplog.set_level(logging.DEBUG, logger="loopguard")
    # The middleware sees no streamed chunks (LangChain gives middleware whole answers).
    scripts = (looping, failing, streaming) if adapter == "handler" else (looping, failing)
    # Through the handler the failing tool raises (the tool span's status is then made from
    # the exception); through the middleware it fails the way agents recover from (an error
    # message to the model): an exception out of a middleware agent never ends its run.
    failing_tool = audit if adapter == "handler" else audit_handled
    expected = {id(looping): LoopGuardAbort, id(streaming): LoopGuardAbort}
    expected[id(failing)] = ValueError if adapter == "handler" else None
    for script in scripts:
        with FakeBedrock(script) as fake:
            model = fake.chat_model(MODEL, streaming=True)
            agent = create_agent(model, [lookup, failing_tool], middleware=middleware)
            question = {"messages": [("user", f"Find my order {SECRETS['prompt']}")]}
            if expected[id(script)] is None:
                agent.invoke(question, config=config)
                continue
            # The tool's own exception reaches the caller as it was raised: it is the
            # user's, not loopguard's, so it is not among the places searched.
            with pytest.raises(expected[id(script)]) as info:
                agent.invoke(question, config=config)
        if isinstance(info.value, LoopGuardAbort):
            aborts.append(info.value)
            exported.exceptions += [
                str(info.value),
                repr(info.value),
                json.dumps(info.value.verdict.to_dict()),
            ]
    assert provider.force_flush(10_000)
    provider.shutdown()
    for sink in guarded.guard.sinks:
        getattr(sink, "close", lambda: None)()
    return exported, aborts


@pytest.mark.parametrize("adapter", ["handler", "middleware"])
def test_no_content_leaves_the_process_by_default(otlp_receiver, tmp_path, caplog, adapter):
    exported, aborts = _agent_runs(otlp_receiver, tmp_path, caplog, adapter)
    places = exported.places(caplog, (tmp_path / "run.jsonl").read_text())
    # The runs did what they are meant to: a tool loop stopped, a stream cut, a tool failed.
    expected = ["tool_repeat", "stream"] if adapter == "handler" else ["tool_repeat"]
    assert [a.verdict.detector for a in aborts] == expected
    assert "the same call to lookup" in aborts[0].verdict.reason
    spans = otlp_receiver.spans()
    assert {s.name for s in spans} >= {"execute_tool audit", "execute_tool lookup"}
    assert "recording" in places and places["recording"].count("\n") > 10
    for where, text in places.items():
        for what, secret in SECRETS.items():
            assert secret.lower() not in text.lower(), f"the {what} is in the {where}"

    # What does leave: names, counts, sizes and digests.
    failed = next(s for s in spans if s.name == "execute_tool audit")
    # The handler sees the exception, the middleware the error message the model gets.
    error_type = "ValueError" if adapter == "handler" else "_OTHER"
    assert failed.status.message == f"{error_type} (message not captured)"
    root = next(s for s in spans if s.name == "invoke_agent support")
    assert attrs(root.attributes)[sc.AGENT_NAME] == "support"
    events = [attrs(e.attributes) for s in spans for e in s.events if e.name == "loopguard.abort"]
    if adapter == "handler":
        stream_abort = next(e for e in events if e["loopguard.detector"] == "stream")
        assert stream_abort["loopguard.evidence.passage_digest"].startswith("sha256:")


def test_opt_in_shows_content_clipped(otlp_receiver, tmp_path, caplog, monkeypatch):
    from loopguard.telemetry import content

    monkeypatch.setenv(content.CAPTURE_ENV, "true")
    exported, _ = _agent_runs(otlp_receiver, tmp_path, caplog)
    spans = otlp_receiver.spans()
    failed = next(s for s in spans if s.name == "execute_tool audit")
    assert SECRETS["tool error"] in failed.status.message
    lookups = [attrs(s.attributes) for s in spans if s.name == "execute_tool lookup"]
    assert any(SECRETS["args"] in a.get(sc.TOOL_CALL_ARGUMENTS, "") for a in lookups)
    chats = [attrs(s.attributes) for s in spans if s.name.startswith("chat ")]
    assert all(len(c[sc.INPUT_MESSAGES]) <= content.MAX_HISTORY_CHARS for c in chats)
    # Logs and exception text stay free of content even then: they are not opt-in places.
    for secret in SECRETS.values():
        assert secret not in exported.places(caplog, "")["log records"]
        assert secret not in exported.places(caplog, "")["exceptions and verdicts"]


def test_names_cannot_forge_log_lines_nor_make_huge_spans(otel, script, caplog):
    """Item 11: tool names and model ids come from the model (and from recordings replayed):
    escaped and bounded wherever they are shown."""
    from loopguard import Guard
    from loopguard.telemetry.spans import SpanSink
    from tests.telemetry.conftest import feed

    forged = "lookup\nERROR loopguard: run 42 stopped by the admin"
    huge = "t" * 1_000_000
    s = script
    sink = SpanSink(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    guard = Guard(Policy(max_tool_calls=3), sinks=[sink])
    caplog.set_level(logging.DEBUG, logger="loopguard")
    m, t1, t2, t3, t4 = (s.new_id() for _ in range(5))
    events = [s.run_start(), s.model_start(m, model="m" * 1_000_000 + "\nforged"), s.model_end(m)]
    for t, name in ((t1, forged), (t2, huge), (t3, forged), (t4, huge)):
        events += [s.tool_start(t, tool=name), s.tool_end(t, tool=name)]
    aborts = feed(guard, [*events, s.run_end("aborted")])
    assert aborts, "the fourth tool call is over max_tool_calls"
    records = [r for r in caplog.records if r.name.startswith("loopguard")]
    assert records, "the guard logged its warning and its abort"
    for r in records:
        line = r.getMessage()
        assert "\n" not in line and len(line) < 5_000, line[:200]
    assert "\n" not in str(aborts[0]) and len(str(aborts[0])) < 5_000
    for span in otel.spans():
        assert len(span.name) < 300 and "\n" not in span.name
        for value in span.attributes.values():
            assert len(str(value)) < 5_000
        for event in span.events:
            assert all(len(str(v)) < 5_000 for v in event.attributes.values())
    names = {span.name for span in otel.spans()}
    assert "execute_tool lookup\\nERROR loopguard: run 42 stopped by the admin" in names
    # Two long names that share a prefix stay apart (size and digest at the end).
    assert sum(1 for n in names if n.startswith("execute_tool ttt")) == 1
    data = otel.reader.get_metrics_data()
    assert data is not None and len(data.to_json()) < 200_000


def test_a_tenant_budget_names_no_tenant(otel, script, caplog):
    """A budget's ledger key holds the tenant's id, a metadata value: the verdict that stops
    the run, and everything made of it, must not show it."""
    import uuid

    from loopguard import Guard
    from loopguard.telemetry.spans import SpanSink
    from tests.telemetry.conftest import feed

    tenant = SECRETS["metadata"]
    policy = Policy.model_validate(
        {
            "ledger": f"memory://{uuid.uuid4().hex}",
            "budgets": [{"scope": "tenant", "key": "user_email", "max_usd": 0.0001}],
        }
    )
    sink = SpanSink(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    guard = Guard(policy, sinks=[sink])
    caplog.set_level(logging.DEBUG, logger="loopguard")
    s = script
    m1, m2 = s.new_id(), s.new_id()
    meta = {"user_email": tenant}
    events = [s.run_start(meta=meta), s.model_start(m1, meta=meta), s.model_end(m1)]
    aborts = feed(guard, [*events, s.model_start(m2, meta=meta), s.run_end("aborted")])
    assert aborts and {a.verdict.detector for a in aborts} == {"budget"}
    texts = [str(aborts[0]), json.dumps(aborts[0].verdict.to_dict())]
    texts += [r.getMessage() for r in caplog.records if r.name.startswith("loopguard")]
    for span in otel.spans():
        texts += [str(dict(span.attributes)), str(span.status.description)]
        texts += [str(dict(e.attributes)) for e in span.events]
    quoted = tenant.replace("@", "%40")
    assert [t for t in texts if tenant in t or quoted in t] == []
