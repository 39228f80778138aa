"""Hard limits from a user's own good runs, with a stated bound on false stops.

`measure` replays recorded runs through a guard that stops nothing and takes, for each run
that ended ok, the largest value each hard limit would have been checked against: model calls,
tool calls, the token projection `max_tokens` is checked against, the dollar projection
`max_cost_usd` is checked against, and the seconds `max_seconds` is checked against. `calibrate`
then sets each limit so that it stops a run only above the k-th smallest of those values.

Why that bounds false stops (conformal): if the n recorded good runs and a new good run are
exchangeable (drawn alike, in any order), each of the n+1 is equally likely to be the new one,
so the new run is stopped with probability E[N]/(n+1), where N counts the runs among all n+1
that a limit set this way would stop. With one limit N = n+1-k, the split-conformal bound. With
several, a union bound (each limit's share, summed) would charge every limit for its own top
runs even though the limits of a run rise and fall together (more calls, more tokens, more
seconds, more dollars); instead the count is taken jointly: a run counts if it ranks above k in
*any* limit. That count includes the new run, whose values are not known, so `calibrate` takes
the most it could be, over every value the new run could have, from the n recorded runs alone:
the runs ranked k or higher in some limit, plus one unless every limit has a run ranked exactly
k there and in no other limit (a new run above the k-th in one limit cannot then also lift a run
over k in that limit). It picks the lowest k (the tightest limits) whose worst case is at most
rate*(n+1). (Ranks count from below, tied values sharing the lowest.) Why that is enough: let
k* be the lowest k at which the count over all n+1 runs is at most rate*(n+1); k* does not
depend on which run is the new one, so by exchangeability the new run is counted at k* with
probability E[N(k*)]/(n+1) <= rate. The worst case is at least N, so the k chosen is at least
k*, and a run the limits at k stop is counted at k*. That holds however the limits correlate.
The worst case at k = n (each limit at the largest value) is never above m, so n >= m/rate - 1
runs always support the rate, and `calibrate` asks for no fewer and no more: whether it sets
limits depends only on n, m and the rate, never on the values, so the guarantee also holds for
the limits it does set. (Refusing whenever these particular values fall short would bias the
limits it sets: with limits that vary independently, runs where one run holds every largest
value would be accepted and too tight.) With fewer runs `calibrate` refuses rather than promise
what the data cannot support. What counting jointly buys is tighter limits for the same rate:
the lowest k whose worst case fits, where the union bound takes k = n+1 - floor((n+1)rate/m).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

from loopguard.detectors.budget import project_call
from loopguard.errors import LoopGuardError
from loopguard.events import Event, ModelEnd, ModelFailed, ModelStart, RunEnd, Token, ToolStart
from loopguard.policy import Policy, PolicySet
from loopguard.pricing import default_pricer
from loopguard.state import RunState

# A text the flight recorder replaced by its hash (record_content=False; loopguard.normalize).
_HASH = re.compile(r"sha256:[0-9a-f]{16}")

# What can be calibrated, by the policy key it sets.
LIMITS = ("max_model_calls", "max_tool_calls", "max_tokens", "max_cost_usd", "max_seconds")


class CalibrationError(LoopGuardError, ValueError):
    """The recordings cannot support the limits asked for (too few good runs, none at all)."""


@dataclass(slots=True)
class RunMeasure:
    """The largest value each hard limit was checked against in one recorded run (None: the
    run's cost could not be projected, a model without a price)."""

    run: str
    agent: str | None
    max_model_calls: int = 0
    max_tool_calls: int = 0
    max_tokens: int = 0
    max_cost_usd: float | None = 0.0
    max_seconds: float = 0.0
    status: str | None = None  # how the run ended; None when the recording was cut off
    hashed: bool = False
    """Recorded without content (record_content=False): prompts are hashes, so the prompt
    estimate the token and dollar checks make before each call cannot be taken."""


class _Meter:
    """A detector that never judges: at each start it records what RunLimits and the money
    check would compare with their limits at that moment (the same formulas, before the start
    is counted)."""

    name: ClassVar[str] = "calibrate"
    events: ClassVar[tuple[type[Event], ...]] = (
        ModelStart,
        ToolStart,
        Token,
        ModelEnd,
        ModelFailed,
    )

    def __init__(self) -> None:
        self.pricer = default_pricer()
        self.measures: dict[str, RunMeasure] = {}
        self._held: dict[str, dict[object, float]] = {}  # run -> call id -> projected USD

    def __call__(self, state: RunState, event: Event) -> None:
        m = self.measures.get(state.run)
        if m is None:
            m = self.measures[state.run] = RunMeasure(state.run, state.agent)
        kind = type(event)
        if kind in (ModelStart, ToolStart, Token):
            m.max_seconds = max(m.max_seconds, event.ts - state.started)
        if isinstance(event, ModelStart):
            self._model_start(state, event, m)
        elif kind is ToolStart:
            m.max_tool_calls = max(m.max_tool_calls, state.tool_calls + 1)
        elif kind is ModelEnd or kind is ModelFailed:
            held = self._held.get(state.run)
            if held:  # settled or released: no longer part of the projection
                held.pop(event.id if event.id in held else next(iter(held)))

    def _model_start(self, state: RunState, event: ModelStart, m: RunMeasure) -> None:
        policy = state.policy
        m.max_model_calls = max(m.max_model_calls, state.model_calls + 1)
        in_tokens, _, usd = project_call(self.pricer, policy, event)
        if not m.hashed and any(_HASH.fullmatch(x.content) for x in event.messages):
            m.hashed = True
        used = state.usage.input_tokens + state.usage.output_tokens
        m.max_tokens = max(m.max_tokens, used + in_tokens + (event.max_tokens or 0))
        held = self._held.setdefault(state.run, {})
        if usd is None:
            m.max_cost_usd = None
            usd = 0.0
        elif m.max_cost_usd is not None:
            run_total = state.cost_usd + sum(held.values()) + usd
            m.max_cost_usd = max(m.max_cost_usd, run_total)
        # A call without an id is settled by the first end without a known id, as the money
        # check does it (calls end in the order they started).
        held[event.id if event.id is not None else object()] = usd

    def ended(self, run: str, status: str | None) -> None:
        self._held.pop(run, None)
        if run in self.measures:
            self.measures[run].status = status


def measure(events: Iterable[Event], policy: Policy | PolicySet | None = None) -> list[RunMeasure]:
    """Each recorded run's measures, in first-seen order (runs that did not end ok included,
    with their `status`). The policy (each agent's, of a PolicySet) supplies prices and the
    output estimate of a call without max_tokens; default: the built-in policy."""
    import logging

    from loopguard.guard import Guard

    policies = (
        policy
        if isinstance(policy, PolicySet)
        else PolicySet(default=policy or Policy.model_validate({}))
    )
    # Nothing may stop a run while it is measured: no limits, shadow mode for the detectors.
    measuring = PolicySet(
        default=_unlimited(policies.default),
        agents={name: _unlimited(p) for name, p in policies.agents.items()},
    )
    meter = _Meter()
    # No eviction for idleness: a recorded run's gaps are not a live process's.
    guard = Guard(measuring, detectors=[meter], run_ttl=math.inf)
    log = logging.getLogger("loopguard")
    level = log.level
    log.setLevel(logging.CRITICAL)  # shadow verdicts of the detectors are not the point here
    seen: dict[str, None] = {}
    try:
        for event in events:
            seen.setdefault(event.run)
            guard.process(event)
            if type(event) is RunEnd:
                meter.ended(event.run, event.status)
    finally:
        log.setLevel(level)
    return [meter.measures.get(run) or RunMeasure(run, None) for run in seen]


def _unlimited(policy: Policy) -> Policy:
    # An infinite dollar cap keeps the money check in the run, never refusing: it is what
    # charges a call without usage its projection, so the spend measured is the spend the
    # calibrated cap will see.
    return policy.model_copy(
        update={"mode": "shadow", "budgets": []}
        | {name: None for name in LIMITS}
        | {"max_cost_usd": math.inf, "warn_cost_usd": None}
    )


@dataclass(slots=True)
class Calibration:
    """Limits for one agent (None: runs without an agent, which get the default policy)."""

    agent: str | None
    runs: int
    false_stop_rate: float
    """The requested bound on the whole policy's false stop rate."""
    bound: float
    """The false stop rate these limits guarantee not to exceed: the requested rate."""
    rank: int
    """k: each limit is the k-th smallest of the n runs' values."""
    limits: dict[str, int | float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """Limits not set, and why."""

    @property
    def supported(self) -> float:
        """The lowest false stop rate this many runs support over this many limits, m/(n+1)."""
        return float(_supported(len(self.limits), self.runs))

    @property
    def supported_text(self) -> str:
        """`supported` to three significant digits, rounded up: a rate that may be asked for."""
        return _up(_supported(len(self.limits), self.runs))

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "runs": self.runs,
            "false_stop_rate": self.false_stop_rate,
            "bound": round(self.bound, 6),
            "supported": round(self.supported, 6),
            "rank": self.rank,
            "limits": dict(self.limits),
            "skipped": dict(self.skipped),
        }


def runs_needed(false_stop_rate: float, limits: int = len(LIMITS)) -> int:
    """The fewest good runs that support `false_stop_rate` over `limits` limits:
    n >= limits/rate - 1."""
    rate = _rate(false_stop_rate)
    return max(1, math.ceil(limits / rate) - 1)


def calibrate(
    measures: Sequence[RunMeasure],
    false_stop_rate: float = 0.05,
    *,
    agent: str | None = None,
    limits: Sequence[str] = LIMITS,
) -> Calibration:
    """Limits for `agent` from the measures of its good runs (those that ended ok).

    Raises CalibrationError when the runs cannot support the rate over the limits asked for,
    naming the lowest rate they do support and how many runs the rate needs."""
    rate = _rate(false_stop_rate)
    good, chosen, skipped = _select(measures, agent, limits)
    n, m = len(good), len(chosen)
    supported = _supported(m, n)
    if rate < supported:
        raise CalibrationError(
            f"{n} good runs of {_who(agent)} cannot support a false stop rate of "
            f"{float(rate):g} over {m} limit{'s' if m > 1 else ''}: that needs at least "
            f"{runs_needed(float(rate), m)} runs (n >= limits/rate - 1); with {n} the lowest "
            f"supported rate is {_up(supported)}. Record more runs, ask for a higher rate, or "
            "set fewer limits"
        )
    values = {name: [getattr(r, name) for r in good] for name in chosen}
    k = _lowest_rank(_ranks(values), n, rate * (n + 1))
    out = {name: _limit(name, sorted(v)[k - 1]) for name, v in values.items()}
    return Calibration(agent, n, float(rate), float(rate), k, out, skipped)


def lowest_rate(
    measures: Sequence[RunMeasure], *, agent: str | None = None, limits: Sequence[str] = LIMITS
) -> float:
    """The lowest false stop rate `agent`'s good runs support over `limits`, m/(n+1), rounded
    up to a millionth so that `calibrate` takes it as it is."""
    good, chosen, _ = _select(measures, agent, limits)
    return math.ceil(_supported(len(chosen), len(good)) * 1_000_000) / 1_000_000


def _supported(limits: int, runs: int) -> Fraction:
    """The lowest rate `runs` good runs support over `limits` limits: m/(n+1)."""
    return Fraction(limits, runs + 1)


def _who(agent: str | None) -> str:
    return "runs without an agent" if agent is None else f"agent {agent!r}"


def _up(rate: Fraction) -> str:
    """A rate to three significant digits, rounded up (so that it may be asked for as shown)."""
    scale = 10 ** (2 - math.floor(math.log10(rate)))
    return f"{math.ceil(rate * scale) / scale:g}"


def _select(
    measures: Sequence[RunMeasure], agent: str | None, limits: Sequence[str]
) -> tuple[list[RunMeasure], list[str], dict[str, str]]:
    """The agent's good runs, the limits that can be set from them, and those that cannot
    (and why)."""
    unknown = [name for name in limits if name not in LIMITS]
    if unknown or not limits:
        raise CalibrationError(
            f"unknown limit {', '.join(unknown) or '(none given)'}; accepted: {', '.join(LIMITS)}"
        )
    good = [m for m in measures if m.agent == agent and m.status == "ok"]
    if not good:
        raise CalibrationError(
            f"no recorded run of {_who(agent)} ended ok; nothing to calibrate from"
        )
    skipped: dict[str, str] = {}
    chosen = list(dict.fromkeys(limits))
    if "max_cost_usd" in chosen and any(m.max_cost_usd is None for m in good):
        chosen.remove("max_cost_usd")
        skipped["max_cost_usd"] = "a model without a price (add it under prices)"
    if any(m.hashed for m in good):
        for name in ("max_tokens", "max_cost_usd"):
            if name in chosen:
                chosen.remove(name)
                skipped[name] = (
                    "recorded without content (record_content=False): the prompt estimate "
                    "this check makes before each call needs the prompt's text"
                )
    if not chosen:
        why = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
        raise CalibrationError(f"none of the limits asked for can be set from these runs ({why})")
    return good, chosen, skipped


def _ranks(values: dict[str, list[Any]]) -> list[tuple[int, ...]]:
    """Each run's rank in each limit, from below, ties sharing the lowest: 1 + how many runs
    have a smaller value."""
    columns = []
    for column in values.values():
        ordered = sorted(column)
        columns.append([bisect_left(ordered, v) + 1 for v in column])
    return list(zip(*columns, strict=True))


def _worst_count(ranks: Sequence[tuple[int, ...]], k: int) -> int:
    """The most runs, among the n recorded and a new one with any values, that limits at the
    k-th smallest values would stop (a run ranked above k in some limit, among n+1): the runs
    ranked k or higher in some limit, plus one unless every limit has a run ranked exactly k
    in it and in no other limit."""
    reached = 0
    own: set[int] = set()  # limits where a run ranked k is ranked k in that limit alone
    for run in ranks:
        top = max(run)
        if top >= k:
            reached += 1
        if top == k:
            at = [j for j, r in enumerate(run) if r == k]
            if len(at) == 1:
                own.add(at[0])
    return reached + (0 if len(own) == len(ranks[0]) else 1)


def _lowest_rank(ranks: Sequence[tuple[int, ...]], n: int, allowed: Fraction) -> int:
    """The lowest k in 1..n whose worst count is at most `allowed`, which k = n always meets
    here (its worst count is at most m <= allowed). The worst count never grows with k, so a
    binary search finds it."""
    low, high = 1, n
    while low < high:
        mid = (low + high) // 2
        if _worst_count(ranks, mid) <= allowed:
            high = mid
        else:
            low = mid + 1
    return low


def _rate(value: float) -> Fraction:
    # Exact arithmetic: (n+1)*rate/m lands on whole numbers (0.05 * 20) without float error.
    rate = Fraction(str(value))
    if not 0 < rate < 1:
        raise CalibrationError(f"false stop rate must be between 0 and 1, got {value}")
    return rate


def _limit(name: str, value: float) -> int | float:
    """The limit that lets a run with `value` through, as each check compares: counts and
    tokens stop above the limit; dollars above it (rounded up to a millionth); seconds at or
    above it (so the next tenth of a second above)."""
    if name == "max_seconds":
        limit = (math.floor(value * 10) + 1) / 10
        while limit <= value:  # float rounding of value * 10
            limit = round(limit + 0.1, 1)
        return limit
    if name == "max_cost_usd":
        limit = math.ceil(value * 1_000_000) / 1_000_000
        while limit < value:
            limit = round(limit + 1e-6, 6)
        return limit
    return int(value)


def agents(measures: Iterable[RunMeasure]) -> list[str | None]:
    """The agents of the runs that ended ok, in first-seen order."""
    return list(dict.fromkeys(m.agent for m in measures if m.status == "ok"))


def policy_toml(calibrations: Sequence[Calibration], sources: Sequence[str] = ()) -> str:
    """A policy file with each calibration's limits: `[agents.NAME]` tables, and top-level keys
    for runs without an agent. Loads as any policy file does (`PolicySet.load`)."""
    import json
    import textwrap

    head = "Hard limits calibrated by `loopguard calibrate` from recorded good runs"
    lines = [head + (f" ({', '.join(sources)})." if sources else ".")]
    for c in calibrations:
        who = _who(c.agent)
        lines.append(
            f"{who}: {c.runs} runs; a new good run is stopped by these limits with probability "
            f"at most {c.bound:.3g} (the lowest {c.runs} runs support: {c.supported_text}); "
            f"each limit is the {_ordinal(c.rank)} smallest of the {c.runs} runs' values."
        )
        lines += [f"{name} not set: {why}." for name, why in c.skipped.items()]
    top = next((c for c in calibrations if c.agent is None), None)
    if top is not None and len(calibrations) > 1:
        # An [agents.x] table inherits every top-level key it does not set itself.
        lines.append("The agents' tables inherit any top-level limit they do not set themselves.")
    lines = [f"# {part}" for line in lines for part in textwrap.wrap(line, 96)]
    # Top-level keys first: TOML puts every key after a [table] header into that table.
    ordered = sorted(calibrations, key=lambda c: c.agent is not None)
    for c in ordered:
        lines.append("")
        if c.agent is not None:
            lines.append(f"[agents.{json.dumps(c.agent)}]")
        lines += [f"{name} = {value!r}" for name, value in c.limits.items()]
    return "\n".join(lines) + "\n"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


__all__ = [
    "LIMITS",
    "Calibration",
    "CalibrationError",
    "RunMeasure",
    "agents",
    "calibrate",
    "lowest_rate",
    "measure",
    "policy_toml",
    "runs_needed",
]
