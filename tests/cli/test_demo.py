"""`loopguard demo`: offline, stops each runaway scenario, leaves the healthy one alone, says
what the loop would have cost, and writes traces (Jaeger JSON, or OTLP when configured)."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loopguard.cli import main
from loopguard.demo import run as demo_run
from loopguard.demo.live import CallRecord
from loopguard.demo.projection import model_calls_for_recursion_limit, project
from loopguard.events import Usage
from loopguard.testing import SCENARIOS
from tests.conftest import require

require("langchain_aws")
require("langchain.agents")

RUNAWAY = [n for n, s in SCENARIOS.items() if s.runaway]


def demo(capsys, tmp_path, *args: str) -> str:
    code = main(["demo", "--no-live", "--traces", str(tmp_path / "traces.json"), *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


@pytest.mark.parametrize("scenario", RUNAWAY)
def test_each_runaway_scenario_is_stopped(capsys, tmp_path, scenario):
    out = demo(capsys, tmp_path, "--scenario", scenario)
    flat = " ".join(out.split())  # the summary is wrapped to the terminal's width
    m = re.search(r"loopguard stopped the run at model call (\d+): \[(\w+)\]", flat)
    assert m, out
    steps = re.findall(r"^step +(\d+) ", out, re.M)
    assert all(int(step) <= int(m.group(1)) for step in steps)
    assert "evidence:" in flat
    documented = _documented_stop(scenario)
    if documented is not None:  # docs/demo.md's table says who stops it, and when
        assert (m.group(2), m.group(1)) == documented, f"docs/demo.md says {documented}"
    assert re.search(
        r"spent: \d+ model calls?, \d+ tool calls?, [\d,]+ tokens \(input [\d,]+, "
        r"of which cache read [\d,]+ and cache write [\d,]+; output [\d,]+; [\d,]+ tokens per "
        r"minute\), \$\d+\.\d+ at us\.anthropic",
        flat,
    )
    cut = re.search(r"the server saw the client hang up after (\d+) of (\d+) events", flat)
    if cut:  # stopped mid-answer: the server stopped sending
        assert int(cut.group(1)) < int(cut.group(2))
    if not steps:
        assert cut and "No model call finished" in flat
    else:
        _check_projections(flat)
    trace = json.loads((tmp_path / "traces.json").read_text())
    (run,) = trace["data"]
    names = [s["operationName"] for s in run["spans"]]
    assert names.count(f"invoke_agent {scenario}-agent") == 1
    assert any(n.startswith("chat us.anthropic.claude-sonnet-4") for n in names)


def _documented_stop(scenario: str) -> tuple[str, str] | None:
    """The detector and model call docs/demo.md's scenario table gives for `scenario`."""
    docs = (Path(__file__).parents[2] / "docs" / "demo.md").read_text()
    row = re.search(rf"^\| `{re.escape(scenario)}` \|[^|]*\| `(\w+)`.*model call (\d+)", docs, re.M)
    return None if row is None else (row.group(1), row.group(2))


def _check_projections(out: str) -> None:
    from loopguard.demo.summary import langgraph_default_recursion_limit

    assert re.search(r"AgentExecutor's default max_iterations=15: 15 model calls, \$", out)
    assert re.search(r"LangGraph's old default recursion_limit=25: 13 model calls, \$", out)
    limit, version = langgraph_default_recursion_limit()
    calls = model_calls_for_recursion_limit(limit)
    assert re.search(
        rf"LangGraph {re.escape(version)}'s default recursion_limit={limit:,}: "
        rf"{calls:,} model calls, \$",
        out,
    )
    assert "recursion_limit=9,999 (5,000 model calls)" in out  # create_agent


def test_default_scenario_and_cache_tokens_in_the_lines(capsys, tmp_path):
    out = demo(capsys, tmp_path)
    assert "invoke_agent" not in out  # the trace is in the file, not the terminal
    first, second = re.findall(r"^step +\d+ .*$", out, re.M)[:2]
    # the system prompt ends in a cache point: written on the first call, read after
    assert re.search(r"cache read 0, write [1-9]", first)
    assert re.search(r"cache read [1-9][\d,]*, write 0", second)
    assert "Jaeger JSON written to" in out


def test_healthy_agent_finishes_untouched(capsys, tmp_path):
    out = " ".join(demo(capsys, tmp_path, "--healthy").split())
    assert "The agent finished on its own after 3 model calls; no detector stopped it." in out
    assert "answer: The ACME X100 costs $249.00" in out
    assert "stopped" not in out.replace("no detector stopped it", "")
    assert "Had nothing stopped it" not in out


def test_live_view_renders_the_detectors(tmp_path):
    require("rich")
    buffer = io.StringIO()
    result = demo_run.run("search-loop", out=buffer, live=True, traces_path=tmp_path / "t.json")
    text = buffer.getvalue()
    assert result.verdict is not None
    for label in ("step", "model", "tokens", "cost", "detector"):
        assert label in text
    for name in result.view.detectors:
        assert name in text
    assert "abort:" in text and result.verdict.detector in text


def test_recursion_limit_arithmetic_matches_langgraph():
    """The summary's (L+1)//2: measured on a create_agent agent that never stops by itself."""
    from langchain.agents import create_agent
    from langgraph.errors import GraphRecursionError

    from loopguard.demo.tools import tools_for
    from loopguard.testing import FakeBedrock

    scenario = SCENARIOS["search-loop"]
    with FakeBedrock(scenario.name) as fake:
        agent = create_agent(fake.chat_model(), tools_for(scenario.tools))
        for limit in (25, 10):
            before = len(fake.calls)
            with pytest.raises(GraphRecursionError):
                agent.invoke(
                    {"messages": [("user", scenario.task)]}, config={"recursion_limit": limit}
                )
            assert len(fake.calls) - before == model_calls_for_recursion_limit(limit)


def _call(
    step: int,
    input_tokens: int,
    output_tokens: int = 50,
    cache_read: int = 0,
    cost: float | None = 0.01,
) -> CallRecord:
    return CallRecord(
        step, "m", Usage(input_tokens, output_tokens, cache_read, 0), cost, ["t"], 0.1
    )


def test_projection_extends_the_observed_growth():
    calls = [_call(1, 1000), _call(2, 1100), _call(3, 1200)]
    priced: list[Usage] = []

    def price(u: Usage) -> float:
        priced.append(u)
        return 0.02

    proj = project(calls, 5, "x", price, context_window=100_000)
    assert [u.input_tokens for u in priced] == [1300, 1400]
    assert proj.cost_usd == pytest.approx(0.03 + 0.04)
    assert proj.calls_made == 5 and proj.context_full_at is None
    assert proj.tokens == 3300 + 150 + 2700 + 100


def test_projection_ends_at_the_context_window_and_keeps_the_cached_prefix():
    calls = [_call(1, 1000, cache_read=800), _call(2, 51_000, cache_read=800)]
    priced: list[Usage] = []
    proj = project(calls, 100, "x", lambda u: priced.append(u) or 1.0, context_window=200_000)
    assert proj.context_full_at == 5 and proj.calls_made == 4  # 101k, 151k, then 201k
    assert [u.cache_read_tokens for u in priced] == [800, 800]


def test_projection_below_what_already_ran_counts_only_those_calls():
    calls = [_call(i, 1000 * i) for i in range(1, 11)]
    proj = project(calls, 4, "x", lambda u: 99.0)
    assert proj.cost_usd == pytest.approx(0.04) and proj.calls_made == 4


def test_unpriced_calls_make_the_projection_unpriced():
    proj = project([_call(1, 10, cost=None), _call(2, 20)], 3, "x", lambda u: 0.1)
    assert proj.cost_usd is None


class _OtlpReceiver(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.bodies.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_traces_go_to_otlp_when_the_endpoint_is_set(tmp_path, capsys, monkeypatch):
    """Against a loopback OTLP receiver: the spans arrive, and no Jaeger file is written. (The
    demo exports through a tracer provider of its own, so this runs in-process.)"""
    trace_pb2 = require("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
    require("opentelemetry.exporter.otlp.proto.http")
    _OtlpReceiver.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in [k for k in os.environ if k.startswith(("OTEL_", "LOOPGUARD_"))]:
        monkeypatch.delenv(name)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["demo", "--no-live"])
    finally:
        server.shutdown()
        server.server_close()
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    assert f"sent over OTLP at {endpoint}" in out
    assert not list(tmp_path.glob("*.json"))
    names = []
    for path, body in _OtlpReceiver.bodies:
        assert path == "/v1/traces"
        request = trace_pb2.ExportTraceServiceRequest.FromString(body)
        names += [
            s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans
        ]
    assert "invoke_agent search-loop-agent" in names
    assert "execute_tool web_search" in names


def test_demo_without_its_extras_says_what_to_install(monkeypatch, capsys):
    import importlib.util

    from loopguard.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "langchain_aws" else real(name, *a),
    )
    assert main(["demo"]) == 1
    assert "needs the aws extra: pip install 'langchain-loopguard[all]'" in capsys.readouterr().err


# --- honest exits (issue 13, item 8) ----------------------------------------------------------


def test_a_traces_file_that_cannot_be_written_is_an_error_before_the_run(tmp_path, capsys):
    target = tmp_path / "missing" / "traces.json"
    assert main(["demo", "--no-live", "--traces", str(target)]) == 2
    out, err = capsys.readouterr()
    assert err == f"loopguard demo: --traces {target}: no such folder {target.parent}\n"
    assert out == ""  # nothing ran
    assert main(["demo", "--no-live", "--traces", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_a_traces_file_that_fails_at_the_end_is_reported(tmp_path, capsys, monkeypatch):
    """The guard swallows a sink's failure (fail open); the demo must still say it."""
    from loopguard.telemetry import jaeger

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jaeger, "write", refuse)
    code = main(["demo", "--no-live", "--traces", str(tmp_path / "t.json")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "traces: NOT delivered: cannot write" in " ".join(out.split())
    assert "Jaeger JSON written" not in out
    assert err.endswith("No space left on device\n")


def test_an_otlp_endpoint_that_does_not_answer_fails_the_demo(tmp_path, capsys, monkeypatch):
    require("opentelemetry.exporter.otlp.proto.http")
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(demo_run, "OTLP_TIMEOUT", 0.5)  # the demo's bound, made short
    for name in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    code = main(["demo", "--no-live"])
    out, err = capsys.readouterr()
    assert code == 1, out
    assert "sent over" not in out
    assert f"traces: NOT delivered: the http://127.0.0.1:{port} OTLP endpoint did not take" in (
        " ".join(out.split())
    )
    assert err.startswith("loopguard demo: traces not delivered:")
    assert not list(tmp_path.glob("*.json"))


def test_otel_sdk_disabled_means_no_traces(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    out = demo(capsys, tmp_path)
    assert "traces: off (OTEL_SDK_DISABLED=true)" in out
    assert not list(tmp_path.iterdir())


def test_healthy_with_a_scenario_is_a_usage_error(capsys):
    assert main(["demo", "--healthy", "--scenario", "ping-pong"]) == 2
    assert "--healthy runs the healthy scenario" in capsys.readouterr().err


def test_something_is_shown_before_the_slow_imports(tmp_path):
    """The first line is written before LangChain and boto3 are imported (seconds): checked
    in a fresh interpreter, where the first write looks at what is imported by then."""
    code = (
        "import os, sys\n"
        "class Out:\n"
        "    def __init__(self):\n"
        "        self.first = None\n"
        "    def write(self, text):\n"
        "        if text.strip():  # the first line: what is imported by now, and stop there\n"
        "            slow = ('langchain', 'boto3', 'langgraph')\n"
        "            seen = sorted(m for m in slow if m in sys.modules)\n"
        "            out.write(repr((text, seen)))\n"
        "            out.flush()\n"
        "            os._exit(0)\n"
        "        return len(text)\n"
        "    def flush(self): pass\n"
        "    def isatty(self): return False\n"
        "out = sys.stdout\n"
        "sys.stdout = Out()\n"
        "from loopguard.cli import main\n"
        "main(['demo', '--no-live', '--scenario', 'stream-repeat', '--traces', 't.json'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    text, imported = ast.literal_eval(done.stdout)
    assert text.startswith("loopguard demo: stream-repeat:")
    assert imported == []


# --- the live view and the summary agree (item 9) ---------------------------------------------


def _panel_and_summary(tmp_path, scenario: str, width: int = 80) -> tuple[str, str, object]:
    require("rich")
    from loopguard.demo.summary import write_summary

    panel = io.StringIO()
    result = demo_run.run(scenario, out=panel, live=True, traces_path=tmp_path / "t.json")
    summary = io.StringIO()
    write_summary(result, summary, width=width)
    return panel.getvalue(), summary.getvalue(), result


def test_the_panel_and_the_summary_show_the_same_tokens_and_dollars(tmp_path):
    panel, summary, _ = _panel_and_summary(tmp_path, "stream-repeat")
    final_panel = panel[panel.rindex("loopguard demo: stream-repeat") :]
    tokens = re.search(r"tokens +([\d,]+) +\(([\d,]+) per minute\)", final_panel)
    cost = re.search(r"cost +(\$[\d.,]+)", final_panel)
    assert tokens and cost, final_panel
    flat = " ".join(summary.split())
    assert int(tokens.group(1).replace(",", "")) > 0  # the cut stream's estimate is counted
    assert f"{tokens.group(1)} tokens (input" in flat
    assert f"{tokens.group(2)} tokens per minute" in flat
    assert f"{cost.group(1)} at us.anthropic" in flat


@pytest.fixture(scope="module")
def search_loop_live(tmp_path_factory):
    """One live run of search-loop (the panel's text, the summary at 80 columns, the result),
    shared by the tests that only read it."""
    return _panel_and_summary(tmp_path_factory.mktemp("live"), "search-loop")


def test_the_summary_fits_80_columns_without_breaking_numbers(search_loop_live):
    _, summary, result = search_loop_live
    from loopguard.demo.summary import write_summary

    wide = io.StringIO()
    write_summary(result, wide, width=400)
    lines = summary.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert all(line == line.rstrip() for line in lines)
    numbers = [w for w in wide.getvalue().split() if re.search(r"\d", w) and len(w) < 40]
    narrow = summary.split()
    assert all(n in narrow for n in numbers), [n for n in numbers if n not in narrow]


def test_money_and_rates_are_rounded_for_people(search_loop_live):
    from loopguard.demo.live import fmt_value

    assert fmt_value("usd_per_minute", 0.7524075000000001) == "$0.7524"
    assert fmt_value("tokens_per_minute", 48426.31) == "48,426"
    assert fmt_value("similarity", 0.98765) == "0.988"
    assert fmt_value("new", [0.0, 0.125]) == "[0, 0.125]"
    panel, summary, _ = search_loop_live
    assert "published" in panel and "tokens_per_minute=" in panel
    assert not re.search(r"\d\.\d{6,}", panel + summary)


def test_json_gives_the_summary_as_data_and_nothing_else_on_stdout(tmp_path, capsys):
    code = main(["demo", "--json", "--traces", str(tmp_path / "t.json")])
    out, err = capsys.readouterr()
    assert code == 0
    report = json.loads(out)  # stdout is the JSON document alone
    assert err.startswith("loopguard demo: search-loop:")
    assert report["stopped"] is True and report["verdict"]["detector"] == "tool_repeat"
    spent = report["spent"]
    assert spent["total_tokens"] == spent["input_tokens"] + spent["output_tokens"] > 0
    assert spent["cost_usd"] > 0 and spent["model_calls"] == report["verdict"]["step"] - 1
    assert [p["model_calls"] for p in report["projections"]][:2] == [15, 13]
    assert report["traces"] == {"where": str(tmp_path / "t.json"), "delivered": True, "error": None}


def test_the_evidence_counts_times_as_the_reason_does(search_loop_live):
    from loopguard.demo.summary import times

    assert (times(1), times(4), times(1200)) == ("1 time", "4 times", "1,200 times")
    _, summary, result = search_loop_live
    flat = " ".join(summary.split())
    said = re.search(r"(\d+) times", result.verdict.reason)
    repeats = result.verdict.evidence["repeats"]
    assert said and int(said.group(1)) == repeats + 1
    assert f"repeats={repeats} ({said.group(1)} times in all)" in flat


def test_traces_dash_writes_the_jaeger_json_to_stdout(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--no-live", "--scenario", "stream-repeat", "--traces", "-"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)  # stdout is the traces alone; the view and summary are on stderr
    names = [s["operationName"] for t in doc["data"] for s in t["spans"]]
    assert "invoke_agent stream-repeat-agent" in names
    assert "Jaeger JSON written to stdout" in " ".join(err.split())
    assert not list(tmp_path.iterdir())  # no file named "-"
    assert main(["demo", "--json", "--traces", "-"]) == 2
