"""cycle: A,B,A,B and longer cycles of tool calls with the same results."""

from __future__ import annotations

from _scenarios import Sim
from hypothesis import given, settings
from hypothesis import strategies as st

from loopguard.verdict import Action
from tests.detectors.conftest import feed, only


def _cycle(pattern: list[tuple[str, dict, str]], rounds: int) -> list:
    s = Sim("t", "task")
    for _ in range(rounds):
        for tool, args, result in pattern:
            s.step("go", [(tool, args, result)])
    return s.done("runaway", "").events


A = ("read", {"path": "a.txt"}, "alpha")
B = ("read", {"path": "b.txt"}, "beta")
C = ("list", {"dir": "docs"}, "a.txt b.txt")


def test_ping_pong_warns_nudges_then_aborts_on_the_next_step() -> None:
    verdicts, stop = feed(_cycle([A, B], 5), only("cycle"))
    assert [v.action for v in verdicts] == [Action.WARN, Action.NUDGE]
    assert stop is not None and stop.evidence["period"] == 2
    assert stop.evidence["start_step"] == 1
    # A B | A B | A B | A: the 7th call continues the cycle after two repetitions
    assert stop.step == 8
    assert "read -> read" in verdicts[1].evidence["message"]


def test_three_cycle_is_found_with_its_period() -> None:
    _, stop = feed(_cycle([A, B, C], 4), only("cycle"))
    assert stop is not None and stop.evidence["period"] == 3 and stop.evidence["repeats"] == 2


def test_near_identical_arguments_still_match() -> None:
    s = Sim("t", "task")
    for i in range(5):
        s.step(
            "go",
            [
                (
                    "search",
                    {
                        "q": [
                            "acme quarterly revenue",
                            "ACME quarterly revenues",
                            "acme quarterly  revenue",
                        ][i % 3]
                    },
                    "nothing",
                )
            ],
        )
        s.step("go", [("read", {"path": "a.txt"}, "alpha")])
    _, stop = feed(s.done("runaway", "").events, only("cycle"))
    assert stop is not None and stop.evidence["period"] == 2
    assert 0.85 <= stop.evidence["similarity"] < 1.0


def test_different_identifiers_break_the_match() -> None:
    s = Sim("t", "task")
    for i in range(6):
        s.step("go", [("get", {"order": 1000 + i}, "ok")])
        s.step("go", [("read", {"path": "a.txt"}, "alpha")])
    verdicts, stop = feed(s.done("healthy", "").events, only("cycle"))
    assert verdicts == [] and stop is None


def test_changing_results_are_progress() -> None:
    s = Sim("t", "task")
    for i in range(6):
        s.step("go", [("read", {"path": "log"}, f"line {i}")])
        s.step("go", [("status", {"job": "j"}, f"{10 * i}%")])
    verdicts, stop = feed(s.done("healthy", "").events, only("cycle"))
    assert verdicts == [] and stop is None


def test_period_one_is_left_to_tool_repeat() -> None:
    verdicts, stop = feed(_cycle([A], 8), only("cycle"))
    assert verdicts == [] and stop is None


def test_min_period_above_max_period_is_rejected() -> None:
    import pytest
    from pydantic import ValidationError

    from loopguard.detectors.cycle import CycleConfig

    with pytest.raises(ValidationError, match="min_period"):
        CycleConfig(min_period=5, max_period=3)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 3)), min_size=1, max_size=60
    )
)
def test_calls_with_fresh_results_never_trigger(calls: list[tuple[str, int]]) -> None:
    s = Sim("t", "task")
    for i, (tool, arg) in enumerate(calls):
        s.step("go", [(tool, {"x": arg}, f"result {i}")])  # every result is new
    verdicts, stop = feed(s.done("healthy", "").events, only("cycle"))
    assert verdicts == [] and stop is None


def test_a_cycle_whose_results_carry_a_fresh_id_is_found() -> None:
    s = Sim("t", "deploy")
    for i in range(6):
        s.step("deploy", [("deploy", {"v": "2.4.1"}, f"Deployment dpl-{i}x{i}k9q{i}z started")])
        s.step("check", [("check_health", {}, "UNHEALTHY: 0/3 ready")])
    _, stop = feed(s.done("runaway", "").events, only("cycle"))
    assert stop is not None and stop.evidence["period"] == 2


def test_huge_arguments_are_compared_clipped(monkeypatch) -> None:
    # 1 MB arguments: comparing them whole is quadratic (seconds per call, under the run's
    # lock). The cycle is still found, comparing a few thousand characters a call.
    from loopguard.detectors import cycle

    longest = 0
    real = cycle.similar

    def measured(a: str, b: str, threshold: float) -> bool:
        nonlocal longest
        longest = max(longest, len(a), len(b))
        return real(a, b, threshold)

    monkeypatch.setattr(cycle, "similar", measured)
    big_a = ("write", {"path": "a.csv", "content": "x" * 1_000_000}, "written")
    big_b = ("write", {"path": "b.csv", "content": "y" * 1_000_000}, "written")
    _, stop = feed(_cycle([big_a, big_b], 5), only("cycle"))
    assert stop is not None and stop.evidence["period"] == 2
    assert 0 < longest <= 4001
