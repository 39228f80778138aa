"""Detection benchmark: does loopguard stop runaway agents early, and leave healthy ones alone?

    python benchmarks/detection.py [--quick] [--real-only] [--data DIR]

For each scenario (benchmarks/_scenarios.py) it prints where loopguard's default policy
stopped the run, counted in model calls after the loop's onset ("+3"), and the dollars spent,
and beside them the same for the baselines (benchmarks/_baselines.py): a model-call limit as
LangChain's ModelCallLimitMiddleware does it, AgentExecutor's max_iterations=15, OpenHands'
and gemini-cli's published loop rules. A runaway passes when it is stopped within 3 model
calls after its loop's second repetition; a healthy run passes when it is not stopped.

Then the real runs (`--real-only`: only them; `--data DIR`: where the data sets are, default
../shared/data beside the repository): tau-bench's 200 airline runs (84 healthy) and Who&When's
29 Magentic-One runs (19 loops by the orchestrator's own, hidden, judgement), under the default
policy, under hard limits calibrated from the good runs (loopguard.calibrate, at the lowest false
stop rate the runs support), and under the baselines: loops and healthy runs stopped, at which
call, by which rule, at what cost. The main calibrated rows set model calls and wall time, two
ways: once from all the good runs ("calibrated (all N good runs)", each limit the largest of
their values, so it stops none of them), and for each run from the other good runs
("calibrated, leave-one-out": what a new good run should expect, its false stops beside the
stated bound). A second table calibrates limit sets (all five, each alone, calls and seconds)
at their own lowest rates; a third sets the five at the same rates counted jointly (as
calibrate does) and by a union bound.

Then it measures what the runaway detectors cost per event, on a 20-step and a 2,000-step run,
against the same guard with those detectors switched off, in the same process.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _baselines import BASELINES, Stop
from _realdata import RealRun
from _scenarios import Scenario, all_scenarios, long_run

from loopguard import Guard, Policy, PolicySet
from loopguard.calibrate import (
    LIMITS,
    Calibration,
    RunMeasure,
    calibrate,
    lowest_rate,
    measure,
    runs_needed,
)
from loopguard.detectors import RUNAWAY
from loopguard.events import Event, ModelEnd, ModelStart, Token, ToolEnd, ToolStart, Usage
from loopguard.pricing import default_pricer
from loopguard.replay import Replayer, RunResult, replay_events
from loopguard.tokens import CHARS_PER_TOKEN

RUNAWAY_DETECTORS = RUNAWAY
_PRICER = default_pricer()
_POLICY = Policy()


def loopguard_stop(scenario: Scenario, policy: Policy | None = None) -> Stop | None:
    """Where the guard (default policy) stopped the run, as a baseline would report it."""
    replayer = Replayer(Guard(policy or Policy()))
    for i, event in enumerate(scenario.events):
        replayer.feed(event)
        result = replayer.results[event.run]
        if result.action == "abort":
            # A start refused before it went out cost nothing; an end or a chunk was paid for.
            billed = type(event) in (ModelEnd, Token, ToolEnd)
            return Stop(i, billed, result.step)
    return None


def dollars(events: Sequence[Event], stop: Stop | None) -> float:
    """What the run cost up to the stop: finished calls, plus a stream cut mid-answer."""
    end = len(events) if stop is None else stop.index + (1 if stop.billed else 0)
    total, streamed = 0.0, 0
    for event in events[:end]:
        if type(event) is ModelStart:
            streamed = 0
        elif type(event) is Token:
            streamed += len(event.text)
        elif type(event) is ModelEnd:
            total += _PRICER(_POLICY, event.model, event.usage) or 0.0
            streamed = 0
    if streamed:  # the answer was cut: its prompt and the tokens streamed so far were billed
        cut = next(e for e in events[end:] if type(e) is ModelEnd)
        usage = Usage(cut.usage.input_tokens, math.ceil(streamed / CHARS_PER_TOKEN))
        total += _PRICER(_POLICY, cut.model, usage) or 0.0
    return total


def _cell(scenario: Scenario, stop: Stop | None) -> tuple[str, bool]:
    """The table cell for one method, and whether it meets the done-when criterion."""
    if scenario.kind == "healthy":
        return ("ok", True) if stop is None else (f"STOP@{stop.step}", False)
    if stop is None:
        return "missed", False
    assert scenario.onset is not None and scenario.deadline is not None
    return f"+{stop.step - scenario.onset}", stop.step <= scenario.deadline


def detection_table(scenarios: list[Scenario]) -> tuple[list[str], bool]:
    """The per-scenario table, a summary per method, and whether loopguard met the criteria."""
    methods = ["loopguard", *BASELINES]
    head = (
        f"{'scenario':24} {'kind':8} {'onset':>5} {'limit':>5} | "
        + " | ".join(f"{m:>11} {'$':>6}" for m in methods)
        + f" | {'no guard $':>10}"
    )
    lines = [head, "-" * len(head)]
    passed = {m: 0 for m in methods}
    in_time = {m: 0 for m in methods}
    false_stops = {m: 0 for m in methods}
    runaway_usd = {m: 0.0 for m in [*methods, "no guard"]}
    ok_all = True
    for sc in scenarios:
        stops = {"loopguard": loopguard_stop(sc)}
        stops.update({name: judge(sc.events) for name, judge in BASELINES.items()})
        cells = []
        for m in methods:
            text, ok = _cell(sc, stops[m])
            spent = dollars(sc.events, stops[m])
            passed[m] += ok
            if sc.kind == "runaway":
                in_time[m] += ok
                runaway_usd[m] += spent
            else:
                false_stops[m] += not ok
            if m == "loopguard":
                ok_all &= ok
                text = text if ok else text + "!"
            cells.append(f"{text:>11} {spent:6.3f}")
        if sc.kind == "runaway":
            runaway_usd["no guard"] += dollars(sc.events, None)
        onset = "-" if sc.onset is None else str(sc.onset)
        deadline = "-" if sc.deadline is None else f"+{sc.deadline - (sc.onset or 0)}"
        lines.append(
            f"{sc.name:24} {sc.kind:8} {onset:>5} {deadline:>5} | "
            + " | ".join(cells)
            + f" | {dollars(sc.events, None):10.3f}"
        )
    lines.append("-" * len(head))
    lines.append(
        f"{'passed (of ' + str(len(scenarios)) + ')':44} | "
        + " | ".join(f"{passed[m]:>11} {'':6}" for m in methods)
    )
    runaways = sum(1 for sc in scenarios if sc.kind == "runaway")
    lines += [
        "",
        f"{'method':14} | {f'runaways stopped in time (of {runaways})':>34} | "
        f"{'spent on them':>13} | "
        f"{f'healthy runs stopped (of {len(scenarios) - runaways})':>29}",
    ]
    for m in [*methods, "no guard"]:
        usd = f"${runaway_usd[m]:.2f}"
        lines.append(f"{m:14} | {in_time.get(m, 0):>34} | {usd:>13} | {false_stops.get(m, 0):>29}")
    return lines, ok_all


# --- real runs (../shared/data): the two public data sets -----------------------------------

# run -> (the call it was stopped at, or None; the rule that stopped it; dollars spent)
Cells = dict[str, tuple[int | None, str | None, float]]
# run -> (its result under calibrated limits, the calibration it was judged by)
Judged = dict[str, tuple[RunResult, Calibration]]

LEAVE_ONE_OUT = "calibrated, leave-one-out"
# The limit sets the fewer-limits table compares: all five, each alone, calls and seconds.
# The main calibrated rows: model calls and wall time, the two limits every agent has, which 10
# good runs support at 2/11 (all five only at 5/11).
MAIN_LIMITS = ("max_model_calls", "max_seconds")
LIMIT_SETS = (LIMITS, *((name,) for name in LIMITS), MAIN_LIMITS)


def guard_stop(events: Sequence[Event], policy: Policy | PolicySet | None = None) -> RunResult:
    """One run through a guard under `policy` (default: the built-in one): its result, with the
    detector and the limit that stopped it."""
    return replay_events(events, Guard(policy if policy is not None else Policy()))[0]


def _limits_only(agent: str | None, limits: dict[str, int | float]) -> PolicySet:
    """Calibrated limits and nothing else: every detector with an `enabled` switch is off, and
    a hard limit not calibrated is unset (not left at its default)."""
    off = {k: {"enabled": False} for k, v in Policy().model_dump().items() if _switch(v)}
    unset = dict.fromkeys(LIMITS)
    return PolicySet.from_dict({"agents": {agent: {**off, **unset, **limits}}})


def _switch(value: object) -> bool:
    return isinstance(value, dict) and "enabled" in value


def calibrated(
    runs: Sequence[RealRun],
    train_label: str,
    limits: Sequence[str],
    rate: float | None,
    *,
    leave_one_out: bool,
    measures: dict[str, RunMeasure] | None = None,
) -> Judged:
    """Each run under limits calibrated from the runs labelled `train_label`: from all of them,
    or (`leave_one_out`) from all of them but the run itself; `rate` None: at the lowest rate
    those runs support. `measures`: the runs' measures by run, when they are at hand
    (measuring replays every run)."""
    measures = measures or _measures(runs)
    train = [measures[r.run] for r in runs if r.label == train_label]
    out = {}
    for r in runs:
        agent = r.events[0].agent
        pool = [m for m in train if not (leave_one_out and m.run == r.run)]
        at = rate if rate is not None else lowest_rate(pool, agent=agent, limits=limits)
        c = calibrate(pool, at, agent=agent, limits=limits)
        out[r.run] = (guard_stop(r.events, _limits_only(agent, c.limits)), c)
    return out


def _measures(runs: Sequence[RealRun]) -> dict[str, RunMeasure]:
    return {m.run: m for m in measure(e for r in runs for e in r.events)}


def stopped(judged: Judged, runs: Sequence[RealRun], label: str) -> int:
    """How many runs labelled `label` the calibrated limits stopped."""
    return sum(judged[r.run][0].action == "abort" for r in runs if r.label == label)


def _bounds(judged: Judged) -> str:
    """The bound, or the range of bounds over the calibrations (leave-one-out)."""
    return _span([c.bound for _, c in judged.values()], lambda b: f"{b:.3g}")


def _span(values: Sequence[Any], show: Callable[[Any], str] = str) -> str:
    """The value, or the smallest and largest of them ("0.18-0.2"), each shown by `show`."""
    return "-".join(dict.fromkeys(show(v) for v in (min(values), max(values))))


def _sizes(judged: Judged) -> str:
    return "-".join(str(n) for n in sorted({c.runs for _, c in judged.values()}))


def _guard_cells(runs: Sequence[RealRun], results: dict[str, RunResult]) -> Cells:
    cells: Cells = {}
    for r in runs:
        res = results[r.run]
        stop = res.action == "abort"
        spent = res.cost_usd if stop else dollars(r.events, None)
        cells[r.run] = (res.step if stop else None, _rule(res), spent)
    return cells


def _baseline_cells(
    runs: Sequence[RealRun], judge: Callable[[Sequence[Event]], Stop | None]
) -> Cells:
    cells: Cells = {}
    for r in runs:
        stop = judge(r.events)
        cells[r.run] = (None if stop is None else stop.step, None, dollars(r.events, stop))
    return cells


def _stop_cell(stop_step: int | None, rule: str | None = None) -> str:
    return "-" if stop_step is None else f"@{stop_step}" + (f" {rule}" if rule else "")


def _rule(result: RunResult) -> str | None:
    if result.verdict is None:
        return result.detector
    limit = result.verdict.evidence.get("limit")
    return f"{result.detector}:{limit}" if limit else result.detector


def real_run_table(data: Path | None = None) -> list[str]:
    """Both data sets under the default policy, limits calibrated from the good runs (from all
    of them, and leaving each run out), and the baselines: who was stopped, at which call, by
    which rule, at what cost; then what calibrating fewer limits does."""
    from tau_bench import load as load_tau
    from who_and_when import load as load_ww

    tau = load_tau(data / "tau-bench" if data else None)
    ww = load_ww(data / "who-and-when" if data else None)
    return [
        *_real_set("tau-bench airline", tau, "failed", "healthy"),
        *_real_set("Who&When Magentic-One", ww, "loop", "no-loop", every_run=True),
    ]


def _real_set(
    title: str, runs: list[RealRun], bad: str, good: str, every_run: bool = False
) -> list[str]:
    """One data set's tables: the summary per method, the fewer-limits table, and per run
    which rule stopped it (every run, or the runs any method stopped)."""
    n_good = sum(r.label == good for r in runs)
    measures = _measures(runs)
    everyone = calibrated(runs, good, MAIN_LIMITS, None, leave_one_out=False, measures=measures)
    loo = calibrated(runs, good, MAIN_LIMITS, None, leave_one_out=True, measures=measures)
    methods = {
        "loopguard": _guard_cells(runs, {r.run: guard_stop(r.events) for r in runs}),
        f"calibrated (all {n_good} good runs)": _guard_cells(runs, _results(everyone)),
        LEAVE_ONE_OUT: _guard_cells(runs, _results(loo)),
        **{name: _baseline_cells(runs, judge) for name, judge in BASELINES.items()},
    }
    calls = [r.model_calls for r in runs]
    return [
        "",
        f"{title}: {len(runs)} runs, {n_good} {good}, {len(runs) - n_good} {bad}; model calls "
        f"{min(calls)}-{max(calls)}.",
        *_calibration_notes(runs, good, everyone, loo),
        "",
        *_summary_table(runs, bad, good, methods),
        "",
        *_limit_sets_table(runs, bad, good, measures),
        "",
        *_joint_table(runs, bad, good, measures),
        "",
        *_per_run_table(runs, methods, every_run),
    ]


def _results(judged: Judged) -> dict[str, RunResult]:
    return {run: result for run, (result, _) in judged.items()}


def _calibration_notes(runs: list[RealRun], good: str, everyone: Judged, loo: Judged) -> list[str]:
    """What the two calibrated rows are, how many good runs each used, its bound, and how many
    runs a small rate would need."""
    n_good = sum(r.label == good for r in runs)
    false_stops = stopped(loo, runs, good)
    in_sample = stopped(everyone, runs, good)
    m = len(MAIN_LIMITS)
    return [
        f"calibrated = {' and '.join(MAIN_LIMITS)} (calls and wall time, the limits every agent "
        f"has) and no detector, at the lowest false stop rate the {good} runs support over "
        f"{m} limits, m/(n+1); all five limits are in the second table",
        f"  all {n_good} good runs: calibrated once from all {n_good} {good} runs, bound "
        f"{_bounds(everyone)}, each limit the {_ranks_text(everyone)} of {n_good} values; "
        f"{in_sample} of these runs stopped (a run it was calibrated from is stopped only below "
        "the largest value);",
        f"    the leave-one-out row is what a new {good} run should expect.",
        f"  leave-one-out: each run under limits from the other {good} runs ({_sizes(loo)} runs), "
        f"bound {_bounds(loo)}; observed: {false_stops} of {n_good} {good} runs stopped "
        f"({false_stops / n_good:.2g}).",
        f"runs needed (n >= m/rate - 1): a false stop rate of 0.05 needs {runs_needed(0.05, 1)} "
        f"good runs over 1 limit, {runs_needed(0.05, 2)} over 2, {runs_needed(0.05)} over 5; "
        f"0.1 needs {runs_needed(0.1, 1)}, {runs_needed(0.1, 2)}, {runs_needed(0.1)}. The "
        "default policy (loopguard) needs none.",
    ]


def _ranks_text(judged: Judged) -> str:
    """Which of the sorted values the limits were set at (k-th smallest), over the runs."""
    from loopguard.calibrate import _ordinal

    return _span([c.rank for _, c in judged.values()], _ordinal) + " smallest"


def _summary_table(
    runs: list[RealRun], bad: str, good: str, methods: dict[str, Cells]
) -> list[str]:
    """Per method: runs of each label stopped, the median call of the loops' stops, the dollars
    spent on each label and what stopping saved (or lost)."""
    width = max(map(len, methods))
    full = {r.run: dollars(r.events, None) for r in runs}
    n_bad = sum(r.label == bad for r in runs)
    n_good = len(runs) - n_bad
    full_bad = sum(full[r.run] for r in runs if r.label == bad)
    full_good = sum(full[r.run] for r in runs if r.label == good)
    head = (
        f"{'method':{width}} | {f'{bad} stopped':>14} | {'median call':>11} | "
        f"{f'{good} stopped':>15} | {f'$ on {bad} runs':>16} | {'saved':>7} | "
        f"{f'$ on {good} runs':>16} | {'lost':>6}"
    )
    lines = [head, "-" * len(head)]
    for name, cells in methods.items():
        bad_stops = [cells[r.run][0] for r in runs if r.label == bad]
        stops = [s for s in bad_stops if s is not None]
        good_stops = sum(cells[r.run][0] is not None for r in runs if r.label == good)
        spent_bad = sum(cells[r.run][2] for r in runs if r.label == bad)
        spent_good = sum(cells[r.run][2] for r in runs if r.label == good)
        median = f"{statistics.median(stops):g}" if stops else "-"
        lines.append(
            f"{name:{width}} | {f'{len(stops)} of {n_bad}':>14} | {median:>11} | "
            f"{f'{good_stops} of {n_good}':>15} | {f'${spent_bad:.2f}':>16} | "
            f"{f'${full_bad - spent_bad:.2f}':>7} | {f'${spent_good:.2f}':>16} | "
            f"{f'${full_good - spent_good:.2f}':>6}"
        )
    lines.append(
        f"{'no guard':{width}} | {'':>14} | {'':>11} | {'':>15} | "
        f"{f'${full_bad:.2f}':>16} | {'':>7} | {f'${full_good:.2f}':>16} |"
    )
    return lines


def _limit_sets_table(
    runs: list[RealRun], bad: str, good: str, measures: dict[str, RunMeasure]
) -> list[str]:
    """Each set of calibrated limits (fewer limits, a lower rate from the same runs): what it
    stops, calibrated from all the good runs and leaving each run out."""
    n_good = sum(r.label == good for r in runs)
    n_bad = len(runs) - n_good
    head = (
        f"{'limits calibrated':28} | {f'bound, k (all {n_good})':>18} | {f'{bad} stopped':>14} | "
        f"{f'{good} stopped':>15} | {'bound, k (left out)':>22} | {f'{bad} stopped':>14} | "
        f"{f'{good} stopped':>15}"
    )
    lines = [
        "Limit sets (each at the lowest rate the good runs support over its m limits, m/(n+1); "
        "k: each limit the k-th smallest value):",
        head,
        "-" * len(head),
    ]
    for names in LIMIT_SETS:
        m = len(names)
        label = f"all {m}" if names == LIMITS else ", ".join(names)
        cells = []
        for leave_one_out in (False, True):
            judged = calibrated(
                runs, good, names, None, leave_one_out=leave_one_out, measures=measures
            )
            cells += [
                f"{_bounds(judged)}, {_span([c.rank for _, c in judged.values()])}",
                f"{stopped(judged, runs, bad)} of {n_bad}",
                f"{stopped(judged, runs, good)} of {n_good}",
            ]
        lines.append(
            f"{label:28} | {cells[0]:>18} | {cells[1]:>14} | {cells[2]:>15} | "
            f"{cells[3]:>22} | {cells[4]:>14} | {cells[5]:>15}"
        )
    return lines


def _joint_table(
    runs: list[RealRun], bad: str, good: str, measures: dict[str, RunMeasure]
) -> list[str]:
    """The five limits from all the good runs at the same rates, counted jointly (what
    calibrate does) and by a union bound (k = n+1 - floor((n+1) rate / m)): where each sets
    them and what each stops."""
    from loopguard.calibrate import _limit

    pool = [measures[r.run] for r in runs if r.label == good]
    n, m, agent = len(pool), len(LIMITS), runs[0].events[0].agent
    n_bad = len(runs) - n
    head = (
        f"{'rate':>6} | {'joint k':>7} | {f'{bad} stopped':>14} | {f'{good} stopped':>15} | "
        f"{'union k':>7} | {f'{bad} stopped':>14} | {f'{good} stopped':>15}"
    )
    lines = [
        f"The {m} limits from all {n} {good} runs at the same rate, counted jointly (calibrate) "
        "and by a union bound:",
        head,
        "-" * len(head),
    ]
    for rate in (0.1, 0.2, 0.5):
        if rate < m / (n + 1):
            continue
        joint = calibrate(pool, rate, agent=agent, limits=LIMITS)
        k = n + 1 - math.floor((n + 1) * rate / m)
        union = {
            name: _limit(name, sorted(getattr(x, name) for x in pool)[k - 1]) for name in LIMITS
        }
        cells = []
        for limits in (joint.limits, union):
            policy = _limits_only(agent, limits)
            results = [(r.label, guard_stop(r.events, policy).action == "abort") for r in runs]
            cells += [
                f"{sum(s for label, s in results if label == bad)} of {n_bad}",
                f"{sum(s for label, s in results if label == good)} of {n}",
            ]
        lines.append(
            f"{rate:>6g} | {joint.rank:>7} | {cells[0]:>14} | {cells[1]:>15} | {k:>7} | "
            f"{cells[2]:>14} | {cells[3]:>15}"
        )
    return lines


def _per_run_table(runs: list[RealRun], methods: dict[str, Cells], every_run: bool) -> list[str]:
    """Per run, the call each method stopped it at and the rule that did."""
    shown = runs
    if not every_run:
        shown = [r for r in runs if any(c[r.run][0] is not None for c in methods.values())]
    rows = [[_stop_cell(*cells[r.run][:2]) for cells in methods.values()] for r in shown]
    widths = [max([len(name), *(len(row[i]) for row in rows)]) for i, name in enumerate(methods)]
    lines = [
        f"Per run ({'every run' if every_run else 'runs any method stopped'}; "
        "@call and the rule that stopped it):",
        f"{'run':18} {'label':8} {'calls':>5} "
        + " ".join(f"{name:>{w}}" for name, w in zip(methods, widths, strict=True)),
    ]
    for r, row in zip(shown, rows, strict=True):
        lines.append(
            f"{r.name:18} {r.label:8} {r.model_calls:>5} "
            + " ".join(f"{cell:>{w}}" for cell, w in zip(row, widths, strict=True))
        )
    return lines


def _forget_texts() -> None:
    """Empty the normalization caches, so a pass over a run it has seen costs what a new run
    costs (otherwise every text of a short run is a cache hit on the second pass)."""
    from loopguard import normalize

    for cached in (
        normalize.normalize,
        normalize.normalize_light,
        normalize.identifiers,
        normalize.mask_volatile,
        normalize.digest,
    ):
        cached.cache_clear()


def _pass(guard: Guard, events: Sequence[Event], times: int) -> float:
    """Seconds per event of `times` passes of one whole run through `guard` (the run ends with
    run_end, which frees its state, so each pass starts a fresh run)."""
    started = time.perf_counter()
    for _ in range(times):
        _forget_texts()
        for event in events:
            guard.process(event)
    return (time.perf_counter() - started) / (times * len(events))


def cost_table(quick: bool) -> list[str]:
    """Guard time per event with and without the runaway detectors, for a 20-step and a
    2,000-step run. The four configurations are timed in turns, round after round, and each
    keeps its best round, so all of them see the same machine."""
    unlimited = dict(max_model_calls=None, max_tool_calls=None)
    with_detectors = Policy(**unlimited)
    without = Policy(**unlimited, **{name: {"enabled": False} for name in RUNAWAY_DETECTORS})
    runs = {steps: long_run(steps) for steps in (20, 2000)}
    passes = {20: 50, 2000: 1}  # about the same number of events per round
    guards = {
        (steps, on): Guard(with_detectors if on else without)
        for steps in runs
        for on in (False, True)
    }
    for (steps, _), guard in guards.items():
        _pass(guard, runs[steps], 1)  # warm up: detectors built, code paths taken
    # The recorded runs themselves (a 2,000-step run holds millions of message references)
    # are not the guard's memory: keep the collector from re-scanning them on every pass.
    gc.collect()
    gc.freeze()
    best = {key: math.inf for key in guards}
    for _ in range(3 if quick else 12):
        for key, guard in guards.items():
            best[key] = min(best[key], _pass(guard, runs[key[0]], passes[key[0]]))
    gc.unfreeze()
    lines = [
        f"{'run':>12} {'events':>7} | {'guard, detectors off':>21} | {'guard, default':>15} "
        f"| {'detectors per event':>19} | {'per model call':>14}"
    ]
    for steps, events in runs.items():
        calls = sum(1 for e in events if type(e) is ModelStart)
        base, full = best[(steps, False)], best[(steps, True)]
        extra = full - base
        lines.append(
            f"{steps:>6} steps {len(events):>7} | {base * 1e6:>18.1f} us | "
            f"{full * 1e6:>12.1f} us | {extra * 1e6:>16.1f} us | "
            f"{extra * len(events) / calls * 1e6:>11.1f} us"
        )
    return lines


def per_detector_table(steps: int = 2000, span: int = 100, passes: int = 5) -> list[str]:
    """Each detector's time per event in the first and in the last `span` steps of one long run,
    calling the detectors directly; the best of `passes` passes over the whole run, so early
    and late steps are measured alike."""
    from loopguard.detectors import build_detectors

    policy = Policy(max_model_calls=None, max_tool_calls=None)
    detectors = [d for d in build_detectors(policy) if d.name in RUNAWAY_DETECTORS]
    events = long_run(steps)
    starts = [i for i, e in enumerate(events) if type(e) is ModelStart]
    first = range(starts[0], starts[span])
    last = range(starts[-span], len(events))
    best = {d.name: [math.inf, math.inf] for d in detectors}
    # A guard without these detectors keeps the run's state (usage, model calls, cost) as it
    # would; the detectors are called on that state, before a start counts and after the rest.
    accounting = Policy(
        max_model_calls=None,
        max_tool_calls=None,
        **{name: {"enabled": False} for name in RUNAWAY_DETECTORS},
    )
    gc.collect()
    gc.freeze()
    for _ in range(passes):
        _forget_texts()
        guard = Guard(accounting)
        totals = {d.name: [0.0, 0.0] for d in detectors}
        for i, event in enumerate(events[:-1]):  # not run_end: it frees the state
            window = 0 if i in first else 1 if i in last else None
            pre = type(event) in (ModelStart, ToolStart)
            if not pre:
                guard.process(event)
            state = guard.get_run(event.run)
            for detector in detectors:
                if state is not None and type(event) in detector.events:
                    started = time.perf_counter()
                    detector(state, event)
                    if window is not None:
                        totals[detector.name][window] += time.perf_counter() - started
            if pre:
                guard.process(event)
        for name, (a, b) in totals.items():
            best[name] = [min(best[name][0], a), min(best[name][1], b)]
    gc.unfreeze()
    lines = [
        f"{'detector':12} | {f'steps 1-{span}':>14} | "
        f"{f'steps {steps - span + 1}-{steps}':>16} |  (us per event)"
    ]
    for name, (a, b) in best.items():
        lines.append(f"{name:12} | {a / len(first) * 1e6:>14.2f} | {b / len(last) * 1e6:>16.2f} |")
    a = sum(t[0] for t in best.values()) / len(first)
    b = sum(t[1] for t in best.values()) / len(last)
    lines.append(f"{'all':12} | {a * 1e6:>14.2f} | {b * 1e6:>16.2f} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer timing repeats")
    parser.add_argument(
        "--data",
        type=Path,
        help="folder of the public data sets (default: ../shared/data beside the repository)",
    )
    parser.add_argument("--real-only", action="store_true", help="only the real-run table")
    args = parser.parse_args(argv)
    if args.real_only:
        logging.disable(logging.CRITICAL)
        print("\n".join(real_run_table(args.data)))
        return 0
    logging.disable(logging.CRITICAL)  # verdicts are logged; the table says it all
    scenarios = all_scenarios()
    runaway = sum(1 for s in scenarios if s.kind == "runaway")
    print(
        f"Detection: {runaway} runaway and {len(scenarios) - runaway} healthy scenarios, "
        f"model {scenarios[0].events[1].model}."
    )  # type: ignore[attr-defined]
    print(
        "Cells: runaway = model calls after the loop's onset at which the run was stopped "
        "(limit: the latest that\nmeets 'within 3 calls after the second repetition'); healthy "
        "= ok, or STOP@call (a false stop).\n$ = dollars spent until the stop.\n"
    )
    table, ok = detection_table(scenarios)
    print("\n".join(table))
    print(
        "\nReal runs: the two public data sets (../shared/data; converted by "
        "benchmarks/tau_bench.py and\nwho_and_when.py, tokens and times estimated from the "
        "text). Loops are Who&When's orchestrator's\nown judgement, hidden from the guard; "
        "tau-bench's failed runs are unlabelled (a failure is not a loop)."
    )
    print("\n".join(real_run_table(args.data)))
    print(
        "\nDetector cost as runs grow (best of several passes; the baseline is the same guard "
        "with the runaway detectors off):\n"
    )
    print("\n".join(cost_table(args.quick)))
    print(
        "\n(The short run is replayed 50 times a round, so its events stay in the CPU caches;"
        " the\nlong run's 8,000 events, with prompts of up to 4,000 messages, do not. The table"
        " below\ncompares early and late steps of one run, like for like.)"
    )
    print("\nPer detector, early and late in one 2,000-step run (best of 5 passes):\n")
    print("\n".join(per_detector_table(passes=2 if args.quick else 5)))
    print(
        "\nloopguard meets the done-when criteria."
        if ok
        else "\nloopguard FAILS the done-when criteria (cells marked !)."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
