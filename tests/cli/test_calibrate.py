"""`loopguard calibrate`: recordings in, a policy file out that replay and the guard load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loopguard import Guard, Policy, PolicySet
from loopguard.cli import main
from loopguard.recorder import FlightRecorder
from tests.test_calibrate import good_run


def record(path: Path, lengths: list[int], agent: str | None = "researcher") -> Path:
    """Good runs written by the flight recorder, as a guard in shadow mode records them."""
    with FlightRecorder(path) as recorder:
        guard = Guard(Policy(mode="shadow"), sinks=[recorder])
        for i, n in enumerate(lengths):
            for event in good_run(f"{agent}-{i}", n, agent=agent):
                guard.process(event)
    return path


def test_writes_a_policy_that_replay_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = record(tmp_path / "week.jsonl", [3 + i % 7 for i in range(20)])
    out = tmp_path / "policy.toml"
    assert main(["calibrate", str(runs), "--false-stop-rate", "0.25", "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert (
        "researcher: 20 runs, false stop rate <= 0.25 (these runs support down to 0.239): " in said
    )
    assert "max_model_calls = 8" in said
    assert f"wrote {out}" in said
    policy = PolicySet.load(out).for_agent("researcher")
    # n = 20, rate 0.25: the five limits rise and fall together (the runs differ in length), so
    # counted jointly k = 17 is allowed (at most 5 of 21 runs above it, 5 <= 0.25 * 21): the
    # 17th smallest run has 8 calls. (A union bound would have taken k = 20: 9 calls.)
    assert (policy.max_model_calls, policy.max_tool_calls) == (8, 7)
    assert policy.max_tokens and policy.max_cost_usd and policy.max_seconds
    assert main(["replay", "--policy", str(out), "--json", str(runs)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # Of the recorded runs, those longer than the limit are stopped: the two with 9 calls.
    assert len(rows) == 20 and sum(r["action"] == "abort" for r in rows) == 2


def test_json_and_policy_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = record(tmp_path / "a.jsonl", [4] * 10)
    other = record(tmp_path / "b.jsonl", [2, 3, 5], agent="helper")
    args = ["calibrate", str(runs), str(other), "--limits", "max_model_calls,max_tool_calls"]
    assert main([*args, "--false-stop-rate", "0.5", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["agent"], r["runs"], r["limits"]) for r in rows] == [
        ("researcher", 10, {"max_model_calls": 4, "max_tool_calls": 3}),
        ("helper", 3, {"max_model_calls": 5, "max_tool_calls": 4}),
    ]
    assert rows[0]["false_stop_rate"] == 0.5 and rows[0]["bound"] <= 0.5
    assert main([*args, "--false-stop-rate", "0.5", "--agent", "helper"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# Hard limits calibrated") and '[agents."helper"]' in text
    assert "researcher" not in text
    (tmp_path / "p.toml").write_text(text)
    assert PolicySet.load(tmp_path / "p.toml").for_agent("helper").max_model_calls == 5


def test_too_few_runs_exits_2_with_the_number_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = record(tmp_path / "a.jsonl", [4] * 12)
    out = tmp_path / "policy.toml"
    assert main(["calibrate", str(runs), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("loopguard calibrate: 12 good runs of agent 'researcher'")
    assert "needs at least 99 runs" in err and "lowest supported rate is 0.385" in err  # 5/13
    assert "Traceback" not in err
    assert not out.exists()


def test_input_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    runs = record(tmp_path / "a.jsonl", [4] * 30)
    with runs.open("a") as f:
        f.write("not json\n")
    assert main(["calibrate", str(runs)]) == 2
    err = capsys.readouterr().err
    assert f"{runs}:" in err and "invalid JSON" in err and "nothing was proposed" in err
    clean = record(tmp_path / "b.jsonl", [4] * 30)
    assert main(["calibrate", str(clean), "--agent", "nobody", "--false-stop-rate", "0.5"]) == 2
    assert "no recorded run of agent 'nobody' ended ok" in capsys.readouterr().err
    assert main(["calibrate", str(clean), "--limits", "max_steps"]) == 2
    assert "unknown limit max_steps" in capsys.readouterr().err
    assert main(["calibrate", str(clean), "--false-stop-rate", "5"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_reads_stdin(tmp_path: Path) -> None:
    runs = record(tmp_path / "a.jsonl", [3, 4, 5, 6])
    args = ["calibrate", "-", "--json", "--limits", "max_model_calls", "--false-stop-rate", "0.2"]
    with runs.open("rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "loopguard", *args],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["runs"] == 4 and row["limits"] == {"max_model_calls": 6}
