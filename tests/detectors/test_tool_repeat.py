"""tool_repeat: identical calls with identical results escalate; polling has its own cap."""

from __future__ import annotations

from _scenarios import Fail, Sim
from hypothesis import given, settings
from hypothesis import strategies as st

from loopguard.verdict import Action
from tests.detectors.conftest import feed, only


def _repeat(n: int, result: str | Fail = "no results", args: dict | None = None) -> list:
    s = Sim("t", "task")
    for _ in range(n):
        s.step("search", [("search", args or {"q": "x"}, result)])
    return s.done("runaway", "").events


def test_escalates_warn_nudge_then_abort_with_evidence() -> None:
    verdicts, stop = feed(_repeat(6), only("tool_repeat"))
    assert [v.action for v in verdicts] == [Action.WARN, Action.NUDGE]
    assert stop is not None and stop.detector == "tool_repeat"
    assert stop.evidence["repeats"] == 3 and stop.evidence["period"] == 1
    assert stop.evidence["start_step"] == 1 and stop.evidence["similarity"] == 1.0
    assert stop.step == 5  # the 4th identical pair ends call 4; call 5 never goes out
    assert "search" in verdicts[1].evidence["message"]
    assert "3 times" in verdicts[1].evidence["message"]


def test_argument_key_order_and_case_do_not_matter() -> None:
    s = Sim("t", "task")
    for args in (
        {"a": 1, "b": "X  y"},
        {"b": "x y", "a": 1},
        {"b": " X Y", "a": 1},
        {"a": 1, "b": "x y"},
    ):
        s.step("go", [("tool", args, "same")])
    _, stop = feed(s.done("runaway", "").events, only("tool_repeat"))
    assert stop is not None


def test_new_results_are_polling_not_repeats() -> None:
    s = Sim("t", "task")
    for i in range(30):
        s.step("poll", [("status", {"id": "job-1"}, f"running {i}%")])
    verdicts, stop = feed(
        s.done("healthy", "").events, only("tool_repeat", warn_polls=20, max_polls=40)
    )
    assert stop is None
    assert [v.evidence.get("polls") for v in verdicts] == [21]


def test_polling_forever_hits_max_polls() -> None:
    s = Sim("t", "task")
    for i in range(12):
        s.step("poll", [("status", {"id": "job-1"}, f"running {i}%")])
    _, stop = feed(s.done("runaway", "").events, only("tool_repeat", max_polls=10, warn_polls=5))
    assert stop is not None and stop.evidence["polls"] == 11
    assert stop.evidence["start_step"] == 1


def test_same_error_counts_as_same_result() -> None:
    _, stop = feed(_repeat(5, Fail("denied")), only("tool_repeat"))
    assert stop is not None and "same error" in stop.reason


def test_timestamps_and_request_ids_in_results_do_not_make_them_new() -> None:
    s = Sim("t", "task")
    for i in range(5):
        s.step(
            "go",
            [
                (
                    "create",
                    {"t": "x"},
                    f"created at 2025-01-0{i + 1}T10:00:0{i}Z "
                    f"id=3f2a9c1e-1111-2222-3333-44445555666{i}",
                )
            ],
        )
    _, stop = feed(s.done("runaway", "").events, only("tool_repeat"))
    assert stop is not None


def test_levels_can_be_switched_off() -> None:
    verdicts, stop = feed(
        _repeat(8), only("tool_repeat", warn_repeats=None, nudge_repeats=None, abort_repeats=None)
    )
    assert verdicts == [] and stop is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["read", "search", "open"]),
            st.integers(0, 10_000),
            st.text(min_size=1, max_size=30),
        ),
        min_size=1,
        max_size=40,
        unique_by=lambda t: (t[0], t[1]),
    )
)
def test_distinct_calls_never_trigger(calls: list[tuple[str, int, str]]) -> None:
    s = Sim("t", "task")
    for tool, arg, result in calls:
        s.step("x", [(tool, {"id": arg}, result)])
    verdicts, stop = feed(s.done("healthy", "").events, only("tool_repeat"))
    assert stop is None and verdicts == []


def test_other_work_between_identical_calls_restarts_the_count() -> None:
    s = Sim("t", "fix the bug")
    for i in range(6):
        s.step("edit", [("edit", {"patch": f"attempt {i}"}, "edited")])
        s.step("test", [("run_tests", {}, "1 failed: test_total")])
    verdicts, stop = feed(s.done("healthy", "").events, only("tool_repeat"))
    assert verdicts == [] and stop is None
