"""The regression test: the benchmark's scenarios under the shipped default policy.

Every runaway scenario is stopped within 3 model calls after its loop's second repetition, and
no healthy scenario is stopped.
"""

from __future__ import annotations

import pytest
from _baselines import BASELINES
from _scenarios import HEALTHY, RUNAWAY, Scenario
from detection import dollars, loopguard_stop


@pytest.mark.parametrize("make", RUNAWAY, ids=lambda f: f.__name__)
def test_runaway_is_stopped_in_time(make) -> None:  # type: ignore[no-untyped-def]
    scenario: Scenario = make()
    stop = loopguard_stop(scenario)
    assert stop is not None, f"{scenario.name} was not stopped"
    assert scenario.deadline is not None
    assert stop.step <= scenario.deadline, (
        f"{scenario.name}: stopped at call {stop.step}, latest allowed {scenario.deadline}"
    )
    assert dollars(scenario.events, stop) < dollars(scenario.events, None)


@pytest.mark.parametrize("make", HEALTHY, ids=lambda f: f.__name__)
def test_healthy_run_is_not_stopped(make) -> None:  # type: ignore[no-untyped-def]
    scenario: Scenario = make()
    stop = loopguard_stop(scenario)
    assert stop is None, f"{scenario.name} was stopped at call {stop.step}"


def test_suite_size_meets_the_issue() -> None:
    assert len(RUNAWAY) >= 12 and len(HEALTHY) >= 12


def test_baselines_behave_as_published() -> None:
    from _scenarios import exact_repeat, poll_until_done, research_run, streamed_code_table

    # OpenHands: 4 identical action/observation pairs.
    assert BASELINES["OpenHands"](exact_repeat().events) is not None
    # gemini-cli: 5 identical calls; and its content rule fires on a run of one character.
    assert BASELINES["gemini-cli"](exact_repeat().events) is not None
    assert BASELINES["gemini-cli"](streamed_code_table().events) is not None
    # A model-call limit stops a healthy long run.
    stop = BASELINES["call limit 25"](research_run().events)
    assert stop is not None and stop.step == 26
    assert BASELINES["max_iter 15"](poll_until_done().events).step == 16  # type: ignore[union-attr]


def test_each_real_loop_case_has_a_runaway_and_a_healthy_twin() -> None:
    from _scenarios import ISSUE_15

    assert len(ISSUE_15) == 7
    for make_runaway, make_twin in ISSUE_15:
        runaway, twin = make_runaway(), make_twin()
        assert runaway.kind == "runaway" and twin.kind == "healthy"
        assert make_runaway in RUNAWAY and make_twin in HEALTHY


def test_the_snowball_at_a_real_pace_costs_less_than_agent_executors_15_iterations() -> None:
    from _scenarios import snowball_real_pace

    scenario = snowball_real_pace()
    stop = loopguard_stop(scenario)
    assert stop is not None and scenario.deadline is not None and stop.step <= scenario.deadline
    executor = BASELINES["max_iter 15"](scenario.events)
    assert dollars(scenario.events, stop) < dollars(scenario.events, executor)
