"""Per-run state kept by the guard. Bounded: detectors keep windows, not histories."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from loopguard.events import Usage

if TYPE_CHECKING:
    from loopguard.policy import Policy
    from loopguard.verdict import Verdict


class RunState:
    """What the guard knows of one guarded (root) run."""

    __slots__ = (
        "aborted",
        "agent",
        "attributes",
        "cost_usd",
        "depth",
        "detectors",
        "evicted",
        "last_call_cost",
        "last_seen",
        "lock",
        "meta",
        "model_calls",
        "name",
        "nudge",
        "nudged",
        "parent",
        "policy",
        "run",
        "shadow_verdicts",
        "slots",
        "started",
        "tool_calls",
        "tool_counts",
        "usage",
        "warnings",
    )

    def __init__(self, run: str, agent: str | None, policy: Policy, now: float) -> None:
        self.run = run
        self.agent = agent
        self.policy = policy
        self.started = now
        self.last_seen = now
        self.model_calls = 0  # model calls that went out (or were allowed to)
        self.tool_calls = 0
        self.tool_counts: dict[str, int] = {}
        self.usage = Usage()
        self.cost_usd = 0.0
        self.aborted: Verdict | None = None
        self.shadow_verdicts: list[Verdict] = []  # would-be aborts in shadow mode (one each)
        self.warnings: list[Verdict] = []  # the first few (Guard keeps at most 20)
        self.slots: dict[str, Any] = {}  # detector name -> its own bounded state
        self.lock = threading.RLock()
        self.attributes: dict[str, Any] = {}  # numbers detectors publish (tokens/min, ...)
        self.meta: dict[str, Any] = {}  # run labels (thread_id, tenant, ...) from events' meta
        self.last_call_cost: float | None = None  # cost of the latest finished model call
        self.name: str | None = None  # the root run's name, from run_start
        self.detectors: dict[Any, list[Any]] = {}  # event type -> its detectors (the guard's)
        self.nudge: Verdict | None = None  # a nudge asked for, until an adapter takes it
        self.nudged: set[str] = set()  # detectors that have nudged this run
        self.evicted = False  # dropped from the guard's table (a Tombstone keeps its counts)
        # A sub-agent's run: the run it is nested in (whose caps count its calls too), and how
        # deep (a top-level run is 0).
        self.parent: RunState | None = None
        self.depth = 0

    def slot(self, name: str, factory: Any) -> Any:
        """The state of detector `name`, created by `factory()` on first use."""
        found = self.slots.get(name)
        if found is None:
            found = self.slots[name] = factory()
        return found

    @property
    def elapsed(self) -> float:
        return self.last_seen - self.started

    def usage_snapshot(self) -> dict[str, Any]:
        return {
            "model_calls": self.model_calls,
            "tool_calls": self.tool_calls,
            **self.usage.to_dict(),
            "cost_usd": round(self.cost_usd, 6),
            "seconds": round(self.elapsed, 3),
        }


class Tombstone:
    """What the guard keeps of a run it evicted while the run may still be live: enough that
    its caps and its abort hold when its next event brings it back (detector windows are not
    kept; a few hundred bytes)."""

    __slots__ = (
        "aborted",
        "cost_usd",
        "depth",
        "meta",
        "model_calls",
        "name",
        "parent",
        "started",
        "tool_calls",
        "tool_counts",
        "usage",
    )

    def __init__(self, state: RunState) -> None:
        for name in Tombstone.__slots__:  # the run's own objects: nothing is copied
            setattr(self, name, getattr(state, name))

    def restore(self, state: RunState) -> None:
        for name in Tombstone.__slots__:
            setattr(state, name, getattr(self, name))
