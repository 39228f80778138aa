"""`loopguard export FILE.jsonl --format jaeger -o traces.json`."""

from __future__ import annotations

import json

from loopguard.cli import main
from tests.telemetry.conftest import Script, tags, validate_jaeger


def _record(path, events):
    path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))


def _recording(tmp_path):
    s = Script()
    m1, t1, m2, t2 = (s.new_id() for _ in range(4))
    events = [
        s.run_start(),
        s.model_start(m1),
        s.model_end(m1),
        s.tool_start(t1),
        s.tool_end(t1),
        s.model_start(m2),
        s.model_end(m2),
        s.tool_start(t2),
        s.tool_end(t2),
        s.run_end(),
    ]
    path = tmp_path / "run.jsonl"
    _record(path, events)
    return path, events


def test_export_recording_to_jaeger(tmp_path, capsys):
    path, events = _recording(tmp_path)
    out = tmp_path / "traces.json"
    assert (
        main(
            [
                "export",
                str(path),
                "--format",
                "jaeger",
                "-o",
                str(out),
                "--service-name",
                "replayed",
            ]
        )
        == 0
    )
    assert "wrote 6 spans in 1 trace(s)" in capsys.readouterr().err
    doc = json.loads(out.read_text())
    spans = validate_jaeger(doc)
    assert doc["data"][0]["processes"]["p1"]["serviceName"] == "replayed"
    assert sorted(s["operationName"] for s in spans) == sorted(
        ["invoke_agent researcher"]
        + ["chat anthropic.claude-3-5-haiku-20241022-v1:0"] * 2
        + ["execute_tool calculator"] * 2
        + ["run_guardrail loopguard"]  # the default policy's warning
    )
    [root] = [s for s in spans if not s["references"]]
    assert root["startTime"] == round(events[0].ts * 1e6)
    assert "error" not in tags(root)


def test_export_judges_the_recording_with_a_policy(tmp_path, capsys):
    path, events = _recording(tmp_path)
    policy = tmp_path / "strict.toml"
    policy.write_text("max_tool_calls = 1\n")
    assert main(["export", str(path), "--policy", str(policy)]) == 0  # to stdout
    doc = json.loads(capsys.readouterr().out)
    spans = validate_jaeger(doc)
    [root] = [s for s in spans if not s["references"]]
    assert tags(root)["error.type"] == "LoopGuardAbort"
    [log] = root["logs"]
    assert tags(log)["event"] == "loopguard.abort"
    assert tags(log)["loopguard.evidence.max"] == 1
    refused = [s for s in spans if tags(s).get("loopguard.refused")]
    assert len(refused) == 1 and refused[0]["startTime"] == round(events[7].ts * 1e6)


def test_a_recording_cut_off_mid_run_still_ends(tmp_path, capsys):
    s = Script()
    m = s.new_id()
    events = [s.run_start(), s.model_start(m)]
    path = tmp_path / "cut.jsonl"
    _record(path, events)
    assert main(["export", str(path)]) == 0
    spans = validate_jaeger(json.loads(capsys.readouterr().out))
    assert len(spans) == 2
    assert all(tags(sp).get("error") is True for sp in spans)
    assert all(sp["startTime"] + sp["duration"] == round(events[-1].ts * 1e6) for sp in spans)


def test_a_corrupt_line_is_named_and_skipped(tmp_path, capsys):
    path, _ = _recording(tmp_path)
    lines = path.read_text().splitlines()
    lines.insert(2, json.dumps({"v": 1, "type": "model_end", "run": "r", "ts": 1.0}))
    lines.insert(3, "{not json")
    path.write_text("\n".join(lines) + "\n")
    assert main(["export", str(path)]) == 1
    out, err = capsys.readouterr()
    assert f"{path}:3:" in err and "'model'" in err
    assert f"{path}:4:" in err
    assert len(validate_jaeger(json.loads(out))) == 6  # the rest is still exported


def test_several_recordings_and_a_bad_policy(tmp_path, capsys):
    path, _ = _recording(tmp_path)
    other = tmp_path / "other.jsonl"
    other.write_text(path.read_text().replace("0192f0c4-1111", "0192f0c4-3333"))
    assert main(["export", str(path), str(other)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(validate_jaeger(doc)) == 12 and len(doc["data"]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("max_tool_calls = -1\n")
    assert main(["export", str(path), "--policy", str(bad)]) == 2
    assert "max_tool_calls" in capsys.readouterr().err


def test_missing_file(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_export_of_a_recording_equals_the_live_trace(tmp_path, capsys):
    """The flight recorder's file, exported, gives the trace the live run wrote."""
    from tests.conftest import require

    require("langchain.agents")
    require("langchain_aws")
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from loopguard import LoopGuardAbort, LoopGuardCallbackHandler, Policy
    from loopguard.telemetry.jaeger import JaegerFileSink
    from loopguard.testing import FakeBedrock, Reply

    @tool
    def web_search(query: str) -> str:
        """Search the web."""
        return f"results for {query}"

    recording, live, exported = (tmp_path / n for n in ("run.jsonl", "live.json", "out.json"))
    handler = LoopGuardCallbackHandler(
        policy=Policy(max_tool_calls=2), agent="researcher", record_to=recording, telemetry=False
    )
    handler.guard.sinks.append(JaegerFileSink(live))
    script = [Reply.calling("web_search", f"Searching {i}.", query=f"topic {i}") for i in range(5)]
    with FakeBedrock(script) as fake:
        agent = create_agent(
            fake.chat_model("anthropic.claude-3-5-haiku-20241022-v1:0", streaming=True),
            [web_search],
        )
        try:
            agent.invoke({"messages": [("user", "research")]}, config={"callbacks": [handler]})
        except LoopGuardAbort:
            pass
    for sink in handler.guard.sinks:
        getattr(sink, "close", lambda: None)()
    policy = tmp_path / "policy.toml"
    policy.write_text("max_tool_calls = 2\n")
    assert main(["export", str(recording), "--policy", str(policy), "-o", str(exported)]) == 0
    live_doc, exported_doc = json.loads(live.read_text()), json.loads(exported.read_text())
    assert len(validate_jaeger(live_doc)) == 9  # 2 of them guardrail runs
    assert exported_doc == live_doc


def _exact_repeat(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from _scenarios import exact_repeat

    path = tmp_path / "loop.jsonl"
    _record(path, exact_repeat().events)
    return path


def test_a_stopped_run_gets_one_abort_and_no_log_lines(tmp_path, capsys, caplog):
    path = _exact_repeat(tmp_path)
    with caplog.at_level("WARNING", logger="loopguard"):
        assert main(["export", str(path)]) == 0
    out, err = capsys.readouterr()
    spans = validate_jaeger(json.loads(out))
    events = [tags(log)["event"] for sp in spans for log in sp["logs"]]
    assert events.count("loopguard.abort") == 1, events
    assert err == "" and not caplog.records  # as quiet as replay


def test_service_name_from_otel_service_name(tmp_path, capsys, monkeypatch):
    path, _ = _recording(tmp_path)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout-agent")
    assert main(["export", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["data"][0]["processes"]["p1"]["serviceName"] == "checkout-agent"
    assert main(["export", str(path), "--service-name", "explicit"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["data"][0]["processes"]["p1"]["serviceName"] == "explicit"


def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(tmp_path, capsys):
    path, _ = _recording(tmp_path)
    target = tmp_path / "missing" / "x.json"
    assert main(["export", str(path), "-o", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"loopguard export: -o {target}: no such folder {target.parent}\n"
    )
    assert main(["export", str(path), "-o", str(tmp_path)]) == 2  # said before any work
    assert capsys.readouterr().err == f"loopguard export: -o {tmp_path}: is a directory\n"
