"""`loopguard replay`: output, errors as FILE:LINE, exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from loopguard.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _scenarios import batch_orders, exact_repeat


def _write(path: Path, *scenarios, extra: str = "") -> Path:  # type: ignore[no-untyped-def]
    with path.open("w") as f:
        for scenario in scenarios:
            for event in scenario.events:
                f.write(json.dumps(event.to_dict()) + "\n")
        f.write(extra)
    return path


def test_json_prints_one_object_per_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "a.jsonl", exact_repeat(), batch_orders())
    assert main(["replay", "--json", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["agent"], r["action"], r["step"]) for r in rows] == [
        ("exact-repeat", "abort", 6),
        ("batch-orders", "ok", 31),
    ]
    assert rows[0]["detector"] == "tool_repeat" and rows[0]["cost_usd"] > 0
    assert set(rows[0]) == {"run", "agent", "action", "detector", "reason", "step", "cost_usd"}


def test_corrupt_lines_are_reported_and_the_rest_replays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "a.jsonl", exact_repeat(), extra="not json\n")
    second = _write(tmp_path / "b.jsonl", batch_orders())
    assert main(["replay", "--json", str(path), str(second)]) == 1
    out = capsys.readouterr()
    assert f"{path}:{len(exact_repeat().events) + 1}: invalid JSON" in out.err
    assert len(out.out.splitlines()) == 2


def test_strict_stops_at_the_first_corrupt_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "a.jsonl", extra='{"v": 3}\n')
    _write(path.with_name("b.jsonl"), exact_repeat())
    assert main(["replay", "--strict", "--json", str(path), str(path.with_name("b.jsonl"))]) == 1
    out = capsys.readouterr()
    assert f"{path}:1: field 'v' must be one of 1, 2" in out.err and out.out == ""


def test_table_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "a.jsonl", exact_repeat(), batch_orders())
    assert main(["replay", str(path)]) == 0
    out = capsys.readouterr().out
    assert "abort" in out and "tool_repeat" in out and "2 runs" in out and "1 stopped" in out


def test_table_of_no_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "empty.jsonl")
    assert main(["replay", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "run  agent  action  detector  step  cost_usd  reason"
    assert lines[-1] == "0 runs, 0 events: 0 stopped, 0 warned, 0 ok"


def test_policy_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "loopguard.toml"
    policy.write_text(
        "mode = 'enforce'\n[tool_repeat]\nenabled = false\n[similarity]\nenabled = false\n"
        "[progress]\nenabled = false\n"
    )
    path = _write(tmp_path / "a.jsonl", exact_repeat())
    assert main(["replay", "--json", "--policy", str(policy), str(path)]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["action"] == "ok"


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "missing.jsonl")]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[cycle]\nnope = 1\n")
    path = _write(tmp_path / "a.jsonl", exact_repeat())
    assert main(["replay", "--policy", str(bad), str(path)]) == 2
    assert "cycle.nope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["replay"])
    assert info.value.code == 2


def test_progress_bar_on_a_terminal_keeps_stdout_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "a.jsonl", exact_repeat(), batch_orders())
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["replay", "--json", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2


def test_fail_on_stop_exits_1_when_a_run_would_be_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stopped = _write(tmp_path / "a.jsonl", exact_repeat())
    healthy = _write(tmp_path / "b.jsonl", batch_orders())
    assert main(["replay", "--fail-on", "stop", str(healthy)]) == 0
    assert main(["replay", "--fail-on", "stop", str(healthy), str(stopped)]) == 1
    assert "1 of 2 runs would be stopped (--fail-on stop)" in capsys.readouterr().err
    assert main(["replay", str(stopped)]) == 0  # without --fail-on a stop is a result


def test_the_summary_counts_the_events_skipped_after_a_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = exact_repeat()
    path = _write(tmp_path / "a.jsonl", scenario)
    assert main(["replay", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\n1 run, " in out  # one run, not "1 runs"
    fed = int(out.split(" events:")[0].split()[-1])
    assert fed < len(scenario.events)
    assert f"{len(scenario.events) - fed:,} events after a stop skipped" in out


def test_an_unsupported_version_is_reported_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "future.jsonl"
    lines = [json.loads(json.dumps(e.to_dict())) for e in exact_repeat().events]
    path.write_text("".join(json.dumps({**d, "v": 99}) + "\n" for d in lines))
    assert main(["replay", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{path}:1: ") and "99" in err[0]  # the version it got
    assert err[1] == (
        f"{path}: {len(lines) - 1:,} more lines skipped with the same error: "
        + err[0].split(": ", 1)[1]
    )
    assert len(err) == 2


def test_a_directory_is_named_as_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"loopguard replay: {tmp_path}: is a directory\n"


def test_dash_reads_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    path = _write(tmp_path / "a.jsonl", exact_repeat())
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes())))
    assert main(["replay", "--json", "-"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["action"] == "abort" and row["step"] == 6


def test_config_is_an_alias_of_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "loopguard.toml"
    policy.write_text(
        "[tool_repeat]\nenabled = false\n[similarity]\nenabled = false\n"
        "[progress]\nenabled = false\n"
    )
    path = _write(tmp_path / "a.jsonl", exact_repeat())
    assert main(["replay", "--json", "--config", str(policy), str(path)]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["action"] == "ok"


def test_the_guard_log_is_silenced_unless_verbose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "a.jsonl", exact_repeat())
    policy = tmp_path / "loopguard.toml"
    policy.write_text("mode = 'enforce'\n")
    with caplog.at_level("WARNING", logger="loopguard"):
        assert main(["replay", "--json", "--policy", str(policy), str(path)]) == 0
        assert not [r for r in caplog.records if r.name.startswith("loopguard")]
        assert main(["replay", "--json", "--verbose", "--policy", str(policy), str(path)]) == 0
        assert any("stopping run" in r.getMessage() for r in caplog.records)
