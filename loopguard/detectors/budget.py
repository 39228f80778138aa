"""The money check: dollar and token caps enforced before each paid call.

At model start it projects the call's cost with the guard's pricer (input tokens estimated as
`loopguard.tokens` documents, output = the call's max_tokens or the policy's
output_estimate_tokens, priced as the worst case `loopguard.pricing.worst_case_usage`), checks
the run's max_cost_usd, and reserves the projection against every budget the run falls under,
all or none, refusing the call if any would go over. A call it cannot price is refused under
any dollar cap (the policy's `unknown_model_action`). At model end it settles each reservation
to the call's real cost, or to its projection when the call reported no usage it can trust; on
model error, run end and eviction it releases what is still held. It runs last among the
detectors, so it reserves only for calls nothing else refused.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from loopguard import _safe
from loopguard.events import Event, ModelEnd, ModelFailed, ModelStart, RunEnd
from loopguard.ledger import Claim, LedgerUnavailable
from loopguard.ledger.base import NANO, TRIP_PREFIX
from loopguard.ledger.memory import MemoryLedger
from loopguard.ledger.resilient import Resilient
from loopguard.ledger.spec import trip_keys
from loopguard.pricing import default_pricer, worst_case_usage
from loopguard.tokens import estimate_text_tokens
from loopguard.verdict import Action, Verdict, abort, warn

if TYPE_CHECKING:
    from collections.abc import Callable

    from loopguard.detectors.base import Context, Pricer
    from loopguard.ledger.spec import BudgetSpec
    from loopguard.policy import Policy
    from loopguard.state import RunState

logger = logging.getLogger("loopguard")
_DEGRADED_LOG_EVERY = 60.0  # seconds between repeated "ledger unreachable" errors


@dataclass(slots=True)
class _Held:
    """One call's reservation: where it is held and what it projected."""

    rid: str
    usd: float
    tokens: int
    assumed: str = ""  # what the projection assumed, for a refusal's reason
    claims: tuple[Claim, ...] = ()
    specs: tuple[BudgetSpec, ...] = ()
    local: bool = False  # held in the local fallback ledger (fail-open while unreachable)


@dataclass(slots=True)
class _Slot:
    held: OrderedDict[str, _Held] = field(default_factory=OrderedDict)
    warned: set[str] = field(default_factory=set)

    @property
    def reserved_usd(self) -> float:
        return sum(h.usd for h in self.held.values())


class _Ledgers:
    """Per URI: the shared ledger wrapped to keep settlements through outages, and a local
    memory ledger used while it is unreachable under on_ledger_error = "open"."""

    def __init__(self) -> None:
        self._remote: dict[str, Resilient] = {}
        self._local: dict[str, MemoryLedger] = {}
        self._last_error: dict[str, float] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def remote(self, uri: str) -> Resilient:
        found = self._remote.get(uri)
        if found is None:
            with self._lock:
                found = self._remote.get(uri)
                if found is None:
                    found = self._remote[uri] = Resilient(uri)
        return found

    def local(self, uri: str) -> MemoryLedger:
        found = self._local.get(uri)
        if found is None:
            with self._lock:
                found = self._local.setdefault(uri, MemoryLedger(f"memory://fallback/{uri}"))
        return found

    def first_warning(self, what: str) -> bool:
        with self._lock:
            if what in self._warned:
                return False
            if len(self._warned) > 10_000:  # bounded; keys roll over with their windows
                self._warned.clear()
            self._warned.add(what)
            return True

    def should_log(self, uri: str, now: float) -> bool:
        if now - self._last_error.get(uri, 0.0) >= _DEGRADED_LOG_EVERY:
            self._last_error[uri] = now
            return True
        return False


LEDGERS = _Ledgers()


class BudgetCheck:
    name: ClassVar[str] = "budget"
    events: ClassVar[tuple[type[Event], ...]] = (ModelStart, ModelEnd, ModelFailed, RunEnd)

    def __init__(self, pricer: Pricer | None = None, ledgers: _Ledgers | None = None) -> None:
        # The guard's pricer, so the projection and the settlement price a call alike.
        self.pricer: Pricer = pricer or default_pricer()
        self.ledgers = ledgers or LEDGERS
        self._on: dict[type[Event], Callable[[RunState, _Slot, Any], Verdict | None]] = {
            ModelStart: self._start,
            ModelEnd: self._end,
            ModelFailed: self._failed,
            RunEnd: self._run_end,
        }

    @classmethod
    def from_policy(cls, _: None, policy: Policy, context: Context) -> BudgetCheck | None:
        """The money check with the guard's pricer, or None when the policy sets no money
        limit at all."""
        if (
            policy.max_cost_usd is None
            and policy.warn_cost_usd is None
            and not policy.budgets
            and policy.unknown_model_action != "block"
        ):
            return None
        return cls(context.pricer)

    def __call__(
        self, state: RunState, event: ModelStart | ModelEnd | ModelFailed | RunEnd
    ) -> Verdict | None:
        return self._on[type(event)](state, state.slot(self.name, _Slot), event)

    def _failed(self, state: RunState, slot: _Slot, event: ModelFailed) -> None:
        if event.usage is not None:
            # A call that failed after it was billed (a stream cut mid-answer) is settled to
            # its estimated usage, like a finished one; other failures release the hold.
            self._end(state, slot, event)
            return
        held = self._pop(slot, event.id)
        if held is not None:
            self._release(state.policy, held)

    def _run_end(self, state: RunState, slot: _Slot, event: RunEnd) -> None:
        while slot.held:
            held = slot.held.popitem(last=False)[1]
            if state.evicted and held.claims and not held.local:
                # The guard evicting a run waits for no ledger: given back with the ledger's
                # next operation (or at the reservation's TTL).
                self.ledgers.remote(state.policy.ledger).release_later(held.rid, held.claims)
            else:
                self._release(state.policy, held)

    # --- model start: project, check, reserve ---------------------------------------------

    def _start(self, state: RunState, slot: _Slot, event: ModelStart) -> Verdict | None:
        policy = state.policy
        in_tokens, out_tokens, priced = project_call(self.pricer, policy, event)
        if priced is None:
            state.attributes["loopguard.unpriced_model"] = event.model
            if policy.unknown_model_action == "block":
                return abort(
                    self.name,
                    _unpriced(_safe.name(event.model), policy),
                    limit="unknown_model",
                    model=event.model,
                )
        usd = 0.0 if priced is None else priced
        tokens = in_tokens + out_tokens
        projection = {
            "projected_usd": round(usd, 6),
            "projected_tokens": tokens,
            "projected_input_tokens": in_tokens,
            "projected_output_tokens": out_tokens,
            "output_tokens_from": "max_tokens" if event.max_tokens else "output_estimate_tokens",
        }
        assumed = _assumed(in_tokens, out_tokens, bool(event.max_tokens), usd)

        run_total = state.cost_usd + slot.reserved_usd + usd
        if policy.max_cost_usd is not None and run_total > policy.max_cost_usd:
            return abort(
                self.name,
                f"model call could bring the run to ${run_total:.4f}, over "
                f"max_cost_usd=${policy.max_cost_usd:g} (spent ${state.cost_usd:.4f}, "
                f"reserved ${slot.reserved_usd:.4f}); {assumed}",
                limit="max_cost_usd",
                spent_usd=round(state.cost_usd, 6),
                reserved_usd=round(slot.reserved_usd, 6),
                max=policy.max_cost_usd,
                **projection,
            )

        held = _Held(uuid.uuid4().hex, usd, tokens, assumed)
        budget_warning = None
        if policy.budgets:
            budget_warning = self._reserve(state, event, held, projection)
            if budget_warning is not None and budget_warning.action is Action.ABORT:
                return budget_warning
        slot.held[event.id or held.rid] = held
        return self._soft(state, slot, run_total) or budget_warning

    def _reserve(
        self, state: RunState, event: ModelStart, held: _Held, projection: dict[str, Any]
    ) -> Verdict | None:
        policy = state.policy
        meta = {**state.meta, **(event.meta or {})}  # start events come before accounting
        specs = tuple(policy.budgets)
        claims = tuple(
            b.claim(
                b.ledger_key(run=state.run, agent=state.agent, meta=meta, ts=event.ts),
                held.usd,
                held.tokens,
                event.ts,
                up=True,
            )
            for b in specs
        )
        trips = trip_keys(specs, state.agent, meta)  # kill switches, checked in the same step
        try:
            outcome = self.ledgers.remote(policy.ledger).reserve(
                held.rid, claims, policy.reservation_ttl, trips=trips
            )
        except LedgerUnavailable as exc:
            if policy.on_ledger_error == "closed":
                return abort(
                    self.name,
                    f"budget ledger unreachable ({exc}); paid calls are "
                    f"refused (on_ledger_error = 'closed')",
                    limit="ledger",
                    ledger=_safe.uri(policy.ledger),
                    **projection,
                )
            self._degraded(state, policy, exc)
            held.local = True
            outcome = self.ledgers.local(policy.ledger).reserve(
                held.rid, claims, policy.reservation_ttl
            )
        if outcome.tripped is not None:
            t = outcome.tripped
            return abort(
                self.name,
                f"{t.key.removeprefix(TRIP_PREFIX)} is tripped: {t.reason}",
                limit="trip",
                key=t.key,
                trip_reason=t.reason,
                until=t.until,
                **projection,
            )
        denied = outcome.denied
        if denied is not None:
            i = [c.key for c in claims].index(denied.key)
            spec, claim = specs[i], claims[i]
            over = (
                "max_usd"
                if claim.max_usd_n is not None
                and denied.spent_usd_n + denied.reserved_usd_n + claim.usd_n > claim.max_usd_n
                else "max_tokens"
            )
            limit = spec.max_usd if over == "max_usd" else spec.max_tokens
            return abort(
                self.name,
                # Not the key: it holds the run's tenant or thread id (a metadata value).
                f"model call would exceed budget {spec.label} ({over}={limit:g}); {held.assumed}",
                limit=f"budget.{over}",
                budget=spec.label,
                key=denied.key,
                max=limit,
                spent_usd=denied.spent_usd_n / NANO,
                reserved_usd=denied.reserved_usd_n / NANO,
                spent_tokens=denied.spent_tokens,
                reserved_tokens=denied.reserved_tokens,
                **projection,
            )
        held.claims, held.specs = claims, specs
        return self._nearly_spent(policy, specs, claims, outcome.used)

    def _nearly_spent(
        self,
        policy: Policy,
        specs: tuple[BudgetSpec, ...],
        claims: tuple[Claim, ...],
        used: tuple[tuple[int, int], ...],
    ) -> Verdict | None:
        """A warning when a budget is at warn_ratio of a limit; once per key per process (a
        key names its window, so each new day or hour warns again)."""
        for spec, claim, (usd_n, tokens) in zip(specs, claims, used, strict=False):
            for name, value, limit in (
                ("max_usd", usd_n, claim.max_usd_n),
                ("max_tokens", tokens, claim.max_tokens),
            ):
                if limit is None or value < limit * policy.warn_ratio:
                    continue
                if not self.ledgers.first_warning(f"{policy.ledger} {claim.key} {name}"):
                    continue
                shown = (
                    f"${value / NANO:.4f} of ${limit / NANO:g}"
                    if name == "max_usd"
                    else f"{value} of {limit} tokens"
                )
                return warn(
                    self.name,
                    f"budget {spec.label} is at {shown} (spent and reserved)",
                    limit=f"budget.{name}",
                    budget=spec.label,
                    key=claim.key,
                    value=value / NANO if name == "max_usd" else value,
                    max=spec.max_usd if name == "max_usd" else spec.max_tokens,
                )
        return None

    def _soft(self, state: RunState, slot: _Slot, run_total: float) -> Verdict | None:
        policy = state.policy
        threshold = policy.warn_at("cost_usd")
        if threshold is not None and run_total >= threshold and "run" not in slot.warned:
            slot.warned.add("run")
            return warn(
                self.name,
                f"run cost could reach ${run_total:.4f}; the limit is ${policy.max_cost_usd:g}"
                if policy.max_cost_usd is not None
                else f"run cost could reach ${run_total:.4f}",
                limit="cost_usd",
                value=round(run_total, 6),
                max=policy.max_cost_usd,
            )
        return None

    # --- model end: settle to the real cost -----------------------------------------------

    def _end(self, state: RunState, slot: _Slot, event: ModelEnd | ModelFailed) -> None:
        policy = state.policy
        held = self._pop(slot, event.id)
        usd = state.last_call_cost or 0.0  # the guard priced this call before detectors ran
        usage = event.usage
        tokens = usage.total_tokens if usage is not None else 0
        if usage is not None and not usage.known:
            usd, tokens = self._unknown_usage(state, slot, event, held, usd)
        if held is not None and held.specs:
            specs, keys = held.specs, [c.key for c in held.claims]
        elif policy.budgets:  # no reservation (shadow mode, replay without starts): spend anyway
            specs = tuple(policy.budgets)
            keys = [
                b.ledger_key(run=state.run, agent=state.agent, meta=state.meta, ts=event.ts)
                for b in specs
            ]
        else:
            return
        claims = [
            b.claim(k, usd, tokens, event.ts, up=False) for b, k in zip(specs, keys, strict=True)
        ]
        rid = held.rid if held is not None else uuid.uuid4().hex
        if held is not None and held.local:
            self.ledgers.local(policy.ledger).settle(rid, claims)
        # The spend goes to the shared ledger even when the reservation was local; if it is
        # unreachable, Resilient keeps it and replays it later.
        self.ledgers.remote(policy.ledger).settle(rid, claims)

    def _unknown_usage(
        self,
        state: RunState,
        slot: _Slot,
        event: ModelEnd | ModelFailed,
        held: _Held | None,
        charged: float,
    ) -> tuple[float, int]:
        """A call that reported no usage it can trust is never free: it costs its projection
        (or, when its start was not seen, its answer's tokens at the output price). The run's
        spend is raised to that, the run is marked, and the logger warns once per run."""
        if held is not None:
            usd, tokens = held.usd, held.tokens
        else:
            out = estimate_text_tokens(getattr(event, "text", "") or "")
            usd = self.pricer(state.policy, event.model, worst_case_usage(0, out)) or 0.0
            tokens = out
        if usd > charged:
            state.cost_usd += usd - charged
            state.last_call_cost = usd
        state.attributes["loopguard.usage_estimated"] = True
        if "usage" not in slot.warned:
            slot.warned.add("usage")
            logger.warning(
                "loopguard: run %s: model %r reported no usage (or usage that cannot be "
                "trusted); the call is charged its projection, $%.6f",
                _safe.name(state.run),
                _safe.name(event.model),
                usd,
            )
        return usd, tokens

    def _release(self, policy: Policy, held: _Held) -> None:
        if not held.claims:
            return
        if held.local:
            self.ledgers.local(policy.ledger).release(held.rid, held.claims)
        else:
            self.ledgers.remote(policy.ledger).release(held.rid, held.claims)

    @staticmethod
    def _pop(slot: _Slot, call_id: str | None) -> _Held | None:
        if call_id is not None:
            return slot.held.pop(call_id, None)
        if slot.held:  # recordings without call ids: calls end in the order they started
            return slot.held.popitem(last=False)[1]
        return None

    def _degraded(self, state: RunState, policy: Policy, exc: Exception) -> None:
        state.attributes["loopguard.ledger_degraded"] = _safe.uri(policy.ledger)
        if self.ledgers.should_log(policy.ledger, time.time()):
            logger.error(
                "loopguard: budget ledger %s unreachable (%s); counting budgets in "
                "this process only (on_ledger_error = 'open'). Spend is kept and "
                "written to the ledger when it is back.",
                _safe.uri(policy.ledger),
                exc,
            )


def project_call(
    pricer: Pricer, policy: Policy, event: ModelStart
) -> tuple[int, int, float | None]:
    """What the money check assumes of a call before it goes out: its input tokens (estimated
    from the prompt), its output tokens (`max_tokens`, else the policy's
    `output_estimate_tokens`) and the price of their worst case (None: no usable price)."""
    in_tokens = event.input_tokens
    out_tokens = event.max_tokens or policy.output_estimate_tokens
    usd = pricer(policy, event.model, worst_case_usage(in_tokens, out_tokens))
    if usd is None or not math.isfinite(usd) or usd < 0:
        return in_tokens, out_tokens, None
    return in_tokens, out_tokens, usd


def _assumed(in_tokens: int, out_tokens: int, from_max_tokens: bool, usd: float) -> str:
    """What a worst-case projection assumed, and what to change when it refuses calls that
    would fit: the two knobs that set its output tokens."""
    if from_max_tokens:
        source = "the call's max_tokens"
        fix = "lower max_tokens on the model if its calls are smaller"
    else:
        source = "output_estimate_tokens, assumed as the model sets no max_tokens"
        fix = (
            "set max_tokens on the model, or lower the policy's output_estimate_tokens, if "
            "its calls are smaller"
        )
    return (
        f"the worst-case projection assumed {in_tokens} input tokens (estimated) + "
        f"{out_tokens} output tokens ({source}) = ${usd:.4f}; {fix}"
    )


def _unpriced(model: str, policy: Policy) -> str:
    why = (
        "under a dollar cap a call the guard cannot price is refused before it goes out"
        if policy.unknown_model is None
        else "unknown_model = 'block'"
    )
    return (
        f"no price for model {model!r}: {why}. Add its price under the policy key prices "
        f'(USD per million tokens, e.g. [prices."{model}"] input = 3.0, output = 15.0), or '
        f"set fallback_price = {{input = ..., output = ...}} to price every unknown model"
    )
