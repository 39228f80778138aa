"""The guard's default pricer: the run policy's prices applied to each finished model call."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from loopguard import _safe
from loopguard.errors import UnknownModel
from loopguard.events import Usage
from loopguard.pricing.cost import cost_usd
from loopguard.pricing.table import (
    Price,
    PriceTable,
    Resolved,
    normalize,
    packaged_table,
)

if TYPE_CHECKING:
    from loopguard.policy import Policy

logger = logging.getLogger("loopguard")


class PolicyPricer:
    """`(policy, model, usage) -> USD or None`, as the guard's `Pricer` protocol asks.

    Prices come from the packaged table, overridden and extended by the policy's `prices`, with
    the policy's `model_aliases` (application inference-profile ARNs) applied first. A model
    without a price is priced at the policy's `fallback_price` if it has one, else not at all
    (None); either way the `loopguard` logger warns once per model, never $0 in silence.
    """

    def __init__(self, table: PriceTable | None = None) -> None:
        self._base = table
        self._tables: dict[int, tuple[Policy, PriceTable]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        # (policy id, model) -> (policy, answer): resolving normalizes ids and builds a Price,
        # too slow for every call; a process sees few (policy, model) pairs.
        self._resolved: dict[tuple[int, str], tuple[Policy, Resolved | None]] = {}

    def __call__(self, policy: Policy, model: str, usage: Usage) -> float | None:
        found = self.resolve(policy, model)
        return None if found is None else cost_usd(found.price, usage)

    def table_for(self, policy: Policy) -> PriceTable:
        entry = self._tables.get(id(policy))
        if entry is None or entry[0] is not policy:
            base = self._base if self._base is not None else packaged_table()
            entry = (policy, base.with_overrides(policy.prices))
            with self._lock:
                if len(self._tables) > 256:  # policies are few; this only bounds a leak
                    self._tables.clear()
                self._tables[id(policy)] = entry
        return entry[1]

    def resolve(self, policy: Policy, model: str) -> Resolved | None:
        """The price of `model` under `policy`, the fallback price, or None (warned once)."""
        key = (id(policy), model)
        hit = self._resolved.get(key)
        if hit is not None and hit[0] is policy:
            return hit[1]
        found = self._resolve(policy, model)
        if len(self._resolved) > 4096:  # bounds a process that sees endless model ids
            self._resolved.clear()
        self._resolved[key] = (policy, found)
        return found

    def _resolve(self, policy: Policy, model: str) -> Resolved | None:
        try:
            return self.table_for(policy).resolve(model, policy.model_aliases)
        except UnknownModel as exc:
            reason = str(exc)
        fallback = policy.fallback_price
        if fallback is not None:
            self._warn_once(
                model,
                f"loopguard: {reason}; pricing it at fallback_price "
                f"(input {fallback.input:g}, output {fallback.output:g} USD/MTok)",
            )
            try:
                scope, base = normalize(model, policy.model_aliases)
                shown = f"{scope}.{base}" if scope else base
            except UnknownModel:
                shown = model
            return Resolved(shown, Price.from_spec(fallback), "fallback_price")
        action = (
            "calls to it are refused before they go out (a dollar cap applies, or "
            "unknown_model = 'block')"
            if policy.unknown_model_action == "block"
            else "its calls are not costed and dollar caps cannot count them "
            "(no dollar cap, or unknown_model = 'warn')"
        )
        self._warn_once(model, f"loopguard: {reason}; {action}")
        return None

    def _warn_once(self, model: str, message: str) -> None:
        if model in self._warned:
            return
        with self._lock:
            if len(self._warned) > 10_000:
                self._warned.clear()
            self._warned.add(model)
        logger.warning("%s", _safe.text(message))  # it quotes the model id


_default: PolicyPricer | None = None


def default_pricer() -> PolicyPricer:
    """The process-wide pricer over the packaged table (what `Guard(pricer=None)` uses)."""
    global _default
    if _default is None:
        _default = PolicyPricer()
    return _default
