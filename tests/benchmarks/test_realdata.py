"""The converters of the two public data sets (benchmarks/tau_bench.py, who_and_when.py), and
what the default policy does to their runs."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import detection
import pytest
import who_and_when
from _realdata import RealRun, write_jsonl

from loopguard.calibrate import LIMITS
from loopguard.events import ModelEnd, ModelStart, RunEnd, RunStart, ToolEnd, ToolStart
from loopguard.replay import read_events


def test_tau_bench_runs_and_labels(tau_runs: list[RealRun]) -> None:
    assert len(tau_runs) == 200
    assert sum(r.label == "healthy" for r in tau_runs) == 84
    assert len({r.run for r in tau_runs}) == 200
    for run in tau_runs:
        kinds = [type(e) for e in run.events]
        assert kinds[0] is RunStart and kinds[-1] is RunEnd
        assert kinds.count(ToolStart) == kinds.count(ToolEnd)
        assert kinds.count(ModelStart) == kinds.count(ModelEnd) == run.model_calls > 0
        ends = [e for e in run.events if type(e) is ModelEnd]
        assert all(e.usage.input_tokens > 2000 and e.usage.output_tokens > 0 for e in ends)
        assert all(a.ts <= b.ts for a, b in zip(run.events, run.events[1:], strict=False))


def test_tau_bench_keeps_the_real_calls(tau_runs: list[RealRun]) -> None:
    first = tau_runs[0].events
    start = next(e for e in first if type(e) is ToolStart)
    assert start.tool == "get_user_details" and start.args == {"user_id": "mia_li_3668"}
    end = next(e for e in first if type(e) is ToolEnd)
    assert json.loads(end.output)["name"] == {"first_name": "Mia", "last_name": "Li"}
    # Each call's prompt is the conversation before it, the policy prompt first.
    model_starts = [e for e in first if type(e) is ModelStart]
    assert model_starts[0].messages[0].role == "system"
    assert len(model_starts[1].messages) > len(model_starts[0].messages)


def test_default_policy_stops_no_healthy_tau_bench_run(tau_runs: list[RealRun]) -> None:
    """As benchmarks/detection.py's real-run table measures it (guard_stop, the default policy)."""
    healthy = [r for r in tau_runs if r.label == "healthy"]
    logging.disable(logging.CRITICAL)
    try:
        results = [detection.guard_stop(r.events) for r in healthy]
    finally:
        logging.disable(logging.NOTSET)
    stopped = [f"{r.run} at call {r.step} by {r.detector}" for r in results if r.action == "abort"]
    assert len(results) == 84
    assert stopped == []


def _from_no_loop_runs(
    ww_runs: list[RealRun],
    limits: Sequence[str],
    rate: float | None = None,
    *,
    leave_one_out: bool,
) -> detection.Judged:
    """Every Who&When run under limits calibrated from the no-loop runs, as detection.py's
    table calibrates them (`rate` None: the lowest those runs support)."""
    logging.disable(logging.CRITICAL)
    try:
        return detection.calibrated(ww_runs, "no-loop", limits, rate, leave_one_out=leave_one_out)
    finally:
        logging.disable(logging.NOTSET)


def test_calibrated_rows_never_train_on_the_run_they_test(ww_runs: list[RealRun]) -> None:
    judged = _from_no_loop_runs(ww_runs, ["max_model_calls"], 0.1, leave_one_out=True)
    for run in ww_runs:
        result, calibration = judged[run.run]
        assert calibration.runs == (9 if run.label == "no-loop" else 10)
        # One limit from 9 or 10 runs at 0.1: the largest of them (k = n), which 9 or 10 runs
        # support down to 1/(n+1).
        assert calibration.rank == calibration.runs
        assert calibration.bound == 0.1
        assert calibration.supported == pytest.approx(1 / (calibration.runs + 1))
        if result.action == "abort":
            assert result.detector == "limits" and run.model_calls > result.step - 1


def test_default_policy_stops_most_who_and_when_loops_and_no_other_run(
    ww_runs: list[RealRun],
) -> None:
    """The issue's criterion for the defaults, as detection.py's real-run table measures it."""
    logging.disable(logging.CRITICAL)
    try:
        aborted = {r.run: detection.guard_stop(r.events).action == "abort" for r in ww_runs}
    finally:
        logging.disable(logging.NOTSET)
    loops = [r.run for r in ww_runs if r.label == "loop"]
    others = [r.run for r in ww_runs if r.label == "no-loop"]
    assert (len(loops), len(others)) == (19, 10)
    assert sum(aborted[run] for run in loops) > len(loops) / 2
    assert [run for run in others if aborted[run]] == []


def test_limits_calibrated_from_all_no_loop_runs_stop_most_loops_and_none_of_them(
    ww_runs: list[RealRun],
) -> None:
    """The issue's criterion for calibrated limits, as the table's first calibrated row: model
    calls and wall time from all 10 no-loop runs, at the lowest rate 10 runs support over two
    limits (2/11), where each limit is the largest of the 10 values."""
    judged = _from_no_loop_runs(ww_runs, detection.MAIN_LIMITS, leave_one_out=False)
    for _, calibration in judged.values():
        assert calibration.runs == 10 and calibration.rank == 10
        assert calibration.bound == pytest.approx(2 / 11, abs=1e-6)
        assert sorted(calibration.limits) == sorted(detection.MAIN_LIMITS)
    assert detection.stopped(judged, ww_runs, "loop") > 19 / 2
    assert detection.stopped(judged, ww_runs, "no-loop") == 0
    # Every stop is a calibrated limit's: no detector is on.
    for result, _ in judged.values():
        if result.action == "abort":
            assert result.detector == "limits" and result.verdict is not None
            assert result.verdict.evidence["limit"] in detection.MAIN_LIMITS


def test_five_limits_from_ten_runs_are_set_lower_at_the_only_rate_ten_runs_allow(
    ww_runs: list[RealRun],
) -> None:
    """Ten runs support five limits only at 5/11; counted jointly, that rate sets them at the
    7th of the 10 values, and they stop 3 of the 10 runs they came from, as 5/11 allows."""
    judged = _from_no_loop_runs(ww_runs, LIMITS, leave_one_out=False)
    assert {(c.rank, round(c.bound, 6)) for _, c in judged.values()} == {(7, 0.454546)}
    assert detection.stopped(judged, ww_runs, "no-loop") == 3
    assert detection.stopped(judged, ww_runs, "loop") == 19


def test_leave_one_out_stops_the_longest_no_loop_run(ww_runs: list[RealRun]) -> None:
    """What a new good run should expect: calls and seconds from the other 9 stop the longest
    of the 10, which is above all of them (1 of 10, under a bound of 0.2)."""
    judged = _from_no_loop_runs(ww_runs, detection.MAIN_LIMITS, leave_one_out=True)
    others = [r for r in ww_runs if r.label == "no-loop"]
    longest = max(others, key=lambda r: r.model_calls)
    assert [r.run for r in others if judged[r.run][0].action == "abort"] == [longest.run]
    assert judged[longest.run][1].bound == pytest.approx(0.2)  # 2/10: the other 9 runs


def test_who_and_when_labels(ww_runs: list[RealRun]) -> None:
    assert len(ww_runs) == 29
    assert sum(r.label == "loop" for r in ww_runs) == 19
    # Delegations are tool calls named for the sub-agent, with the instruction as arguments.
    tools = {e.tool for r in ww_runs for e in r.events if type(e) is ToolStart}
    assert tools <= {"WebSurfer", "FileSurfer", "Assistant", "ComputerTerminal"}
    start = next(e for e in ww_runs[0].events if type(e) is ToolStart)
    assert start.tool == "WebSurfer" and start.args["instruction"].startswith("Please search")


def test_who_and_when_hides_the_label(ww_runs: list[RealRun]) -> None:
    """Nothing a detector sees may carry the orchestrator's own loop judgement."""
    for run in ww_runs:
        for event in run.events:
            text = json.dumps(event.to_dict())
            for hidden in ("is_in_loop", "Updated Ledger", "Stalled", "Replan", "New plan"):
                assert hidden not in text, (run.name, event.type, hidden)


def test_who_and_when_label_comes_from_the_ledger() -> None:
    ledger = 'Updated Ledger:\n{"is_in_loop": {"reason": "same page again", "answer": true}}'
    history = [
        {"role": "human", "content": "Find it."},
        {"role": "Orchestrator (thought)", "content": ledger},
        {"role": "Orchestrator (-> WebSurfer)", "content": "Please search."},
        {"role": "WebSurfer", "content": "I typed 'it'."},
        {"role": "Orchestrator (thought)", "content": "Stalled.... Replanning..."},
        {"role": "Orchestrator (thought)", "content": "New plan:\n\nsearch harder"},
        {"role": "Orchestrator (-> WebSurfer)", "content": "Please search again."},
    ]
    run = who_and_when.convert(0, "x", {"history": history})
    assert run.label == "loop"
    kinds = [type(e).__name__ for e in run.events]
    # Two delegations (the second never answered: an empty result), nothing else.
    assert kinds.count("ModelStart") == 2 and kinds.count("ToolEnd") == 2
    assert [e.output for e in run.events if type(e) is ToolEnd] == ["I typed 'it'.", ""]
    assert who_and_when.convert(0, "x", {"history": history[2:]}).label == "no-loop"


def test_written_recording_reads_back(ww_runs: list[RealRun], tmp_path: Path) -> None:
    path = tmp_path / "ww.jsonl"
    written = write_jsonl(ww_runs[:3], path)
    errors: list[object] = []
    events = list(read_events(path, on_error=errors.append))
    assert errors == [] and len(events) == written == sum(len(r.events) for r in ww_runs[:3])
    assert [e.to_dict() for e in events] == [e.to_dict() for r in ww_runs[:3] for e in r.events]


def test_converter_command_line(ww_runs: list[RealRun], tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import tau_bench

    assert tau_bench.main([str(tmp_path / "nowhere")]) == 2
    assert "no such data set" in capsys.readouterr().err
    out = tmp_path / "healthy.jsonl"
    assert who_and_when.main(["--label", "no-loop", "-o", str(out)]) == 0
    runs = {e.run for e in read_events(out, on_error=lambda e: None)}
    assert len(runs) == 10


def test_real_run_table(tau_runs: list[RealRun]) -> None:
    """The table benchmarks/detection.py prints: both sets, every method, the rule per run."""
    logging.disable(logging.CRITICAL)
    try:
        lines = detection.real_run_table()
    finally:
        logging.disable(logging.NOTSET)
    rows = {line.split("|")[0].strip(): line for line in lines if "|" in line}
    text = "\n".join(lines)
    assert "tau-bench airline: 200 runs, 84 healthy, 116 failed" in text
    assert "Who&When Magentic-One: 29 runs, 10 no-loop, 19 loop" in text
    methods = [
        "loopguard",
        "calibrated (all 84 good runs)",
        "calibrated (all 10 good runs)",
        detection.LEAVE_ONE_OUT,
        *detection.BASELINES,
        "no guard",
    ]
    for method in methods:
        assert method in rows
    loopguard_rows = [line for line in lines if line.startswith("loopguard ")]
    assert "0 of 84" in loopguard_rows[0]  # tau-bench: no healthy run stopped
    # Who&When: most loops stopped and no other run, by the defaults and by the limits from all
    # 10 no-loop runs; how many runs each calibration used, and how many a small rate needs.
    for method in ("loopguard", "calibrated (all 10 good runs)"):
        cells = [cell.strip() for cell in rows[method].split("|")]
        assert int(cells[1].split(" of ")[0]) > 19 / 2 and cells[3] == "0 of 10"
    assert "calibrated once from all 10 no-loop runs, bound 0.182, each limit the 10th" in text
    assert "from the other no-loop runs (9-10 runs), bound 0.182-0.2;" in text
    assert "0.05 needs 19 good runs over 1 limit, 39 over 2, 99 over 5" in text
    for limits in ("all 5", "max_model_calls", "max_model_calls, max_seconds"):
        assert limits in rows
    assert sum(line.startswith("who-and-when/") for line in lines) == 29


def test_scenario_table_builds_beside_the_real_one() -> None:
    """Both tables live in detection.py; neither may shadow the other's helpers."""
    from _scenarios import all_scenarios

    logging.disable(logging.CRITICAL)
    try:
        lines, _ = detection.detection_table(all_scenarios())
    finally:
        logging.disable(logging.NOTSET)
    assert lines[0].startswith("scenario") and any(line.startswith("passed") for line in lines)
