"""errors: the same error from one tool, again and again, whatever the arguments."""

from __future__ import annotations

from _scenarios import Fail, Sim
from hypothesis import given, settings
from hypothesis import strategies as st

from loopguard.verdict import Action
from tests.detectors.conftest import feed, only


def test_retry_storm_with_changing_arguments_escalates() -> None:
    s = Sim("t", "task")
    for i in range(6):
        s.step("upload", [("upload", {"size": 50 - i}, Fail(f"429 rate limited, retry in {i}s"))])
    verdicts, stop = feed(s.done("runaway", "").events, only("errors"))
    assert [v.action for v in verdicts] == [Action.WARN, Action.NUDGE]
    assert stop is not None and stop.evidence["repeats"] == 3
    assert stop.evidence["start_step"] == 1 and stop.evidence["tool"] == "upload"
    assert "upload" in verdicts[-1].evidence["message"]


def test_one_transient_error_then_success_is_fine() -> None:
    s = Sim("t", "task")
    s.step("go", [("fx", {"b": "EUR"}, Fail("503 Service Unavailable"))])
    s.step("go", [("fx", {"b": "EUR"}, "1.08")])
    verdicts, stop = feed(s.done("healthy", "").events, only("errors"))
    assert verdicts == [] and stop is None


def test_a_success_between_errors_ends_the_streak() -> None:
    s = Sim("t", "task")
    for i in range(12):
        result = Fail("404 Not Found") if i % 2 else f"ok {i}"
        s.step("go", [("download", {"url": f"u{i}"}, result)])
    verdicts, stop = feed(s.done("healthy", "").events, only("errors"))
    assert verdicts == [] and stop is None


def test_different_errors_do_not_add_up() -> None:
    s = Sim("t", "task")
    for error in ("timeout", "denied", "not found", "bad request", "conflict"):
        s.step("go", [("api", {"x": 1}, Fail(error))])
    verdicts, stop = feed(s.done("healthy", "").events, only("errors"))
    assert verdicts == [] and stop is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=40))
def test_errors_never_repeated_twice_in_a_row_never_trigger(fails: list[bool]) -> None:
    s = Sim("t", "task")
    previous = False
    for i, fail in enumerate(fails):
        fail = fail and not previous  # at most one error before a success
        previous = fail
        s.step("go", [("api", {"i": i}, Fail("boom") if fail else f"ok {i}")])
    verdicts, stop = feed(s.done("healthy", "").events, only("errors"))
    assert verdicts == [] and stop is None
