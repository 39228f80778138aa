"""Metrics through the OpenTelemetry metrics API: the GenAI client duration histogram plus
loopguard's counters (tokens, cost, calls, warnings, aborts by detector and agent).

The counters are summed here and reported by observable counters when the SDK collects: a
synchronous `Counter.add` or `Histogram.record` costs microseconds in the SDK (attribute
cleaning and hashing) on every call, a dict update under a lock almost nothing. Model-call
latency needs a histogram, which has no observable form: it is recorded as calls finish. Tokens
are counted, not a histogram (`gen_ai.client.token.usage`): the totals by type are what
dashboards and budgets need.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from loopguard.telemetry import semconv as sc
from loopguard.verdict import Action

if TYPE_CHECKING:
    from loopguard.events import Usage
    from loopguard.verdict import Verdict

logger = logging.getLogger("loopguard")

try:  # the API's stand-in, handed out until (unless) a provider is set
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    _PROXY: tuple[type, ...] = (_ProxyMeterProvider,)
except ImportError:  # pragma: no cover - a future API without the private proxy class
    _PROXY = ()
_NO_SDK: tuple[type, ...] = (metrics.NoOpMeterProvider, *_PROXY)


def is_proxy(provider: Any) -> bool:
    """True for the API's stand-in meter provider: no provider has been set yet. The API has
    no public way to ask, so this is the one place that looks at its private class."""
    return isinstance(provider, _PROXY)


_MAX_SERIES = 4096  # distinct attribute sets per counter; agents, models and tools are few


class _Sums:
    """Cumulative sums per attribute set, reported by an observable counter. The lock is shared
    by the counters of one `Metrics`, so a model call's counts take it once."""

    def __init__(self, name: str, lock: threading.Lock) -> None:
        self.name = name
        self.values: dict[tuple[tuple[str, Any], ...], float] = {}
        self.lock = lock
        self._full = False

    def add(self, value: float, key: tuple[tuple[str, Any], ...]) -> None:
        with self.lock:
            self.add_locked(value, key)

    def add_locked(self, value: float, key: tuple[tuple[str, Any], ...]) -> None:
        """`add`, for a caller that holds the lock."""
        values = self.values
        if key in values:
            values[key] += value
        elif len(values) < _MAX_SERIES:
            values[key] = value
        elif not self._full:
            self._full = True
            logger.warning(
                "loopguard: metric %s has %d attribute sets; new ones are dropped",
                self.name,
                _MAX_SERIES,
            )

    def observe(self, options: CallbackOptions) -> Iterator[Observation]:
        with self.lock:
            items = list(self.values.items())
        for key, value in items:
            yield Observation(value, dict(key))


_SHARED: weakref.WeakKeyDictionary[Any, Metrics] = weakref.WeakKeyDictionary()
_GLOBAL: list[Metrics] = []
_SHARED_LOCK = threading.Lock()


def metrics_for(meter_provider: Any = None) -> Metrics:
    """The one `Metrics` of a meter provider (None: the global one). Shared because the SDK
    keeps the first observable counter of a name and drops the callbacks of any later one."""
    with _SHARED_LOCK:
        if meter_provider is None:
            if not _GLOBAL:
                _GLOBAL.append(Metrics(None))
            return _GLOBAL[0]
        found = _SHARED.get(meter_provider)
        if found is None:
            found = _SHARED[meter_provider] = Metrics(meter_provider)
        return found


class Metrics:
    """The instruments of one meter provider (default: the global one); use `metrics_for`."""

    def __init__(self, meter_provider: Any = None) -> None:
        from loopguard import __version__

        self._provider = meter_provider
        self._lock = threading.Lock()
        meter = metrics.get_meter("loopguard", __version__, meter_provider)
        self.duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION,
            unit="s",
            description="Model call latency",
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )
        self.tokens = self._counter(
            meter,
            sc.METRIC_TOKENS,
            "{token}",
            "Tokens of model calls by type (input includes cached)",
        )
        self.cost = self._counter(meter, sc.METRIC_COST, "USD", "Cost of model calls")
        self.model_calls = self._counter(
            meter, sc.METRIC_MODEL_CALLS, "{call}", "Model calls that went out"
        )
        self.tool_calls = self._counter(
            meter, sc.METRIC_TOOL_CALLS, "{call}", "Tool calls that ran"
        )
        self.warnings = self._counter(
            meter, sc.METRIC_WARNINGS, "{warning}", "Warnings by detector and agent"
        )
        self.aborts = self._counter(
            meter,
            sc.METRIC_ABORTS,
            "{abort}",
            "Aborts by detector and agent (shadow-mode would-be aborts "
            "included, with loopguard.enforced=false)",
        )
        # Attribute sets are built once per distinct key: the hot path only looks them up.
        self._cache: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def live(self) -> bool:
        """False while measurements go nowhere: no SDK meter provider is set (yet). Asked at
        the start of each run, so a provider installed later still gets the runs after it."""
        provider = self._provider if self._provider is not None else metrics.get_meter_provider()
        return not isinstance(provider, _NO_SDK)

    def _counter(self, meter: Any, name: str, unit: str, description: str) -> _Sums:
        sums = _Sums(name, self._lock)
        meter.create_observable_counter(
            name, callbacks=[sums.observe], unit=unit, description=description
        )
        return sums

    def _chat_attrs(
        self, agent: str | None, provider: str | None, model: str, error: str | None
    ) -> tuple[Any, ...]:
        key = (agent, provider, model, error)
        found = self._cache.get(key)
        if found is None:
            base = {sc.OPERATION_NAME: sc.OP_CHAT, sc.REQUEST_MODEL: model}
            if provider:
                base[sc.PROVIDER_NAME] = provider
            if error:
                base[sc.ERROR_TYPE] = error
            ours = tuple(
                (k, v)
                for k, v in (
                    (sc.AGENT_NAME, agent),
                    (sc.REQUEST_MODEL, model),
                    (sc.PROVIDER_NAME, provider),
                    (sc.ERROR_TYPE, error),
                )
                if v is not None
            )
            by_type = tuple(
                (*ours, (sc.TOKEN_TYPE, t))
                for t in (
                    sc.TOKEN_INPUT,
                    sc.TOKEN_OUTPUT,
                    sc.TOKEN_CACHE_READ,
                    sc.TOKEN_CACHE_WRITE,
                )
            )
            found = (base, ours, by_type)
            if len(self._cache) < _MAX_SERIES:
                self._cache[key] = found
        return found

    def model_end(
        self,
        agent: str | None,
        provider: str | None,
        model: str,
        usage: Usage | None,
        cost: float | None,
        seconds: float,
        error: str | None,
    ) -> None:
        base, ours, token_keys = self._chat_attrs(agent, provider, model, error)
        self.duration.record(max(0.0, seconds), base)
        with self._lock:
            self.model_calls.add_locked(1, ours)
            if usage is not None:
                tokens, (tin, tout, tread, twrite) = self.tokens, token_keys
                tokens.add_locked(usage.input_tokens, tin)
                tokens.add_locked(usage.output_tokens, tout)
                # The cache types only when not 0: runs without caching add no series.
                if usage.cache_read_tokens:
                    tokens.add_locked(usage.cache_read_tokens, tread)
                if usage.cache_write_tokens:
                    tokens.add_locked(usage.cache_write_tokens, twrite)
            if cost:
                self.cost.add_locked(cost, ours)

    def tool_end(self, agent: str | None, tool: str, error: str | None) -> None:
        key: tuple[tuple[str, str], ...] = ((sc.TOOL_NAME, tool),)
        if agent:
            key += ((sc.AGENT_NAME, agent),)
        if error:
            key += ((sc.ERROR_TYPE, error),)
        self.tool_calls.add(1, key)

    def verdict(self, agent: str | None, verdict: Verdict) -> None:
        key: tuple[tuple[str, Any], ...] = (
            (sc.LG_DETECTOR, verdict.detector),
            (sc.LG_ACTION, str(verdict.action)),
        )
        if agent:
            key += ((sc.AGENT_NAME, agent),)
        if verdict.action is Action.ABORT:
            self.aborts.add(1, (*key, (sc.LG_ENFORCED, verdict.enforced)))
        else:
            self.warnings.add(1, key)
