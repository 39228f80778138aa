"""velocity: tokens and dollars per minute over a sliding window, and bursts."""

from __future__ import annotations

from loopguard.events import ModelEnd, Usage
from loopguard.verdict import Action
from tests.detectors.conftest import feed, only

MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"


def _calls(tokens: int, every: float, n: int) -> list:
    return [
        ModelEnd(run="r", model=MODEL, ts=1000 + i * every, usage=Usage(tokens, 0))
        for i in range(n)
    ]


def test_burst_rule_stops_a_flood() -> None:
    verdicts, stop = feed(
        _calls(150_000, 2.0, 10),
        only("velocity", max_tokens_per_minute=None, max_usd_per_minute=None),
    )
    assert stop is not None and stop.evidence["rule"] == "burst_tokens"
    assert [v.action for v in verdicts] == [Action.WARN]


def test_the_window_slides() -> None:
    # 100k tokens every 20 s: never more than 300k in a 60 s window
    verdicts, stop = feed(
        _calls(100_000, 20.0, 30),
        only("velocity", max_tokens_per_minute=400_000, burst_tokens=None, max_usd_per_minute=None),
    )
    assert stop is None
    assert [v.evidence["rule"] for v in verdicts] == ["tokens_per_minute"]  # warned at 200k+


def test_tokens_per_minute_is_measured_not_extrapolated() -> None:
    # Two quick small calls at the start of a run are not a flood.
    verdicts, stop = feed(_calls(5_000, 0.5, 2), only("velocity"))
    assert verdicts == [] and stop is None


def test_dollars_per_minute_use_the_guard_pricer() -> None:
    # 200k input tokens of Claude 3.5 Sonnet ($3/M) = $0.60 a call; 10 calls in a minute
    _, stop = feed(
        _calls(200_000, 6.0, 12),
        only("velocity", max_tokens_per_minute=None, burst_tokens=None, max_usd_per_minute=5.0),
    )
    assert stop is not None and stop.evidence["rule"] == "usd_per_minute"


def test_rates_are_published_for_telemetry() -> None:
    from loopguard import Guard

    guard = Guard(only("velocity"))
    for event in _calls(1_000, 1.0, 3):
        guard.process(event)
    state = guard.get_run("r")
    assert state is not None and state.attributes["loopguard.tokens_per_minute"] == 3_000


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(100, 30_000), st.floats(2.0, 30.0)), min_size=1, max_size=80))
def test_a_busy_but_steady_agent_never_triggers(calls: list[tuple[int, float]]) -> None:
    # at most 30k tokens per call, at least 2 s apart: under every default limit and warning
    ts, events = 1000.0, []
    for tokens, gap in calls:
        ts += gap
        events.append(ModelEnd(run="r", model="unpriced-model", ts=ts, usage=Usage(tokens, 0)))
    verdicts, stop = feed(events, only("velocity"))
    assert verdicts == [] and stop is None


def test_a_big_cached_context_at_a_fast_pace_is_not_a_flood() -> None:
    # A coding agent with a 150k-token context, 145k of it read from the prompt cache, answering
    # every 2 seconds: 750k tokens in 10 s, but only 25k of them new. Not stopped, not warned.
    calls = [
        ModelEnd(
            run="r",
            model=MODEL,
            ts=1000 + i * 2.0,
            usage=Usage(150_000, 400, cache_read_tokens=145_000),
        )
        for i in range(30)
    ]
    verdicts, stop = feed(calls, only("velocity"))
    assert stop is None and verdicts == []
    # the same pace without the cache is the flood the burst rule is for
    uncached = [
        ModelEnd(run="r", model=MODEL, ts=1000 + i * 2.0, usage=Usage(150_000, 400))
        for i in range(30)
    ]
    assert feed(uncached, only("velocity"))[1] is not None
