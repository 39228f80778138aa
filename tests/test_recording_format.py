"""Recording format v2 (a model_start keeps its run's earlier messages by count) against v1 (every
model_start with its whole history): the same events back, the same verdicts, flat bytes per call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import sys
from pathlib import Path

import pytest

from loopguard import Guard, Policy, PolicySet
from loopguard.cli import main
from loopguard.cli.export import export_jaeger
from loopguard.events import Event, Message, ModelStart, RunEnd, RunStart
from loopguard.recorder import FlightRecorder, redact
from loopguard.replay import LineError, read_events, replay_events

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _scenarios import all_scenarios, long_run


def record(path: Path, events: list[Event], *, record_content: bool = True) -> Path:
    """`events` through a shadow-mode guard (nothing stopped, so every event is recorded)."""
    with FlightRecorder(path, record_content=record_content) as recorder:
        guard = Guard(Policy(mode="shadow"), sinks=[recorder])
        for event in events:
            guard.process(event)
    return path


def record_v1(path: Path, events: list[Event], *, record_content: bool = True) -> Path:
    """The same events as the 0.1 recorder wrote them: format 1, whole histories."""
    with path.open("w", encoding="utf-8") as f:
        for event in events:
            data = {**event.to_dict(), "v": 1}
            f.write(json.dumps(redact(data) if not record_content else data) + "\n")
    return path


def read(path: Path) -> list[Event]:
    errors: list[LineError] = []
    events = list(read_events(path, on_error=errors.append))
    assert errors == []
    return events


def interleaved() -> list[Event]:
    """Every benchmark scenario, their events interleaved as concurrent runs write them."""
    runs = [s.events for s in all_scenarios()]
    out: list[Event] = []
    for i in range(max(map(len, runs))):
        out.extend(run[i] for run in runs if i < len(run))
    return out


def outcomes(events: list[Event], policy: Policy | PolicySet) -> list[dict]:
    results = replay_events(events, Guard(policy))
    return [{**r.to_dict(), "verdict": r.verdict.to_dict() if r.verdict else None} for r in results]


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Each recording in both formats, with content and without."""
    tmp, events = tmp_path_factory.mktemp("recordings"), interleaved()
    return {
        kind: (
            record(tmp / f"v2-{kind}.jsonl", events, record_content=content),
            record_v1(tmp / f"v1-{kind}.jsonl", events, record_content=content),
        )
        for kind, content in (("content", True), ("digests", False))
    }


@pytest.mark.parametrize("kind", ["content", "digests"])
def test_both_formats_read_back_as_the_same_events(both, kind: str) -> None:
    v2, v1 = both[kind]
    assert [e.to_dict() for e in read(v2)] == [e.to_dict() for e in read(v1)]
    if kind == "content":
        assert [e.to_dict() for e in read(v2)] == [e.to_dict() for e in interleaved()]
    assert v2.stat().st_size < v1.stat().st_size / 2


@pytest.mark.parametrize("kind", ["content", "digests"])
@pytest.mark.parametrize(
    "policy",
    [
        Policy(),
        Policy(mode="shadow"),
        Policy(max_model_calls=12, max_cost_usd=0.05),
        PolicySet.from_dict({"max_model_calls": 20, "agents": {"bench": {"max_tool_calls": 8}}}),
    ],
    ids=["default", "shadow", "caps", "per-agent"],
)
def test_replay_gives_every_run_the_same_verdict_in_both_formats(
    both, kind: str, policy: Policy | PolicySet
) -> None:
    v2, v1 = both[kind]
    new, old = outcomes(read(v2), policy), outcomes(read(v1), policy)
    assert new == old
    assert len(new) == len(all_scenarios())
    assert any(r["action"] == "abort" for r in new)


def test_the_commands_say_the_same_of_both_formats(both, tmp_path: Path) -> None:
    v2, v1 = both["content"]
    assert export_jaeger(read(v2), Policy()) == export_jaeger(read(v1), Policy())
    new, old = cli("replay", "--json", str(v2)), cli("replay", "--json", str(v1))
    assert new == old and new[1]
    # Calibration needs many good runs of one agent.
    good = [
        dataclasses.replace(e, run=f"good-{steps}", agent="worker")
        for steps in range(10, 50)
        for e in long_run(steps)
    ]
    v2, v1 = record(tmp_path / "v2.jsonl", good), record_v1(tmp_path / "v1.jsonl", good)
    command = ("calibrate", "--json", "--limits", "max_model_calls,max_tool_calls")
    new, old = cli(*command, str(v2)), cli(*command, str(v1))
    assert new == old and new[0] == 0 and json.loads(new[1])["runs"] == 40


def test_a_recording_grows_linearly_with_the_run(tmp_path: Path) -> None:
    per_call = {}
    for steps in (50, 400):
        path = record(tmp_path / f"{steps}.jsonl", long_run(steps))
        per_call[steps] = path.stat().st_size / steps
    # Format 1 wrote every call's whole history: its bytes per call grew with the run (x5 here).
    assert per_call[400] < per_call[50] * 1.2, per_call


def test_a_call_that_rewrites_history_keeps_only_the_shared_start(tmp_path: Path) -> None:
    def start(*texts: str) -> ModelStart:
        messages = [Message("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]
        return ModelStart(run="r", agent="a", ts=1.0, model="m", messages=messages)

    events: list[Event] = [
        RunStart(run="r", agent="a", ts=0.5),
        start("q", "a1", "q2"),
        start("q", "a1", "q2", "a2", "q3"),
        start("q", "summary of a1..a2", "q3"),  # a middleware summarised the history
        start("q", "summary of a1..a2", "q3"),  # a retry of the same call
        ModelStart(run="other", agent="a", ts=1.0, model="m", messages=[Message("user", "q")]),
        start(),
        RunEnd(run="r", agent="a", ts=2.0),
        start("q", "a1"),  # the run id used again after its end: no earlier messages
    ]
    path = record(tmp_path / "r.jsonl", events)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    starts = [d for d in lines if d["type"] == "model_start"]
    assert [(d.get("prefix", 0), len(d["messages"])) for d in starts] == [
        (0, 3),
        (3, 2),
        (1, 2),
        (3, 0),
        (0, 1),
        (0, 0),
        (0, 2),
    ]
    assert [e.to_dict() for e in read(path)] == [e.to_dict() for e in events]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"prefix": 2}', "field 'prefix' keeps 2 messages of this run's previous model_start"),
        ('{"prefix": 9, "run": "r"}', "field 'prefix' keeps 9 messages; this run's previous"),
        ('{"prefix": -1, "run": "r"}', "field 'prefix' must be a count of messages, got -1"),
        ('{"prefix": "1", "run": "r"}', "field 'prefix' must be a count of messages, got str"),
        ('{"prefix": 1, "v": 1, "run": "r"}', "field 'prefix' must be a count of messages"),
    ],
)
def test_a_bad_prefix_names_the_line(tmp_path: Path, line: str, reason: str) -> None:
    first = {"v": 2, "type": "model_start", "run": "r", "ts": 1.0, "model": "m"}
    first["messages"] = [{"role": "user", "content": "q"}]
    bad = {**first, "run": "r2", "messages": [], **json.loads(line)}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(first) + "\n" + json.dumps(bad) + "\n")
    errors: list[LineError] = []
    events = list(read_events(path, on_error=errors.append))
    assert len(events) == 1
    assert [(e.line, e.reason[: len(reason)]) for e in errors] == [(2, reason)]
