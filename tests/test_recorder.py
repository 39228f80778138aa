"""The flight recorder: JSONL format v1, redaction, thread safety, replayable."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

from loopguard import Guard, LoopGuardAbort, Policy
from loopguard.events import (
    FORMAT_VERSION,
    Message,
    ModelEnd,
    ModelStart,
    RunEnd,
    Token,
    ToolCall,
    ToolEnd,
    ToolFailed,
    ToolStart,
    Usage,
    from_dict,
)
from loopguard.recorder import FlightRecorder, redact
from loopguard.replay import read_events, replay_events

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _events(run: str = "r1") -> list:
    return [
        ModelStart(
            run=run,
            agent="a",
            ts=1.0,
            model="m",
            messages=[
                Message("system", "secret system prompt"),
                Message("user", "user question", None),
            ],
            max_tokens=100,
        ),
        Token(run=run, agent="a", ts=1.1, text="Let me"),
        ModelEnd(
            run=run,
            agent="a",
            ts=1.5,
            model="m",
            text="Let me look",
            tool_calls=[ToolCall("search", {"q": "private query", "n": 3})],
            usage=Usage(10, 5),
        ),
        ToolStart(run=run, agent="a", ts=1.6, tool="search", args={"q": "private query", "n": 3}),
        ToolEnd(run=run, agent="a", ts=1.7, tool="search", output="private result"),
        ToolFailed(run=run, agent="a", ts=1.8, tool="search", error="private error"),
        RunEnd(run=run, agent="a", ts=2.0, status="ok"),
    ]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_every_event_in_the_current_format(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "runs.jsonl"
    recorder = FlightRecorder(path)
    guard = Guard(Policy(), sinks=[recorder])
    for event in _events():
        guard.process(event)
    lines = _lines(path)  # flushed at run end
    assert [d["type"] for d in lines] == [
        "model_start",
        "token",
        "model_end",
        "tool_start",
        "tool_end",
        "tool_error",
        "run_end",
    ]
    assert all(d["v"] == FORMAT_VERSION == 2 and d["run"] == "r1" for d in lines)
    assert all(d["agent"] == "a" for d in lines)
    assert next(type(from_dict(d)).__name__ for d in lines) == "ModelStart"
    assert lines[0]["messages"][0]["content"] == "secret system prompt"
    recorder.close()


def test_without_content_every_text_is_a_stable_hash(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with FlightRecorder(path, record_content=False) as recorder:
        guard = Guard(Policy(), sinks=[recorder])
        for event in _events("r1") + _events("r2"):
            guard.process(event)
    text = path.read_text()
    for secret in ("secret system prompt", "user question", "private", "Let me"):
        assert secret not in text
    lines = _lines(path)
    assert lines[0]["messages"][0]["content"].startswith("sha256:")
    assert lines[3]["args"]["q"] == lines[2]["tool_calls"][0]["args"]["q"]  # same text, same hash
    assert lines[3]["args"]["n"].startswith("sha256:")
    assert lines[0]["messages"][0]["content"] == lines[7]["messages"][0]["content"]  # stable
    for d in lines:
        from_dict(d)  # still the format (each run has one model call: no prefix)


def test_redacted_recordings_still_catch_exact_repeats(tmp_path: Path) -> None:
    from _scenarios import exact_repeat

    path = tmp_path / "runs.jsonl"
    with FlightRecorder(path, record_content=False) as recorder:
        guard = Guard(Policy(), sinks=[recorder])
        try:
            for event in exact_repeat().events:
                guard.process(event)
        except LoopGuardAbort as stop:
            live = stop.verdict
    replayed = replay_events(read_events(path, on_error=pytest.fail))
    assert replayed[0].action == "abort" and replayed[0].detector == live.detector
    assert replayed[0].step == live.step


def test_redact_leaves_structure() -> None:
    d = redact({"type": "tool_start", "args": {"a": [1, "x", None, True]}, "run": "r"})
    assert d["run"] == "r" and d["args"]["a"][2] is None and d["args"]["a"][3] is True
    assert d["args"]["a"][1].startswith("sha256:")


def test_concurrent_runs_write_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    recorder = FlightRecorder(path)
    guard = Guard(Policy(), sinks=[recorder])

    def worker(n: int) -> None:
        for event in _events(f"run-{n}"):
            guard.process(event)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.close()
    lines = _lines(path)
    assert len(lines) == 8 * 7
    assert {d["run"] for d in lines} == {f"run-{n}" for n in range(8)}


def test_evicted_runs_get_their_end_recorded(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with FlightRecorder(path) as recorder:
        guard = Guard(Policy(), sinks=[recorder], max_runs=1)
        guard.process(ModelEnd(run="old", model="m", ts=1.0))
        guard.process(ModelEnd(run="new", model="m", ts=2.0))
    ends = [d for d in _lines(path) if d["type"] == "run_end"]
    assert [(d["run"], d["status"]) for d in ends] == [("old", "error")]


def test_each_run_end_is_recorded_once_when_runs_end_on_many_threads(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    recorder = FlightRecorder(path)
    guard = Guard(Policy(), sinks=[recorder])

    def worker(n: int) -> None:
        for k in range(60):
            for event in _events(f"run-{n}-{k}"):
                guard.process(event)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.close()
    ends = [d["run"] for d in _lines(path) if d["type"] == "run_end"]
    assert len(ends) == len(set(ends)) == 6 * 60


def test_an_aborted_run_is_recorded_as_aborted_even_if_it_ends_ok(tmp_path: Path) -> None:
    from loopguard import LoopGuardAbort
    from loopguard.events import ModelStart, RunEnd

    path = tmp_path / "runs.jsonl"
    with FlightRecorder(path) as recorder:
        guard = Guard(Policy(max_model_calls=1), sinks=[recorder])
        guard.process(ModelStart(run="r", model="m"))
        with pytest.raises(LoopGuardAbort):
            guard.process(ModelStart(run="r", model="m"))
        with pytest.raises(LoopGuardAbort):  # a wrapper swallowed the abort; the run "ended ok"
            guard.process(RunEnd(run="r", status="ok"))
    ends = [d["status"] for d in _lines(path) if d["type"] == "run_end"]
    assert ends == ["aborted"]


def test_optional_response_fields_round_trip():
    from loopguard.events import ModelEnd, ToolStart, from_dict

    end = ModelEnd(run="r", model="m", response_model="m-2024", finish_reason="end_turn")
    start = ToolStart(run="r", tool="t", call_id="tooluse_1")
    assert from_dict(end.to_dict()) == end and from_dict(start.to_dict()) == start
    # Absent when not known: recordings without them read as before.
    assert "finish_reason" not in ModelEnd(run="r", model="m").to_dict()
    assert "call_id" not in ToolStart(run="r", tool="t").to_dict()
