"""The guard engine: per-run state, detectors, verdicts. Knows nothing of LangChain."""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, ClassVar, Protocol

from loopguard import _safe
from loopguard.detectors import Context, Detector, Pricer, build_detectors
from loopguard.events import (
    Event,
    ModelEnd,
    ModelFailed,
    ModelStart,
    RunEnd,
    RunStart,
    Token,
    ToolEnd,
    ToolFailed,
    ToolStart,
    Usage,
)
from loopguard.policy import Policy, PolicySet
from loopguard.pricing import default_pricer
from loopguard.state import RunState, Tombstone
from loopguard.verdict import Action, LoopGuardAbort, Verdict, abort

logger = logging.getLogger("loopguard")

# Events that would start something paid; an aborted run refuses them all (sticky abort).
_GATED = frozenset((ModelStart, ToolStart, Token))
# Events between model calls: a verdict on them stops the run before the *next* model call.
_BETWEEN_CALLS = (ModelStart, ToolStart, ToolEnd, ToolFailed)
_PRE_CHECKED = frozenset((ModelStart, ToolStart))
_MAX_WARNINGS_KEPT = 20
_MAX_ENDED_ABORTED = 4096
# What a sub-agent's run also counts in the runs that enclose it (see _nested), and the
# detectors that hold an enclosing run's caps (its own loop detectors judge only its own calls).
_ROLLED_UP = frozenset((RunStart, ModelStart, ToolStart, Token, ModelEnd, ModelFailed))
_CAPS = frozenset(("limits", "budget"))
# The most streamed text an adapter may gather into one Token event (see Guard.token_piece):
# an abort mid-stream comes at most this many characters late (~18 tokens).
PIECE_CHARS = 64
# Every guard of the process, so that a sub-agent guarded by another Guard finds its parent run.
_GUARDS: weakref.WeakSet[Guard] = weakref.WeakSet()
_GUARDS_LOCK = threading.Lock()


class Sink(Protocol):
    """Observes events and verdicts (telemetry, flight recorder). Never decides.

    A sink gets every streamed chunk, unless it sets `token_pieces = True` (see
    `Guard.token_piece`)."""

    def on_event(self, state: RunState, event: Event) -> None: ...

    def on_verdict(self, state: RunState, event: Event, verdict: Verdict) -> None: ...

    def on_run_end(self, state: RunState, event: RunEnd) -> None: ...


def _takes_pieces(part: object) -> bool:
    """Whether a detector or sink declares `token_pieces = True`: it is as well served by a
    call's streamed text in pieces of several chunks as chunk by chunk."""
    return getattr(part, "token_pieces", False) is True


class Guard:
    """Feeds events to the detectors of each run's policy and applies their verdicts.

    `detectors` adds your own detectors (see `loopguard.detectors.base.Detector`) to every
    policy's. Thread-safe: runs are independent (one lock each), and the run table has its own lock.
    Memory is bounded: a run's state is freed at `RunEnd`, and runs that never report an end
    are evicted after `run_ttl` seconds without events or, when more than `max_runs` are live,
    least recently seen first. An evicted run leaves a tombstone (its counts, spend and abort;
    at most `max_runs` are kept), so a run that was still live keeps its caps.
    """

    def __init__(
        self,
        policy: Policy | PolicySet | str | os.PathLike[str] | None = None,
        *,
        sinks: Iterable[Sink] = (),
        detectors: Iterable[Detector[Any]] = (),
        pricer: Pricer | None = None,
        max_runs: int = 10_000,
        run_ttl: float = 3600.0,
    ) -> None:
        if policy is None or isinstance(policy, (str, os.PathLike)):
            policy = PolicySet.load(policy)
        self.policies: PolicySet = (
            policy if isinstance(policy, PolicySet) else PolicySet(default=policy)
        )
        self.sinks: list[Sink] = list(sinks)
        # Yours run after the policy's detectors, before the money check.
        self.extra_detectors: list[Detector[Any]] = list(detectors)
        # By default each call is priced from the run policy's price table. The one pricer
        # charges finished calls here and projects calls before they go out (the money check).
        self._pricer: Pricer = pricer if pricer is not None else default_pricer()
        self._context = Context(pricer=self._pricer)
        # What each event counts for, before or after its detectors (see _judge).
        self._accounts: dict[type[Event], Callable[[RunState, Any], None]] = {
            RunStart: _name_run,
            ModelStart: _count_model_call,
            ModelEnd: self._charge_end,
            ModelFailed: self._charge_failed,
            ToolStart: _count_tool_call,
        }
        self.max_runs = max_runs
        self.run_ttl = run_ttl
        self._runs: OrderedDict[str, RunState] = OrderedDict()
        # Runs that ended aborted, most recent last: a few hundred bytes each, bounded.
        self._ended_aborted: OrderedDict[str, Verdict] = OrderedDict()
        # Runs evicted while they may still be live, oldest first: at most max_runs.
        self._tombstones: OrderedDict[str, Tombstone] = OrderedDict()
        self._lock = threading.Lock()
        self._dispatch: dict[int, tuple[Policy, dict[type[Event], list[Detector[Any]]]]] = {}
        self._failed: set[str] = set()
        self._next_sweep = float("-inf")  # when idle runs are next looked for (event time)
        self.internal_errors = 0
        with _GUARDS_LOCK:
            _GUARDS.add(self)

    # --- public API -----------------------------------------------------------------------

    def process(self, event: Event) -> Verdict | None:
        """Evaluate one event. Returns the strongest warning or shadow verdict, if any.

        Raises `LoopGuardAbort` when the run must stop (enforce mode), and on every later start
        event of an aborted run. Any other failure inside the guard is logged and swallowed.
        """
        kind = type(event)
        if self._ended_aborted and self._refuse_ended(event, kind):
            return None
        state = self._runs.get(event.run)
        if state is not None:  # most events are of a live run: found inline
            if event.ts > state.last_seen:
                state.last_seen = event.ts
        else:
            try:
                state = self._new_state(event)
            except Exception:  # noqa: BLE001 - fail open on the guard's own bugs
                self._internal_error("run table", None)
                return None
        with state.lock:
            if state.evicted:  # evicted between the lookup and the lock (rare): again
                again = True
            else:
                again = ended_ok = False
                if state.aborted is not None:
                    event, ended_ok = self._refuse(state.aborted, event, kind)
                verdict = self._judge(state, event, kind)
        if again:
            return self.process(event)
        if kind is RunEnd:
            assert isinstance(event, RunEnd)  # kind is its type (checked once per run)
            self._end(state, event, ended_ok)
        if verdict is not None and verdict.action is Action.ABORT and verdict.enforced:
            raise LoopGuardAbort(verdict)
        return verdict

    def end_run(self, run: str, status: str = "ok", *, ts: float | None = None) -> None:
        """Report that `run` ended (frees its state)."""
        state = self._runs.get(run)
        if state is not None:
            self.process(
                RunEnd(
                    run=run, agent=state.agent, status=status, ts=time.time() if ts is None else ts
                )
            )

    def token_piece(self, run: str) -> int:
        """How many characters of a model call's streamed text an adapter may gather into one
        `Token` event, asked as the call starts: `PIECE_CHARS` when the run's Token detectors
        and every sink declare `token_pieces = True`, else 0 (each chunk as it comes).

        An adapter that gathers sends the call's first chunk alone (time to first chunk, and an
        aborted run refused at once), then a piece whenever a chunk ends a line or the piece
        reaches the size; text after the last piece reaches the guard in the call's end. Line
        ends are where the stream detector judges, so its aborts come at the same chunk; the
        rest (max_output_tokens, a long line, max_seconds, an abort from another thread) come
        at most `PIECE_CHARS` characters late. Streaming costs one `process` per piece."""
        state = self._runs.get(run)
        if state is None or state.aborted is not None:
            return 0
        if all(_takes_pieces(d) for d in state.detectors.get(Token, ())) and all(
            _takes_pieces(s) for s in self.sinks
        ):
            return PIECE_CHARS
        return 0

    def get_run(self, run: str) -> RunState | None:
        return self._runs.get(run)

    @property
    def active_runs(self) -> int:
        return len(self._runs)

    def policy_for(self, agent: str | None) -> Policy:
        return self.policies.for_agent(agent)

    def take_nudge(self, run: str) -> Verdict | None:
        """The nudge a detector asked for since the last time, if that detector has not
        nudged this run before (an adapter that can tell the model calls this before each
        model call; a nudge is given once per detector and run)."""
        state = self._runs.get(run)
        if state is None or state.nudge is None:
            return None
        with state.lock:
            verdict, state.nudge = state.nudge, None
            if verdict is None or verdict.detector in state.nudged:
                return None
            state.nudged.add(verdict.detector)
            return verdict

    def resume(self, run: str, *, limits: Mapping[str, Any] | None = None) -> Verdict | None:
        """Lift a live run's abort: a person looked at the verdict and lets the run go on
        (`LoopGuardMiddleware(exit_behavior="interrupt")` calls this on resume).

        `limits` are policy overrides for this run only, in the policy file's form (e.g.
        `{"max_cost_usd": 1.0}`, `{"similarity": {"enabled": False}}`); a bad key raises
        `ConfigError`. The run keeps its counts, spend and detector state, so the next event
        is judged against the new limits. Returns the verdict lifted, or None when the run is
        not live or was not stopped.

        A sub-agent stopped by an enclosing run's cap is resumed with that run: the `limits`
        are that run's (the cap was its), and its abort is lifted too.
        """
        state = self._runs.get(run)
        if state is None:
            return None
        owner = enclosing_owner(state)
        if owner is not None:
            self._lift(owner, limits)  # its lock, then the sub-agent's: never both at once
            limits = None
        return self._lift(state, limits)

    def _lift(self, state: RunState, limits: Mapping[str, Any] | None) -> Verdict | None:
        run = state.run
        with state.lock:
            if limits:
                policy = state.policy.merged(limits)  # raises before anything changes
                state.policy, state.detectors = policy, self._build_table(policy)
            lifted, state.aborted = state.aborted, None
        if lifted is not None:
            logger.warning(
                "loopguard: run %s (agent %s) resumed after [%s]%s",
                _safe.name(run),
                _safe.name(state.agent),
                lifted.detector,
                " with new limits" if limits else "",
            )
        return lifted

    # --- the steps of process(): refuse, judge, end ---------------------------------------

    def _refuse_ended(self, event: Event, kind: type[Event]) -> bool:
        """True for an event of a run that ended aborted (ignored); raises for its starts."""
        stopped = self._ended_aborted.get(event.run)
        if stopped is None:
            return False
        # A run that ended aborted stays refused (a caller that caught the abort and went
        # on), and its late events do not bring its state back.
        if kind in _GATED or (isinstance(event, RunEnd) and event.status == "ok"):
            raise LoopGuardAbort(stopped)
        return True

    def _refuse(self, aborted: Verdict, event: Event, kind: type[Event]) -> tuple[Event, bool]:
        """A run stopped by `aborted` (sticky abort): its starts raise again; its end is
        recorded as aborted. Returns the event to judge and whether the run claimed to end "ok"."""
        if kind in _GATED:
            raise LoopGuardAbort(aborted)
        if isinstance(event, RunEnd) and event.status != "aborted":
            # Sinks and recordings see how the run really ended.
            return replace(event, status="aborted"), event.status == "ok"
        return event, False

    def _judge(self, state: RunState, event: Event, kind: type[Event]) -> Verdict | None:
        """Count the event and ask its detectors (under the run's lock)."""
        # Start events are judged before they count (an abort means the call never went
        # out); everything else counts first, so detectors see the usage it reports.
        if event.meta:  # run labels (thread_id, tenant, ...), for budgets and spans
            state.meta.update(event.meta)
        account = self._accounts.get(kind)  # None: the event counts for nothing
        if account is not None and kind not in _PRE_CHECKED:
            account(state, event)
            account = None  # counted
        detectors = state.detectors.get(kind)
        verdict = self._evaluate(state, event, detectors) if detectors else None
        if state.parent is not None and kind in _ROLLED_UP:
            verdict = self._nested(state, event, kind, verdict)
        if account is not None and (
            verdict is None or verdict.action < Action.ABORT or not verdict.enforced
        ):
            account(state, event)
        if self.sinks:
            self._notify(state, event, verdict)
        return verdict

    def _end(self, state: RunState, event: RunEnd, ended_ok: bool) -> None:
        self._finish(state, event)
        if ended_ok and state.aborted is not None:
            # Something between the abort and the caller (a retry wrapper that returns an
            # error message, a tool node that handles errors) let the run finish as if
            # nothing happened. It did not: the caller still gets the abort.
            raise LoopGuardAbort(state.aborted)

    # --- internals ------------------------------------------------------------------------

    def _new_state(self, event: Event) -> RunState:
        """The state of a run not in the table (made under the lock, unless a thread was first;
        brought back from its tombstone if it was evicted)."""
        runs = self._runs
        evicted: list[RunState] = []
        with self._lock:
            state = runs.get(event.run)
            if state is None:
                evicted = self._evict(event.ts)
                policy = self.policies.for_agent(event.agent)
                state = runs[event.run] = RunState(event.run, event.agent, policy, event.ts)
                tomb = self._tombstones.pop(event.run, None)
                if tomb is not None:
                    tomb.restore(state)
                elif type(event) is RunStart and event.parent is not None:
                    _link(state, event.parent, self)
                state.detectors = self._table(policy)
        # Outside the guard-wide lock: an evicted run's end may release budget in a ledger.
        for old in evicted:
            self._end_evicted(old)
        return state

    def _evict(self, now: float) -> list[RunState]:
        """Take runs out of the table (under the guard-wide lock), leaving a tombstone each:
        runs idle for run_ttl, then, over max_runs, the least recently seen. Their ends are
        for the caller to send, outside the lock."""
        runs = self._runs
        victims: list[RunState] = []
        # Idle runs are looked for a few times per run_ttl, not at every new run: a run is
        # evicted at most a quarter of run_ttl late, and a new run costs no scan.
        if now >= self._next_sweep:
            self._next_sweep = now + self.run_ttl / 4
            victims = [s for s in runs.values() if now - s.last_seen > self.run_ttl]
            self._bury(victims, "evicted after run_ttl without events")
        over = len(runs) - self.max_runs + 1
        if over > 0:
            # A batch at a time, so that a full table is not scanned at every new run.
            batch = heapq.nsmallest(max(over, self.max_runs // 64), runs.values(), key=_last_seen)
            self._bury(batch, f"evicted: more than max_runs={self.max_runs} live runs")
            victims += batch
        return victims

    def _bury(self, victims: list[RunState], why: str) -> None:
        runs, tombs = self._runs, self._tombstones
        for state in victims:
            # Under the run's own lock, so that no event is counted after its tombstone;
            # a run whose lock is held is busy, not idle, and stays.
            if not state.lock.acquire(blocking=False):
                continue
            try:
                state.evicted = True
                del runs[state.run]
                tombs[state.run] = Tombstone(state)
            finally:
                state.lock.release()
            logger.debug("loopguard: run %s %s", _safe.name(state.run), why)
        while len(tombs) > self.max_runs:
            tombs.popitem(last=False)

    def _end_evicted(self, state: RunState) -> None:
        if not state.evicted:
            return  # busy when it was to be evicted: still in the table
        end = RunEnd(run=state.run, agent=state.agent, status="error", ts=state.last_seen)
        # As for any run end: detectors that hold something outside the run (budget
        # reservations) let it go, and sinks see the end as an event, then as the run's end.
        with state.lock:
            for detector in state.detectors.get(RunEnd, ()):
                try:
                    detector(state, end)
                except Exception:  # noqa: BLE001
                    self._internal_error(f"detector {detector.name}", state)
            self._notify(state, end, None)
        for sink in self.sinks:
            self._call_sink(sink.on_run_end, state, end)

    def _table(self, policy: Policy) -> dict[type[Event], list[Detector[Any]]]:
        """The policy's detectors by the event type they listen to (built once per policy)."""
        entry = self._dispatch.get(id(policy))
        if entry is None or entry[0] is not policy:
            entry = self._dispatch[id(policy)] = (policy, self._build_table(policy))
        return entry[1]

    def _build_table(self, policy: Policy) -> dict[type[Event], list[Detector[Any]]]:
        table: dict[type[Event], list[Detector[Any]]] = {}
        for detector in build_detectors(policy, self.extra_detectors, self._context):
            for t in detector.events:
                table.setdefault(t, []).append(detector)
        return table

    def _evaluate(
        self, state: RunState, event: Event, detectors: list[Detector[Any]]
    ) -> Verdict | None:
        strongest: Verdict | None = None
        for detector in detectors:
            try:
                verdict = detector(state, event)
            except Exception:  # noqa: BLE001 - a broken detector must not break the agent
                self._internal_error(f"detector {detector.name}", state)
                continue
            if verdict is not None and (strongest is None or verdict.action > strongest.action):
                strongest = verdict
                if verdict.action is Action.ABORT:
                    break
        if strongest is None:
            return None
        strongest.run, strongest.agent = state.run, state.agent
        strongest.step = state.model_calls + (1 if isinstance(event, _BETWEEN_CALLS) else 0)
        strongest.usage = state.usage_snapshot()
        if strongest.action is Action.ABORT:
            if state.policy.mode == "shadow":
                strongest.enforced = False
                if any(v.detector == strongest.detector for v in state.shadow_verdicts):
                    return None  # report each would-be abort once per run
                state.shadow_verdicts.append(strongest)
                logger.warning(
                    "loopguard (shadow): would stop run %s (agent %s) at model call %d: [%s] %s",
                    *_log_args(state, strongest),
                )
            else:
                state.aborted = strongest
                logger.error(
                    "loopguard: stopping run %s (agent %s) at model call %d: [%s] %s",
                    *_log_args(state, strongest),
                )
        else:
            if strongest.action is Action.NUDGE and state.nudge is None:
                state.nudge = strongest  # until an adapter that can nudge takes it
            if len(state.warnings) < _MAX_WARNINGS_KEPT:
                state.warnings.append(strongest)
            logger.warning(
                "loopguard: run %s (agent %s) at model call %d: [%s] %s",
                *_log_args(state, strongest),
            )
        return strongest

    # --- sub-agents: runs nested in runs ---------------------------------------------------

    def _nested(
        self, state: RunState, event: Event, kind: type[Event], verdict: Verdict | None
    ) -> Verdict | None:
        """A sub-agent's event in the runs that enclose it (under the sub-agent's lock; an
        enclosing run's lock is taken after it, never before). Its start is refused beyond
        max_depth; its model and tool starts are checked against every enclosing run's caps and
        counted there; its model ends charge them. Returns the verdict of the event."""
        if verdict is not None and verdict.action is Action.ABORT and verdict.enforced:
            return verdict  # refused by its own policy: nothing went out
        try:
            if kind is RunStart:
                found = _too_deep(state)
                return verdict if found is None else self._evaluate(state, event, [found])
            if kind is ModelEnd or kind is ModelFailed:
                self._charge_up(state, event, kind)
                return verdict
            stopped = self._check_up(state, event, kind)
        except Exception:  # noqa: BLE001 - fail open on the guard's own bugs
            self._internal_error("sub-agent roll-up", state)
            return verdict
        return verdict if stopped is None else stopped

    def _check_up(self, state: RunState, event: Event, kind: type[Event]) -> Verdict | None:
        """Check a sub-agent's start against each enclosing run's caps, nearest first, and
        count it there. When one refuses, the counts and holds taken so far are given back
        and the sub-agent is stopped with a verdict that names the run whose cap it was."""
        passed: list[RunState] = []
        account = self._accounts.get(kind)
        owner = state.parent
        found: Verdict | None = None
        while owner is not None:
            with owner.lock:
                if event.ts > owner.last_seen:
                    owner.last_seen = event.ts  # a run waiting on its sub-agent is not idle
                found = owner.aborted  # a stopped run's sub-agents stop too
                if found is None:
                    caps = [d for d in owner.detectors.get(kind, ()) if d.name in _CAPS]
                    found = self._evaluate(owner, event, caps) if caps else None
                    if found is not None and (found.action < Action.ABORT or not found.enforced):
                        found = None  # its warnings and shadow verdicts are its own
                    if found is None and account is not None:
                        account(owner, event)
                        passed.append(owner)
            if found is not None:
                break
            owner = owner.parent
        if found is None or owner is None:
            return None
        for counted in passed:
            with counted.lock:
                self._uncount(counted, event, kind)
        self._uncount(state, event, None)  # its own hold; it was not counted yet
        return self._stop_nested(state, event, found, owner)

    def _uncount(self, state: RunState, event: Event, kind: type[Event] | None) -> None:
        """Give back what a refused start took: its count (when `kind` is given) and the
        money check's hold."""
        if kind is ModelStart:
            state.model_calls -= 1
        elif kind is ToolStart and isinstance(event, ToolStart):  # kind: the event's type
            state.tool_calls -= 1
            tool = event.tool
            state.tool_counts[tool] = state.tool_counts.get(tool, 1) - 1
        if type(event) is ModelStart:
            release = ModelFailed(
                run=event.run, id=event.id, model=event.model, error="refused", ts=event.ts
            )
            for detector in state.detectors.get(ModelFailed, ()):
                if detector.name == "budget":
                    detector(state, release)

    def _charge_up(self, state: RunState, event: Event, kind: type[Event]) -> None:
        """A sub-agent's finished (or billed) model call, charged to every enclosing run at
        its own prices, and settled in its budgets."""
        account = self._accounts[kind]
        owner = state.parent
        while owner is not None:
            with owner.lock:
                if event.ts > owner.last_seen:
                    owner.last_seen = event.ts
                account(owner, event)
                caps = [d for d in owner.detectors.get(kind, ()) if d.name in _CAPS]
                if caps:
                    self._evaluate(owner, event, caps)
            owner = owner.parent

    def _stop_nested(
        self, state: RunState, event: Event, found: Verdict, owner: RunState
    ) -> Verdict:
        """The sub-agent's own abort for an enclosing run's cap (that run is stopped too)."""
        levels = state.depth - owner.depth
        verdict = Verdict(
            found.detector,
            Action.ABORT,
            f"{found.reason} (a cap of the enclosing run"
            f"{f' of agent {owner.agent}' if owner.agent else ''}, "
            f"{levels} level{'s' if levels > 1 else ''} up)",
            {**found.evidence, "enclosing_run": owner.run, "enclosing_agent": owner.agent},
            run=state.run,
            agent=state.agent,
            step=state.model_calls + (1 if isinstance(event, _BETWEEN_CALLS) else 0),
            usage=found.usage,  # the enclosing run's spend: the one its cap is about
        )
        state.aborted = verdict
        logger.error(
            "loopguard: stopping run %s (agent %s) at model call %d: [%s] %s",
            *_log_args(state, verdict),
        )
        return verdict

    def _charge_end(self, state: RunState, event: ModelEnd) -> None:
        self._charge(state, event.model, event.usage)

    def _charge_failed(self, state: RunState, event: ModelFailed) -> None:
        if event.usage is not None:  # billed before it failed (a stream cut mid-answer)
            self._charge(state, event.model, event.usage)

    def _charge(self, state: RunState, model: str, usage: Usage) -> None:
        state.usage.add(usage)
        try:
            cost = self._pricer(state.policy, model, usage)
        except Exception:  # noqa: BLE001
            self._internal_error("pricing", state)
            cost = None
        state.last_call_cost = cost
        if cost:
            state.cost_usd += cost
        elif cost is None:  # no price: the pricer warned once; the run says so too
            state.attributes["loopguard.unpriced_model"] = model

    def _notify(self, state: RunState, event: Event, verdict: Verdict | None) -> None:
        for sink in self.sinks:
            self._call_sink(sink.on_event, state, event)
            if verdict is not None:
                self._call_sink(sink.on_verdict, state, event, verdict)

    def _finish(self, state: RunState, event: RunEnd) -> None:
        with self._lock:
            if self._runs.get(state.run) is state:
                del self._runs[state.run]
            self._tombstones.pop(state.run, None)
            if state.aborted is not None:
                ended = self._ended_aborted
                ended[state.run] = state.aborted
                if len(ended) > _MAX_ENDED_ABORTED:
                    ended.popitem(last=False)
        for sink in self.sinks:
            self._call_sink(sink.on_run_end, state, event)

    def _call_sink(self, method: Callable[..., Any], *args: Any) -> None:
        try:
            method(*args)
        except Exception:  # noqa: BLE001 - sinks observe; they never break a run
            self._internal_error(
                f"sink {type(getattr(method, '__self__', method)).__name__}",
                args[0] if args else None,
            )

    def _internal_error(self, where: str, state: RunState | None) -> None:
        self.internal_errors += 1
        if state is not None:
            state.attributes["loopguard.internal_error"] = where
        if where not in self._failed:  # log the traceback once per failing part
            self._failed.add(where)
            logger.exception(
                "loopguard: internal error in %s; continuing without it (fail open)", where
            )
        else:
            logger.debug("loopguard: internal error in %s again", where)


def _log_args(state: RunState, verdict: Verdict) -> tuple[Any, ...]:
    # Names come from the model and the user's metadata: escaped and bounded, so that none
    # can forge a log line or make a huge one.
    return (
        _safe.name(state.run),
        _safe.name(state.agent),
        verdict.step,
        _safe.name(verdict.detector),
        _safe.text(verdict.reason),
    )


def _last_seen(state: RunState) -> float:
    return state.last_seen


def _link(state: RunState, parent: str, guard: Guard) -> None:
    """Nest `state` in its parent run, if `guard` or another guard of this process knows it
    (a parent that ended, or lives in another process, leaves the run top-level)."""
    with _GUARDS_LOCK:
        guards = [guard, *(g for g in _GUARDS if g is not guard)]
    for guard in guards:
        found = guard._runs.get(parent)
        if found is not None:
            state.parent, state.depth = found, found.depth + 1
            return


def enclosing_owner(state: RunState) -> RunState | None:
    """The enclosing run whose cap stopped `state`, if one did."""
    stopped = state.aborted
    owner_run = stopped.evidence.get("enclosing_run") if stopped is not None else None
    owner = state.parent if owner_run is not None else None
    while owner is not None and owner.run != owner_run:
        owner = owner.parent
    return owner


def _too_deep(state: RunState) -> _Refuse | None:
    """A one-off check that refuses a run nested deeper than its own policy's max_depth or
    any enclosing run's, or inside a run that was stopped."""
    limit = state.policy.limits.max_depth
    owner = state.parent
    while owner is not None:
        if owner.aborted is not None:
            return _Refuse(owner.aborted)
        bound = owner.policy.limits.max_depth
        if bound is not None and (limit is None or bound < limit):
            limit = bound
        owner = owner.parent
    if limit is None or state.depth <= limit:
        return None
    return _Refuse(
        abort(
            "limits",
            f"sub-agent run nested {state.depth} deep would exceed max_depth={limit}",
            limit="max_depth",
            value=state.depth,
            max=limit,
        )
    )


class _Refuse:
    """A verdict already reached, given as a detector so that the guard applies it as any
    other (shadow mode, logging)."""

    name: ClassVar[str] = "limits"
    events: ClassVar[tuple[type[Event], ...]] = (RunStart,)

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = Verdict(verdict.detector, verdict.action, verdict.reason, verdict.evidence)

    def __call__(self, state: RunState, event: Event) -> Verdict:
        return self.verdict


def _count_model_call(state: RunState, event: ModelStart) -> None:
    state.model_calls += 1


def _count_tool_call(state: RunState, event: ToolStart) -> None:
    state.tool_calls += 1
    state.tool_counts[event.tool] = state.tool_counts.get(event.tool, 0) + 1


def _name_run(state: RunState, event: RunStart) -> None:
    state.name = event.name


__all__ = ["Guard", "Pricer", "Sink"]
