"""Jaeger's JSON trace format, from a live run (JaegerFileSink), checked field by field."""

from __future__ import annotations

import json

from loopguard.guard import Guard
from loopguard.policy import Policy
from loopguard.telemetry.jaeger import JaegerFileSink
from loopguard.telemetry.spans import SpanSink
from tests.telemetry.conftest import Script, feed, tags, validate_jaeger


def aborted_run(s: Script) -> list:
    m1, t1, m2, t2, m3 = (s.new_id() for _ in range(5))
    return [
        s.run_start(),
        s.model_start(m1),
        s.model_end(m1),
        s.tool_start(t1),
        s.model_start(m3, parent=t1),
        s.model_end(m3, parent=t1),
        s.tool_end(t1),
        s.model_start(m2),
        s.model_end(m2),
        s.tool_start(t2),
        s.run_end("aborted"),
    ]


def test_live_run_to_jaeger_file(tmp_path, script):
    path = tmp_path / "traces.json"
    sink = JaegerFileSink(path, service_name="my-agent")
    events = aborted_run(script)
    feed(Guard(Policy(max_tool_calls=1), sinks=[sink]), events)

    doc = json.loads(path.read_text())
    spans = validate_jaeger(doc)
    [trace] = doc["data"]
    assert trace["traceID"] == script.run.replace("-", "")  # the root run id
    assert trace["processes"]["p1"]["serviceName"] == "my-agent"
    by_id = {s["spanID"]: s for s in spans}
    names = sorted(s["operationName"] for s in spans)
    assert (
        names
        == ["chat anthropic.claude-3-5-haiku-20241022-v1:0"] * 3
        + ["execute_tool calculator"] * 2
        + ["invoke_agent researcher"]
        + ["run_guardrail loopguard"] * 2
    )  # a warning, the abort
    [root] = [s for s in spans if not s["references"]]
    assert root["startTime"] == round(events[0].ts * 1e6)
    assert root["duration"] == round(events[-1].ts * 1e6) - round(events[0].ts * 1e6)
    rt = tags(root)
    assert rt["error"] is True and rt["otel.status_code"] == "ERROR"
    assert rt["error.type"] == "LoopGuardAbort"
    assert rt["gen_ai.usage.input_tokens"] == 360
    assert rt["span.kind"] == "internal"
    [log] = root["logs"]
    lt = tags(log)
    assert lt["event"] == "loopguard.abort" and lt["loopguard.detector"] == "limits"
    assert lt["loopguard.evidence.max"] == 1
    assert log["timestamp"] == round(events[9].ts * 1e6)
    # The model call made inside the first tool is the tool span's child.
    inner = [
        s
        for s in spans
        if s["operationName"].startswith("chat")
        and by_id[s["references"][0]["spanID"]]["operationName"].startswith("execute_tool")
    ]
    assert len(inner) == 1
    assert tags(inner[0])["span.kind"] == "client"
    assert isinstance(tags(inner[0])["gen_ai.usage.output_tokens"], int)
    refused = [s for s in spans if tags(s).get("loopguard.refused")]
    assert [s["operationName"] for s in refused] == ["execute_tool calculator"]


def test_jaeger_and_otel_spans_are_the_same_tree(tmp_path, otel):
    """One mapping serves both: names, parents, times and attributes agree."""
    path = tmp_path / "traces.json"
    events = aborted_run(Script())
    feed(
        Guard(
            Policy(max_tool_calls=1),
            sinks=[
                JaegerFileSink(path),
                SpanSink(tracer_provider=otel.tracer_provider, metrics=False),
            ],
        ),
        events,
    )
    jaeger = validate_jaeger(json.loads(path.read_text()))
    otel_spans = otel.spans()
    assert len(jaeger) == len(otel_spans)

    def shape_otel(s):
        parent = next(
            (p.name for p in otel_spans if s.parent and p.context.span_id == s.parent.span_id), None
        )
        return (
            s.name,
            parent,
            round(s.start_time / 1000),
            round(s.end_time / 1000),
            tuple(sorted(k for k in s.attributes)),
        )

    def shape_jaeger(s):
        by_id = {x["spanID"]: x for x in jaeger}
        parent = by_id[s["references"][0]["spanID"]]["operationName"] if s["references"] else None
        keys = tuple(
            sorted(
                k
                for k in tags(s)
                if k not in ("span.kind", "error", "otel.status_code", "otel.status_description")
            )
        )
        return (s["operationName"], parent, s["startTime"], s["startTime"] + s["duration"], keys)

    assert sorted(map(shape_otel, otel_spans)) == sorted(map(shape_jaeger, jaeger))


def test_file_keeps_every_finished_run_and_is_valid_after_each(tmp_path):
    path = tmp_path / "traces.json"
    sink = JaegerFileSink(path, max_traces=2)
    guard = Guard(Policy(), sinks=[sink])
    for i in range(3):
        s = Script(run=f"0192f0c4-1111-7000-8000-00000000000{i + 1}")
        m = s.new_id()
        feed(guard, [s.model_start(m), s.model_end(m), s.run_end()])
        doc = json.loads(path.read_text())
        validate_jaeger(doc)
        assert len(doc["data"]) == min(i + 1, 2)
    assert [t["traceID"][-1] for t in doc["data"]] == ["2", "3"]


def test_every_pointer_to_the_jaeger_ui_names_its_upload_tab():
    """Jaeger's UI calls the tab that opens a JSON trace file "Upload" (since 2023)."""
    from pathlib import Path

    from loopguard.cli import main
    from loopguard.demo.summary import _where

    root = Path(__file__).resolve().parents[2]
    places = {
        p: p.read_text()
        for p in [
            root / "README.md",
            root / "docs" / "demo.md",
            root / "docs" / "telemetry.md",
            *sorted((root / "examples").rglob("*.*")),
            root / "loopguard" / "cli" / "export.py",
            root / "loopguard" / "telemetry" / "jaeger.py",
        ]
        if p.suffix in (".md", ".py", ".yaml")
    }
    assert [str(p) for p, text in places.items() if "JSON File" in text] == []
    assert '"Upload" tab' in _where("traces.json")
    for name in ("README.md", "docs/telemetry.md", "docs/demo.md"):
        assert '"Upload" tab' in places[root / name], name
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["export", "--help"])
    assert "Upload" in out.getvalue()
