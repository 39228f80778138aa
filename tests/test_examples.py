"""Every example runs offline (on FakeBedrock) and says what it should."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require

require("langchain_aws")
require("langchain_classic")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))

# Each example spends most of its ~3 CPU-seconds importing LangChain, LangGraph and boto3. The
# runner imports them once, then forks a fresh process per example that runs the file as
# __main__ in its own directory: the same as `python examples/NAME.py`, several times cheaper.
_RUNNER = r"""
import json, os, runpy, sys, traceback
import boto3, langchain.agents, langchain_aws, langchain_classic.agents, langgraph.graph
import loopguard.demo.run, loopguard.integrations.langchain, loopguard.testing

examples, jobs = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, examples)
children = {}
for name, cwd in jobs:
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        for fd, file in ((1, "stdout.txt"), (2, "stderr.txt")):
            os.dup2(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        path = os.path.join(examples, name + ".py")
        sys.argv = [path]
        code = 0
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    children[pid] = name
codes = {}
for _ in children:
    pid, status = os.wait()
    codes[children[pid]] = os.waitstatus_to_exitcode(status)
print(json.dumps(codes))
"""


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    cwd: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    """All examples, each in its own empty directory, offline."""
    jobs = [(name, str(tmp_path_factory.mktemp(name))) for name in NAMES]
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(EXAMPLES), json.dumps(jobs)],
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        name: Run(
            codes[name],
            (Path(cwd) / "stdout.txt").read_text(),
            (Path(cwd) / "stderr.txt").read_text(),
            Path(cwd),
        )
        for name, cwd in jobs
    }


def _offline_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOOPGUARD_", "AWS_"))
    }


def output(runs, name: str) -> str:
    done = runs[name]
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def stopped(text: str) -> tuple[str, int]:
    m = re.search(r"stopped by (\w+) at model call (\d+)", text)
    assert m, text
    return m.group(1), int(m.group(2))


def test_every_example_is_tested():
    assert set(NAMES) == {
        "agent_executor",
        "create_agent_handler",
        "create_agent_middleware",
        "jaeger_export",
        "langgraph_graph",
        "pause_and_resume",
        "per_agent_policies",
        "shadow_mode",
    }


def test_create_agent_handler(runs):
    text = output(runs, "create_agent_handler")
    detector, step = stopped(text)
    assert detector in {"tool_repeat", "similarity", "cycle"} and step <= 6
    assert re.search(r"spent: \d+ model calls, [\d,]+ input tokens, \$0\.\d{4}", text)


def test_create_agent_middleware_ends_gracefully(runs):
    text = output(runs, "create_agent_middleware")
    assert "the agent returned normally" in text
    assert re.search(r"last message: Stopped by loopguard \[\w+\] at model call \d+", text)


def test_langgraph_graph_stops_at_the_dollar_cap(runs):
    text = output(runs, "langgraph_graph")
    detector, _ = stopped(text)
    assert detector == "budget" and "max_cost_usd=$0.1" in text
    spent = float(re.search(r"spent: \$(\d+\.\d+) of the \$0.10 cap", text).group(1))
    assert 0 < spent <= 0.10


def test_agent_executor_stops_before_its_own_limit(runs):
    text = output(runs, "agent_executor")
    _, step = stopped(text)
    assert step < 15 and "AgentExecutor's own limit: 15 iterations" in text


def test_per_agent_policies(runs):
    text = output(runs, "per_agent_policies")
    assert re.search(r"researcher: stopped by budget .*max_cost_usd=\$0\.1\b", text)
    assert re.search(r"support: stopped by limits .*max_calls_per_tool\.web_search=2", text)
    assert "concierge: finished (max_cost_usd=2.0): The ACME X100 costs $249.00" in text


def test_shadow_mode_stops_nothing(runs):
    text = output(runs, "shadow_mode")
    assert re.search(r"shadow: would have stopped the run at model call \d+: \[\w+\]", text)
    # 25 super-steps of a model/tools agent: 13 model calls, none refused
    assert "LangGraph's recursion limit ended the run after 13 model calls" in text


def test_jaeger_export_writes_a_trace_file(runs):
    text = output(runs, "jaeger_export")
    m = re.search(r"wrote (\d+) spans to (\S+):", text)
    assert m, text
    doc = json.loads((runs["jaeger_export"].cwd / m.group(2)).read_text())
    (trace,) = doc["data"]
    names = [s["operationName"] for s in trace["spans"]]
    assert names.count("invoke_agent shopper") == 1
    assert "execute_tool web_search" in names and any(n.startswith("chat ") for n in names)
    assert len(names) == int(m.group(1))


def test_an_example_runs_as_a_plain_script(tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "create_agent_handler.py")],
        cwd=tmp_path,
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert stopped(done.stdout)[0]


def test_pause_and_resume(runs):
    text = output(runs, "pause_and_resume")
    first = re.search(r"paused by \[limits\] at model call 4: .*max_model_calls=3", text)
    assert first, text
    spends = [float(x) for x in re.findall(r"spent so far: \d+ model calls, \$(\d+\.\d+)", text)]
    assert len(spends) == 2 and 0 < spends[0] < spends[1]  # the spend carried over the pause
    assert "the agent ended: Stopped by loopguard" in text
