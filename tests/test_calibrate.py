"""loopguard.calibrate: limits from good runs, with a false stop rate the data supports."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from loopguard import Guard, PolicySet
from loopguard.calibrate import (
    LIMITS,
    CalibrationError,
    RunMeasure,
    calibrate,
    measure,
    policy_toml,
    runs_needed,
)
from loopguard.events import (
    Event,
    Message,
    ModelEnd,
    ModelStart,
    RunEnd,
    RunStart,
    ToolCall,
    ToolEnd,
    ToolStart,
    Usage,
)
from loopguard.replay import replay_events

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


def good_run(
    run: str, calls: int, *, agent: str | None = "researcher", pace: float = 2.0, status="ok"
) -> list[Event]:
    """A tool-calling run of `calls` model calls whose prompt grows with each result."""
    base = {"run": run, "agent": agent}
    ts = 1_767_225_600.0
    messages = [Message("user", f"Task of {run}: find what changed.")]
    events: list[Event] = [RunStart(**base, ts=ts, name=agent)]
    for i in range(1, calls + 1):
        cid = f"{run}:m{i}"
        events.append(ModelStart(**base, ts=ts, id=cid, model=MODEL, messages=list(messages)))
        usage = Usage(input_tokens=300 + 40 * len(messages), output_tokens=20 + 3 * i)
        ts += pace
        last = i == calls
        calls_out = [] if last else [ToolCall("search", {"q": f"{run} page {i}"})]
        events.append(
            ModelEnd(**base, ts=ts, id=cid, model=MODEL, text="", tool_calls=calls_out, usage=usage)
        )
        messages.append(Message("assistant", "", [c.to_dict() for c in calls_out] or None))
        if not last:
            tid = f"{run}:t{i}"
            events.append(ToolStart(**base, ts=ts, id=tid, tool="search", args={"q": str(i)}))
            ts += 0.5
            result = f"result {i} of {run}: " + "new facts " * (5 + i)
            events.append(ToolEnd(**base, ts=ts, id=tid, tool="search", output=result))
            messages.append(Message("tool", result))
    events.append(RunEnd(**base, ts=ts + 0.1, status=status))
    return events


def runs_of(lengths: list[int], prefix: str = "r", **kw: object) -> list[Event]:
    return [e for i, n in enumerate(lengths) for e in good_run(f"{prefix}{i}", n, **kw)]  # type: ignore[arg-type]


# --- the bound ---------------------------------------------------------------------------------


def _draw(rng: random.Random) -> RunMeasure:
    """A good run from a known distribution: lengths, tokens, dollars and time that vary
    together but not in lockstep (as real runs do)."""
    calls = 1 + int(rng.expovariate(1 / 8))
    tokens = int(calls * rng.lognormvariate(8, 0.4))
    return RunMeasure(
        "x",
        "a",
        max_model_calls=calls,
        max_tool_calls=max(0, calls - 1 + rng.randint(-1, 2)),
        max_tokens=tokens,
        max_cost_usd=tokens * 3e-6 * rng.uniform(0.8, 1.2),
        max_seconds=calls * rng.lognormvariate(1.5, 0.5),
        status="ok",
    )


def _stopped(limits: dict[str, float], m: RunMeasure) -> bool:
    # How each check compares (see _limit): seconds stop at the limit, the rest above it.
    return any(
        getattr(m, name) >= value if name == "max_seconds" else getattr(m, name) > value
        for name, value in limits.items()
    )


@pytest.mark.parametrize(
    ("n", "rate", "limits"),
    [(39, 0.05, ("max_tokens",)), (39, 0.25, LIMITS), (99, 0.1, LIMITS[:2])],
)
def test_false_stop_rate_on_fresh_runs_stays_within_the_bound(
    n: int, rate: float, limits: tuple[str, ...]
) -> None:
    """Calibrate on n draws, count false stops on fresh draws of the same distribution; over
    many calibrations the mean rate is within the stated bound up to 4 standard errors of that
    mean (the rate of one calibration varies: the guarantee is over calibrations)."""
    rng = random.Random(20261201)
    rates = []
    for _ in range(150):
        c = calibrate([_draw(rng) for _ in range(n)], rate, agent="a", limits=limits)
        assert c.bound <= rate
        fresh = [_draw(rng) for _ in range(400)]
        rates.append(sum(_stopped(c.limits, m) for m in fresh) / len(fresh))
    mean = statistics.fmean(rates)
    noise = 4 * statistics.stdev(rates) / math.sqrt(len(rates))
    assert mean <= c.bound + noise, (mean, c.bound, noise)
    if len(limits) == 1:
        # One continuous limit: the bound is exact, (n+1-k)/(n+1), so an off-by-one in k (a
        # limit one rank too high or too low) shows as a mean 1/(n+1) away.
        assert abs(mean - c.bound) <= noise, (mean, c.bound, noise)


def _independent(rng: random.Random) -> RunMeasure:
    """A good run whose limits vary independently of one another, with many ties (the worst
    case for counting limits jointly: each limit's top runs are other runs)."""
    return RunMeasure(
        "x",
        "a",
        max_model_calls=rng.randint(1, 12),
        max_tool_calls=rng.randint(0, 12),
        max_tokens=rng.randint(1, 40) * 100,
        status="ok",
    )


def test_independent_limits_with_ties_stay_within_the_bound() -> None:
    rng = random.Random(7)
    names = ("max_model_calls", "max_tool_calls", "max_tokens")
    rates = []
    for _ in range(300):
        c = calibrate([_independent(rng) for _ in range(59)], 0.15, agent="a", limits=names)
        fresh = [_independent(rng) for _ in range(300)]
        rates.append(sum(_stopped(c.limits, m) for m in fresh) / len(fresh))
    mean = statistics.fmean(rates)
    assert mean <= 0.15 + 4 * statistics.stdev(rates) / math.sqrt(len(rates)), mean


def _brute_worst_count(rows: list[tuple[int, ...]], k: int) -> int:
    """The most runs, among `rows` and one more run placed anywhere, ranked above k (from
    below, ties sharing the lowest rank) in some column: by trying every placement."""
    import itertools

    columns = list(zip(*rows, strict=True))
    spots = [sorted({v + d for v in col for d in (-0.5, 0, 0.5)}) for col in columns]
    most = 0
    for new in itertools.product(*spots):
        everyone = [*rows, new]
        count = sum(
            any(1 + sum(o[j] < p[j] for o in everyone) > k for j in range(len(columns)))
            for p in everyone
        )
        most = max(most, count)
    return most


@pytest.mark.parametrize("seed", range(40))
def test_the_worst_case_count_is_the_most_any_new_run_makes(seed: int) -> None:
    from loopguard.calibrate import _ranks, _worst_count

    rng = random.Random(seed)
    n, m = rng.randint(1, 6), rng.randint(1, 3)
    rows = [tuple(rng.randint(0, 3) for _ in range(m)) for _ in range(n)]
    ranks = _ranks({str(j): [r[j] for r in rows] for j in range(m)})
    for k in range(1, n + 1):
        assert _worst_count(ranks, k) == _brute_worst_count(rows, k), (rows, k)


def test_limits_that_rise_together_are_counted_once() -> None:
    # 99 runs whose five limits rise together, rate 0.05: counted jointly, a run above the k-th
    # value in every limit counts once, so k = 96 fits (at most 99-96+1 runs ranked 96 or more,
    # plus the new run: 5 <= 0.05 * 100), where a union bound would take k = 99.
    good = [_lockstep(i) for i in range(1, 100)]
    c = calibrate(good, 0.05, agent="a")
    assert (c.rank, c.bound, c.supported) == (96, 0.05, 0.05)
    assert c.limits["max_model_calls"] == 96
    # One limit is exact split-conformal: k = n + 1 - floor(rate * (n + 1)).
    c = calibrate(good[:39], 0.1, agent="a", limits=["max_tokens"])
    assert (c.rank, c.supported) == (36, 1 / 40)


def _lockstep(i: int) -> RunMeasure:
    return RunMeasure(
        f"r{i}",
        "a",
        max_model_calls=i,
        max_tool_calls=i - 1,
        max_tokens=1000 * i,
        max_cost_usd=0.01 * i,
        max_seconds=3.0 * i,
        status="ok",
    )


def test_rank_and_bound_follow_split_conformal() -> None:
    good = [RunMeasure(f"r{i}", "a", max_model_calls=i + 1, status="ok") for i in range(19)]
    c = calibrate(good, 0.05, agent="a", limits=["max_model_calls"])
    # n = 19, rate 0.05: j = floor(20 * 0.05) = 1 run above the limit, k = 19: the largest.
    assert (c.runs, c.rank, c.bound, c.limits) == (19, 19, 0.05, {"max_model_calls": 19})
    good += [RunMeasure(f"s{i}", "a", max_model_calls=100 + i, status="ok") for i in range(20)]
    c = calibrate(good, 0.05, agent="a", limits=["max_model_calls"])
    assert (c.rank, c.bound, c.limits["max_model_calls"]) == (38, 0.05, 118)


def test_too_few_runs_is_refused_with_what_is_needed() -> None:
    assert runs_needed(0.05, 1) == 19 and runs_needed(0.05, 5) == 99 and runs_needed(0.1) == 49
    good = [RunMeasure(f"r{i}", "a", max_model_calls=3, status="ok") for i in range(18)]
    with pytest.raises(CalibrationError, match=r"18 good runs .* needs at least 19 runs"):
        calibrate(good, 0.05, agent="a", limits=["max_model_calls"])
    with pytest.raises(
        CalibrationError,
        # 5/19 = 0.26316, shown rounded up so that it can be asked for as shown
        match=r"needs at least 99 runs .*; with 18 the lowest supported rate is 0\.264\.",
    ):
        calibrate(good, 0.05, agent="a")
    assert calibrate(good, 0.264, agent="a").rank >= 1
    with pytest.raises(CalibrationError, match="no recorded run of agent 'b'"):
        calibrate(good, 0.05, agent="b")
    with pytest.raises(CalibrationError, match="between 0 and 1"):
        calibrate(good, 1.5, agent="a")
    unpriced = [replace(m, max_cost_usd=None) for m in good]
    with pytest.raises(CalibrationError, match=r"none of the limits .* a model without a price"):
        calibrate(unpriced, 0.5, agent="a", limits=["max_cost_usd"])
    with pytest.raises(CalibrationError, match="unknown limit max_steps"):
        calibrate(good, 0.5, agent="a", limits=["max_steps"])


# --- limits as the guard checks them ------------------------------------------------------------


def test_measures_are_what_the_checks_compare() -> None:
    events = good_run("r", 4)
    (m,) = measure(events)
    assert (m.max_model_calls, m.max_tool_calls, m.status) == (4, 3, "ok")
    # The token check projects the next call (prompt estimate) on top of the tokens used.
    assert m.max_tokens > sum(e.usage.total_tokens for e in events[:-3] if type(e) is ModelEnd)
    assert m.max_cost_usd is not None and m.max_cost_usd > 0
    assert m.max_seconds == pytest.approx(3 * 2.5)  # the last model call starts at 7.5 s
    cut = measure(good_run("c", 3)[:-1] + good_run("e", 2, status="error"))
    assert [x.status for x in cut] == [None, "error"]


@pytest.mark.parametrize("no_usage", [False, True], ids=["usage", "calls-without-usage"])
@pytest.mark.parametrize("name", LIMITS)
def test_a_run_at_the_limit_passes_and_just_above_is_stopped(
    name: str, no_usage: bool, tmp_path: Path
) -> None:
    """The limit written for a run's value lets that run through; a notch below stops it (so
    the measure is exactly what the guard's check compares, not merely close). Calls that
    report no usage are charged their projection under a dollar cap: measured so too."""
    events = good_run("r", 6, pace=3.3)
    if no_usage:
        events = [replace(e, usage=Usage()) if type(e) is ModelEnd else e for e in events]
    (m,) = measure(events)
    c = calibrate([m], 0.99, agent="researcher", limits=[name])
    path = tmp_path / "calibrated.toml"
    path.write_text(policy_toml([c]))
    (result,) = replay_events(events, Guard(PolicySet.load(path)))
    assert result.action != "abort", result.reason
    limit = c.limits[name]
    notch = {"max_seconds": m.max_seconds, "max_cost_usd": limit - 2e-6}.get(name, limit - 1)
    tighter = PolicySet.from_dict({"agents": {"researcher": {name: notch}}})
    (result,) = replay_events(events, Guard(tighter))
    assert result.action == "abort" and result.detector in ("limits", "budget"), result


def test_policy_file_loads_and_stops_only_above_the_kth_run(tmp_path: Path) -> None:
    lengths = [3, 4, 5, 6, 7, 8, 9, 10, 11, 30]
    events = runs_of(lengths) + runs_of([2, 3], "anon", agent=None)
    measures = measure(events)
    c = calibrate(measures, 0.2, agent="researcher", limits=["max_model_calls"])
    # n = 10, one limit: j = floor(11 * 0.2) = 2, k = 9: the 9th smallest, 11 calls.
    assert (c.rank, c.limits) == (9, {"max_model_calls": 11})
    none = calibrate(measures, 0.5, agent=None, limits=["max_model_calls"])  # k = 2 of 2
    path = tmp_path / "p.toml"
    path.write_text(policy_toml([c, none], ["runs.jsonl"]))
    policies = PolicySet.load(path)
    assert policies.for_agent("researcher").max_model_calls == 11
    assert policies.default.max_model_calls == 3
    results = replay_events(events, Guard(policies))
    stopped = {r.run: r.step for r in results if r.action == "abort"}
    assert stopped == {"r9": 12}  # the 30-call run, refused its 12th call; r8 (11 calls) runs


def test_runs_that_did_not_end_ok_are_not_calibrated_on() -> None:
    events = runs_of([3] * 9) + good_run("bad", 50, status="error") + good_run("cut", 60)[:-1]
    c = calibrate(measure(events), 0.1, agent="researcher", limits=["max_model_calls"])
    assert (c.runs, c.limits) == (9, {"max_model_calls": 3})


def test_unpriced_model_skips_the_dollar_limit() -> None:
    events = [
        replace(e, model="acme-llm") if isinstance(e, (ModelStart, ModelEnd)) else e
        for e in runs_of([3] * 9)
    ]
    (m, *_) = measure(events)
    assert m.max_cost_usd is None
    c = calibrate(measure(events), 0.5, agent="researcher")
    assert "max_cost_usd" not in c.limits and "max_cost_usd" in c.skipped
    assert "max_cost_usd not set" in policy_toml([c])


def test_recordings_without_content_skip_the_projected_limits(tmp_path: Path) -> None:
    """Hashed prompts would make the token and dollar projections far too small: not set."""
    from loopguard.recorder import FlightRecorder
    from loopguard.replay import read_events

    path = tmp_path / "hashed.jsonl"
    with FlightRecorder(path, record_content=False) as recorder:
        guard = Guard(sinks=[recorder])
        for event in runs_of([3, 4, 5, 6]):
            guard.process(event)
    measures = measure(read_events(path, on_error=print))
    assert all(m.hashed for m in measures)
    c = calibrate(measures, 0.9, agent="researcher")
    assert set(c.limits) == {"max_model_calls", "max_tool_calls", "max_seconds"}
    assert set(c.skipped) == {"max_tokens", "max_cost_usd"}
    assert "record_content=False" in policy_toml([c])
