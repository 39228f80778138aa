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


_TRACE = (
    'Traceback (most recent call last):\n  File "manage.py", line 22, in <module>\n'
    "django.db.utils.OperationalError: could not connect to server (172.18.0.{n})\n"
)


def test_errors_printed_as_output_count_and_the_reason_names_only_their_kind() -> None:
    s = Sim("t", "migrate")
    for i in range(6):
        s.step("go", [("shell", {"cmd": f"python manage.py migrate -v{i}"}, _TRACE.format(n=i))])
    verdicts, stop = feed(s.done("runaway", "").events, only("errors"))
    assert [v.action for v in verdicts] == [Action.WARN, Action.NUDGE]
    assert stop is not None and stop.step == 5
    assert stop.reason == "tool 'shell' failed 4 times in a row with a traceback"
    assert "manage" not in stop.evidence["message"]  # no output in what the model is told


def test_shell_and_http_errors_in_output() -> None:
    for output in (
        "bash: jq: command not found",
        "<html><title>502 Bad Gateway</title></html>",
        "Error 404 File not found",
        "compiling...\n" + "ok\n" * 200 + "Process exited with code 2",
    ):
        s = Sim("t", "task")
        for _ in range(4):
            s.step("go", [("tool", {}, output)])
        _, stop = feed(s.done("runaway", "").events, only("errors"))
        assert stop is not None, output


def test_a_result_that_mentions_errors_is_not_one() -> None:
    s = Sim("t", "task")
    for _ in range(6):
        s.step(
            "go",
            [("docs", {"q": "errors"}, "Error handling guide: a 404 not found means the page ...")],
        )
    verdicts, stop = feed(s.done("healthy", "").events, only("errors"))
    assert verdicts == [] and stop is None


def test_another_tool_bringing_something_new_ends_the_streak() -> None:
    s = Sim("t", "change the flight")
    failure = Fail("flight HAT030 not available on 2024-05-13")
    for i in range(4):
        s.step("try", [("update_flight", {"flight": "HAT030"}, failure)])
        s.step("look", [("search", {"date": f"2024-05-{14 + i}"}, f"HAT{100 + i} at {9 + i}:00")])
    verdicts, stop = feed(s.done("healthy", "").events, only("errors"))
    assert verdicts == [] and stop is None
