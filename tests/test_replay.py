"""Replay: recorded events through a real Guard, run by run."""

from __future__ import annotations

import sys
from pathlib import Path

from loopguard import Guard, Policy, PolicySet
from loopguard.events import ModelEnd, RunEnd, Usage
from loopguard.replay import LineError, Replayer, read_events, replay_events

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _scenarios import batch_orders, exact_repeat, ping_pong


def test_interleaved_runs_are_replayed_independently() -> None:
    a, b, c = exact_repeat().events, batch_orders().events, ping_pong().events
    mixed = [e for trio in zip(a, b, c, strict=False) for e in trio]
    mixed += a[len(b) :] + b[len(a) :] + c[len(a) :]
    results = {r.run: r for r in replay_events(mixed)}
    assert results["bench-exact-repeat"].action == "abort"
    assert results["bench-exact-repeat"].step == 6
    assert results["bench-batch-orders"].action == "ok"
    assert results["bench-batch-orders"].step == 31
    assert results["bench-ping-pong"].action == "abort"
    assert results["bench-batch-orders"].cost_usd > 0


def test_events_after_an_abort_are_skipped() -> None:
    replayer = Replayer(Guard(Policy()))
    events = exact_repeat().events
    for event in events:
        replayer.feed(event)
    [result] = replayer.finish()
    assert result.action == "abort" and replayer.skipped > 0
    assert replayer.events + replayer.skipped == len(events)
    assert replayer.guard.active_runs == 0  # the stopped run's state was freed


def test_shadow_mode_reports_the_would_be_abort() -> None:
    [result] = replay_events(exact_repeat().events, Guard(Policy(mode="shadow")))
    assert result.action == "abort" and result.detector == "tool_repeat"
    assert result.verdict is not None and result.verdict.enforced is False


def test_a_different_policy_changes_the_outcome() -> None:
    lenient = PolicySet.from_dict(
        {
            "tool_repeat": {"abort_repeats": 50, "nudge_repeats": 50},
            "similarity": {"enabled": False},
            "cycle": {"enabled": False},
            "progress": {"enabled": False},
        }
    )
    [result] = replay_events(exact_repeat().events, Guard(lenient))
    # first repeat: calls 2 and 3 searched alike; the warning comes before call 4
    assert result.action == "warn" and result.detector == "tool_repeat" and result.step == 4


def test_runs_left_open_are_ended() -> None:
    guard = Guard(Policy())
    events = [ModelEnd(run="r", model="m", ts=1.0, usage=Usage(1, 1))]
    [result] = replay_events(events, guard)
    assert result.action == "ok" and guard.active_runs == 0


def test_to_dict_is_the_cli_contract() -> None:
    [result] = replay_events(exact_repeat().events)
    assert set(result.to_dict()) == {
        "run",
        "agent",
        "action",
        "detector",
        "reason",
        "step",
        "cost_usd",
    }


def test_read_events_reports_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    good = RunEnd(run="r", ts=1.0).to_dict()
    import json

    path.write_text(
        json.dumps(good) + "\n{oops\n\n" + '{"v": 1, "type": "tool_end", "run": "r",'
        ' "ts": 2}\n' + json.dumps(good) + "\n"
    )
    errors: list[LineError] = []
    events = list(read_events(path, on_error=errors.append))
    assert len(events) == 2
    assert [str(e).split(": ")[0] for e in errors] == [f"{path}:2", f"{path}:4"]
    assert "invalid JSON" in errors[0].reason and "'tool'" in errors[1].reason
