"""The engine on its own: plain events in, verdicts out."""

from __future__ import annotations

import json
import logging

import pytest

from loopguard import Guard, LoopGuardAbort, Policy
from loopguard.events import (
    EventFormatError,
    Message,
    ModelEnd,
    ModelStart,
    RunEnd,
    RunStart,
    Token,
    ToolCall,
    ToolEnd,
    ToolStart,
    Usage,
    from_dict,
)
from loopguard.verdict import Action

# Loop detectors off: these tests are about the engine and the plain limits.
QUIET = {"max_model_calls": 3, "max_tool_calls": None}


def start(run: str = "r", ts: float = 0.0, **kw: object) -> ModelStart:
    kw.setdefault("model", "m")
    return ModelStart(run=run, ts=ts, **kw)  # type: ignore[arg-type]


def test_limit_is_checked_before_the_call_and_counts_exactly() -> None:
    guard = Guard(Policy(**QUIET))
    for i in range(3):
        guard.process(start(ts=i))
    with pytest.raises(LoopGuardAbort) as info:
        guard.process(start(ts=3))
    verdict = info.value.verdict
    assert (verdict.detector, verdict.step, verdict.usage["model_calls"]) == ("limits", 4, 3)
    assert verdict.evidence == {"limit": "max_model_calls", "value": 4, "max": 3}


def test_abort_is_sticky_until_the_run_ends() -> None:
    guard = Guard(Policy(**QUIET))
    for i in range(3):
        guard.process(start(ts=i))
    with pytest.raises(LoopGuardAbort):
        guard.process(start())
    with pytest.raises(LoopGuardAbort):
        guard.process(ToolStart(run="r", tool="t"))
    with pytest.raises(LoopGuardAbort):  # a chunk of a live aborted run (the chunks' own path)
        guard.process(Token(run="r", text="more"))
    with pytest.raises(LoopGuardAbort):  # the run "finished" as if nothing happened: re-raised
        guard.process(RunEnd(run="r", status="ok"))
    assert guard.active_runs == 0
    # Ended, the run stays refused: a caller that caught the abort cannot carry on with it,
    # and its late events do not bring its state back.
    with pytest.raises(LoopGuardAbort):
        guard.process(start())
    with pytest.raises(LoopGuardAbort):
        guard.process(Token(run="r", text="late"))
    assert guard.process(ModelEnd(run="r", model="m")) is None
    assert guard.active_runs == 0
    guard.process(start(run="other"))  # other runs are not touched


def test_aborted_run_end_is_quiet() -> None:
    guard = Guard(Policy(**QUIET))
    for i in range(3):
        guard.process(start(ts=i))
    with pytest.raises(LoopGuardAbort):
        guard.process(start())
    assert guard.process(RunEnd(run="r", status="aborted")) is None
    assert guard.active_runs == 0


def test_warning_once_at_the_threshold(caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(Policy(max_model_calls=10, warn_model_calls=2))
    verdicts = [guard.process(start(ts=i)) for i in range(5)]
    warns = [v for v in verdicts if v is not None]
    assert len(warns) == 1 and warns[0].action is Action.WARN and warns[0].step == 2
    assert any(r.name == "loopguard" and r.levelno == logging.WARNING for r in caplog.records)


def test_shadow_mode_stops_nothing_and_reports_once(caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(Policy(mode="shadow", **QUIET))
    verdicts = [guard.process(start(ts=i)) for i in range(6)]
    shadow = [v for v in verdicts if v is not None and v.action is Action.ABORT]
    assert len(shadow) == 1 and not shadow[0].enforced and shadow[0].step == 4
    state = guard.get_run("r")
    assert state is not None and state.model_calls == 6 and state.aborted is None
    assert state.shadow_verdicts == shadow
    assert "would stop run r" in caplog.text
    guard.process(RunEnd(run="r"))  # no abort re-raised at the end in shadow mode


def test_tool_limits_and_per_tool_limits() -> None:
    guard = Guard(Policy(max_tool_calls=5, max_calls_per_tool={"search": 2}))
    guard.process(ToolStart(run="r", tool="search"))
    guard.process(ToolStart(run="r", tool="search"))
    guard.process(ToolStart(run="r", tool="read"))
    with pytest.raises(LoopGuardAbort, match=r"max_calls_per_tool\.search=2"):
        guard.process(ToolStart(run="r", tool="search"))


def test_max_seconds_uses_event_time() -> None:
    guard = Guard(Policy(max_seconds=60))
    guard.process(RunStart(run="r", ts=1000.0))
    guard.process(start(ts=1030.0))
    with pytest.raises(LoopGuardAbort, match="max_seconds=60"):
        guard.process(start(ts=1061.0))


def test_max_tokens_projects_the_next_call() -> None:
    guard = Guard(Policy(max_tokens=1000))
    guard.process(start())
    guard.process(ModelEnd(run="r", model="m", usage=Usage(600, 100)))
    # 700 used; a call with max_tokens=400 could reach 1,100 + its input: refused up front
    with pytest.raises(LoopGuardAbort) as info:
        guard.process(start(max_tokens=400, messages=[Message("user", "x" * 35)]))
    assert info.value.verdict.evidence["projected"] == 700 + 14 + 400


def test_runs_are_independent_and_freed() -> None:
    guard = Guard(Policy(**QUIET))
    for run in ("a", "b"):
        for i in range(3):
            guard.process(start(run=run, ts=i))
    assert guard.active_runs == 2
    guard.end_run("a")
    guard.end_run("b")
    assert guard.active_runs == 0


def test_idle_runs_are_evicted_after_the_ttl_and_size_is_bounded() -> None:
    guard = Guard(Policy(), run_ttl=10, max_runs=50)
    guard.process(start(run="old", ts=0))
    guard.process(start(run="new", ts=100))
    assert guard.get_run("old") is None and guard.get_run("new") is not None
    for i in range(200):
        guard.process(start(run=f"r{i}", ts=100 + i * 0.001))
    assert guard.active_runs <= 50


def test_events_round_trip_through_json() -> None:
    events = [
        RunStart(run="r", agent="a", ts=1.5, name="agent", meta={"thread_id": "t"}),
        ModelStart(
            run="r",
            agent="a",
            ts=2.0,
            id="m1",
            parent="r",
            model="m",
            messages=[Message("user", "hi"), Message("assistant", "", [{"name": "t", "args": {}}])],
            max_tokens=10,
        ),
        ModelEnd(
            run="r",
            ts=3.0,
            id="m1",
            model="m",
            text="x",
            tool_calls=[ToolCall("t", {"a": 1})],
            usage=Usage(1, 2, 3, 4),
        ),
        ToolStart(run="r", tool="t", args={"a": 1}),
        ToolEnd(run="r", tool="t", output="out"),
        RunEnd(run="r", status="aborted"),
    ]
    for event in events:
        line = json.dumps(event.to_dict())
        assert from_dict(json.loads(line)) == event


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"v": 3, "type": "token"}, "field 'v' must be one of 1, 2, got 3"),
        ({"v": 1, "type": "nope", "run": "r", "ts": 1}, "field 'type' must be one of"),
        # not a string (a list is not even hashable): named like any other bad type
        ({"v": 1, "type": ["token"], "run": "r", "ts": 1}, "field 'type' must be one of"),
        ({"v": 1, "type": "token", "ts": 1}, "missing field 'run'"),
        ({"v": 1, "type": "token", "run": "r", "ts": "x", "text": "a"}, "field 'ts' must be"),
        (
            {
                "v": 1,
                "type": "model_end",
                "run": "r",
                "ts": 1,
                "model": "m",
                "usage": {"input_tokens": "ten"},
            },
            "usage.input_tokens must be a number",
        ),
        (
            {
                "v": 1,
                "type": "model_start",
                "run": "r",
                "ts": 1,
                "model": "m",
                "messages": [{"role": "robot", "content": ""}],
            },
            "messages[0].role must be one of",
        ),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_recorded_events_are_named(raw: object, says: str) -> None:
    with pytest.raises(EventFormatError, match=None) as info:
        from_dict(raw)
    assert says in str(info.value)


def test_own_detectors_run_before_the_money_check() -> None:
    from typing import ClassVar

    from loopguard.verdict import abort

    class RefuseAll:
        name: ClassVar[str] = "refuse"
        events: ClassVar[tuple[type, ...]] = (ModelStart,)

        def __call__(self, state: object, event: object) -> object:
            return abort(self.name, "no")

    guard = Guard(Policy(max_cost_usd=5.0), detectors=[RefuseAll()])
    with pytest.raises(LoopGuardAbort, match=r"\[refuse\]"):
        guard.process(start(model="anthropic.claude-3-haiku-20240307-v1:0"))
    state = guard.get_run("r")
    assert state is not None and "budget" not in state.slots  # nothing was reserved


def test_a_failed_call_with_estimated_usage_is_charged_and_settled() -> None:
    from loopguard.events import ModelFailed

    model = "anthropic.claude-3-haiku-20240307-v1:0"  # $0.25 / $1.25 per million
    guard = Guard(Policy(max_cost_usd=1.0))
    guard.process(start(model=model, id="c1", max_tokens=100))
    slot = guard.get_run("r").slots["budget"]  # type: ignore[union-attr]
    assert slot.held
    guard.process(ModelFailed(run="r", id="c1", model=model, error="cut", usage=Usage(1000, 200)))
    state = guard.get_run("r")
    assert state is not None and not slot.held
    assert abs(state.cost_usd - (1000 * 0.25e-6 + 200 * 1.25e-6)) < 1e-12
    # a plain failure (throttled before anything was billed) costs nothing
    guard.process(start(model=model, id="c2", max_tokens=100))
    guard.process(ModelFailed(run="r", id="c2", model=model, error="throttled"))
    assert abs(state.cost_usd - (1000 * 0.25e-6 + 200 * 1.25e-6)) < 1e-12 and not slot.held


class _Seen:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.verdicts: list[str] = []

    def on_event(self, state: object, event: object) -> None:
        self.events.append(type(event).__name__)

    def on_verdict(self, state: object, event: object, verdict: object) -> None:
        self.verdicts.append(verdict.detector)  # type: ignore[attr-defined]

    def on_run_end(self, state: object, event: object) -> None:
        pass


class _Flaky:
    """A token detector that breaks on one chunk and warns on another."""

    name = "flaky"
    events = (Token,)

    def __call__(self, state: object, event: Token) -> object:
        if event.text == "boom":
            raise RuntimeError("a bug in a detector")
        if event.text == "odd":
            from loopguard.verdict import warn

            return warn("flaky", "an odd chunk")
        return None


def test_streamed_chunks_of_a_live_run_are_judged_seen_and_keep_it_alive() -> None:
    sink = _Seen()
    guard = Guard(Policy(**QUIET), detectors=[_Flaky()], sinks=[sink])
    guard.process(start(ts=1.0))
    assert guard.process(Token(run="r", text="fine", ts=2.0)) is None
    assert guard.process(Token(run="r", text="boom", ts=3.0)) is None  # fails open
    verdict = guard.process(Token(run="r", text="odd", ts=4.0))
    assert verdict is not None and verdict.action is Action.WARN and verdict.step == 1
    state = guard.get_run("r")
    assert state is not None and state.last_seen == 4.0  # idle eviction counts from here
    assert state.model_calls == 1 and [w.detector for w in state.warnings] == ["flaky"]
    assert guard.internal_errors == 1
    assert sink.events == ["ModelStart", "Token", "Token", "Token"]
    assert sink.verdicts == ["flaky"]
    # A chunk of a run the guard has not seen starts it, as any event does.
    assert guard.process(Token(run="new", text="fine", ts=5.0)) is None
    assert guard.get_run("new") is not None


def test_a_custom_pricer_is_also_the_one_that_projects_the_next_call() -> None:
    # One pricer: it charges finished calls and admits the next one, so three $1 calls under
    # a $2.50 cap are two.
    guard = Guard(Policy(max_cost_usd=2.5, max_model_calls=None), pricer=lambda *_: 1.0)
    for i in range(2):
        guard.process(ModelStart(run="r", id=f"c{i}", model="my-model", ts=i))
        guard.process(ModelEnd(run="r", id=f"c{i}", model="my-model", usage=Usage(10, 10), ts=i))
    with pytest.raises(LoopGuardAbort) as stop:
        guard.process(ModelStart(run="r", id="c2", model="my-model", ts=2))
    assert stop.value.verdict.detector == "budget"
    assert stop.value.verdict.evidence["spent_usd"] == 2.0


def test_a_nudge_is_kept_for_the_next_model_call_once_per_detector() -> None:
    from loopguard.verdict import nudge

    class Nudger:
        name = "nudger"
        events = (ToolEnd, ModelEnd)

        def __call__(self, state, event):
            return nudge(self.name, "you are repeating yourself")

    guard = Guard(Policy(**QUIET), detectors=[Nudger()])
    guard.process(ModelStart(run="r", model="m"))
    assert guard.take_nudge("r") is None
    guard.process(ModelEnd(run="r", model="m"))  # given on the answer, kept for the next call
    guard.process(ToolEnd(run="r", tool="t"))
    taken = guard.take_nudge("r")
    assert taken is not None and taken.detector == "nudger" and taken.action is Action.NUDGE
    assert guard.take_nudge("r") is None
    guard.process(ToolEnd(run="r", tool="t"))
    assert guard.take_nudge("r") is None  # that detector has nudged this run already
    assert guard.take_nudge("no-such-run") is None


def test_a_live_run_keeps_its_caps_and_its_abort_through_eviction() -> None:
    # Three live runs take turns in a table of two: each is evicted and brought back again
    # and again, yet each is stopped at its sixth call, and stays stopped.
    guard = Guard(Policy(max_model_calls=5, max_tool_calls=None), max_runs=2)
    made = dict.fromkeys(("a", "b", "c"), 0)
    stopped: set[str] = set()
    for i in range(40):
        for run in made:
            try:
                guard.process(start(run=run, ts=i))
            except LoopGuardAbort as stop:
                assert stop.verdict.evidence["value"] == 6
                stopped.add(run)
            else:
                assert run not in stopped, "an aborted run was let through after eviction"
                made[run] += 1
    assert made == {"a": 5, "b": 5, "c": 5}
    assert guard.active_runs <= 2


def test_eviction_takes_the_least_recently_seen_run() -> None:
    guard = Guard(Policy(**QUIET), max_runs=2)
    guard.process(start(run="first", ts=0))
    guard.process(start(run="second", ts=1))
    guard.process(start(run="first", ts=2))  # "first" is busy again: "second" is idle
    guard.process(start(run="third", ts=3))
    assert guard.get_run("first") is not None and guard.get_run("third") is not None
    assert guard.get_run("second") is None
