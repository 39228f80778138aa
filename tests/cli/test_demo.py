"""`loopguard demo`: offline, stops each runaway scenario, leaves the healthy one alone, says
what the loop would have cost, and writes traces (Jaeger JSON, or OTLP when configured)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import require

pytest.importorskip("langchain_aws")
pytest.importorskip("langchain.agents")

from loopguard.cli import main
from loopguard.demo import run as demo_run
from loopguard.demo.live import CallRecord
from loopguard.demo.projection import model_calls_for_recursion_limit, project
from loopguard.events import Usage
from loopguard.testing import SCENARIOS

RUNAWAY = [n for n, s in SCENARIOS.items() if s.runaway]


def demo(capsys, tmp_path, *args: str) -> str:
    code = main(["demo", "--no-live", "--traces", str(tmp_path / "traces.json"), *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


@pytest.mark.parametrize("scenario", RUNAWAY)
def test_each_runaway_scenario_is_stopped(capsys, tmp_path, scenario):
    out = demo(capsys, tmp_path, "--scenario", scenario)
    m = re.search(r"loopguard stopped the run at model call (\d+): \[(\w+)\]", out)
    assert m, out
    steps = re.findall(r"^step +(\d+) ", out, re.M)
    assert all(int(step) <= int(m.group(1)) for step in steps)
    assert "evidence:" in out
    assert re.search(
        r"spent: \d+ model calls?, \d+ tool calls?, [\d,]+ tokens \(input [\d,]+, "
        r"of which cache read [\d,]+ and cache write [\d,]+; output [\d,]+\), "
        r"\$\d+\.\d+ at us\.anthropic",
        out,
    )
    cut = re.search(r"the server saw the client hang up after (\d+) of (\d+) events", out)
    if cut:  # stopped mid-answer: the server stopped sending
        assert int(cut.group(1)) < int(cut.group(2))
    if not steps:
        assert cut and "No model call finished" in out
    else:
        _check_projections(out)
    trace = json.loads((tmp_path / "traces.json").read_text())
    (run,) = trace["data"]
    names = [s["operationName"] for s in run["spans"]]
    assert names.count(f"invoke_agent {scenario}-agent") == 1
    assert any(n.startswith("chat us.anthropic.claude-sonnet-4") for n in names)


def _check_projections(out: str) -> None:
    from loopguard.demo.summary import langgraph_default_recursion_limit

    assert re.search(r"AgentExecutor's default max_iterations=15 +15 model calls +\$", out)
    assert re.search(r"LangGraph's old default recursion_limit=25 +13 model calls +\$", out)
    limit, version = langgraph_default_recursion_limit()
    calls = model_calls_for_recursion_limit(limit)
    assert re.search(
        rf"LangGraph {re.escape(version)}'s default recursion_limit={limit:,} +"
        rf"{calls:,} model calls +\$",
        out,
    )
    assert "recursion_limit=9,999 (5,000 model calls)" in " ".join(out.split())  # create_agent


def test_default_scenario_and_cache_tokens_in_the_lines(capsys, tmp_path):
    out = demo(capsys, tmp_path)
    assert "invoke_agent" not in out  # the trace is in the file, not the terminal
    first, second = re.findall(r"^step +\d+ .*$", out, re.M)[:2]
    # the system prompt ends in a cache point: written on the first call, read after
    assert re.search(r"cache read 0, write [1-9]", first)
    assert re.search(r"cache read [1-9][\d,]*, write 0", second)
    assert "Jaeger JSON written to" in out


def test_healthy_agent_finishes_untouched(capsys, tmp_path):
    out = demo(capsys, tmp_path, "--healthy")
    assert "The agent finished on its own after 3 model calls; no detector stopped it." in out
    assert "answer: The ACME X100 costs $249.00" in out
    assert "stopped" not in out.replace("no detector stopped it", "")
    assert "Had nothing stopped it" not in out


def test_live_view_renders_the_detectors(tmp_path):
    pytest.importorskip("rich")
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


def test_traces_go_to_otlp_when_the_endpoint_is_set(tmp_path):
    """A real subprocess (setup() installs a global tracer provider) against a loopback OTLP
    receiver: the spans arrive, and no Jaeger file is written."""
    trace_pb2 = require("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
    require("opentelemetry.exporter.otlp.proto.http")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOOPGUARD_"))}
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
        done = subprocess.run(
            [sys.executable, "-m", "loopguard", "demo"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert f"sent over OTLP at {env['OTEL_EXPORTER_OTLP_ENDPOINT']}" in done.stdout
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
