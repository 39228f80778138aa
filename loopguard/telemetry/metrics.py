"""Metrics through the OpenTelemetry metrics API: the GenAI client histograms plus loopguard's
counters (cost, calls, warnings, aborts by detector and agent)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import metrics

from loopguard.telemetry import semconv as sc
from loopguard.verdict import Action

if TYPE_CHECKING:
    from loopguard.events import Usage
    from loopguard.verdict import Verdict


class Metrics:
    """The instruments, created once per meter provider (default: the global one)."""

    def __init__(self, meter_provider: Any = None) -> None:
        from loopguard import __version__

        meter = metrics.get_meter("loopguard", __version__, meter_provider)
        self.token_usage = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE, unit="{token}", description="Tokens used per model call",
            explicit_bucket_boundaries_advisory=list(sc.TOKEN_BUCKETS))
        self.duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION, unit="s", description="Model call latency",
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS))
        self.cost = meter.create_counter(
            sc.METRIC_COST, unit="USD", description="Cost of model calls")
        self.model_calls = meter.create_counter(
            sc.METRIC_MODEL_CALLS, unit="{call}", description="Model calls that went out")
        self.tool_calls = meter.create_counter(
            sc.METRIC_TOOL_CALLS, unit="{call}", description="Tool calls that ran")
        self.warnings = meter.create_counter(
            sc.METRIC_WARNINGS, unit="{warning}", description="Warnings by detector and agent")
        self.aborts = meter.create_counter(
            sc.METRIC_ABORTS, unit="{abort}",
            description="Aborts by detector and agent (shadow-mode would-be aborts included, "
                        "with loopguard.enforced=false)")
        # Attribute sets are built once per distinct key: the hot path only looks them up.
        self._cache: dict[tuple[Any, ...], tuple[dict[str, Any], ...]] = {}

    def _chat_attrs(self, agent: str | None, provider: str | None, model: str,
                    response_model: str | None, error: str | None) -> tuple[dict[str, Any], ...]:
        key = (agent, provider, model, response_model, error)
        found = self._cache.get(key)
        if found is None:
            base = {sc.OPERATION_NAME: sc.OP_CHAT, sc.REQUEST_MODEL: model}
            if provider:
                base[sc.PROVIDER_NAME] = provider
            if response_model:
                base[sc.RESPONSE_MODEL] = response_model
            if error:
                base[sc.ERROR_TYPE] = error
            ours = {k: v for k, v in ((sc.AGENT_NAME, agent), (sc.REQUEST_MODEL, model),
                                      (sc.PROVIDER_NAME, provider), (sc.ERROR_TYPE, error))
                    if v is not None}
            found = (base, {**base, sc.TOKEN_TYPE: sc.TOKEN_INPUT},
                     {**base, sc.TOKEN_TYPE: sc.TOKEN_OUTPUT}, ours)
            if len(self._cache) < 4096:  # bounded: model ids and agents are few
                self._cache[key] = found
        return found

    def model_end(self, agent: str | None, provider: str | None, model: str,
                  response_model: str | None, usage: Usage | None, cost: float | None,
                  seconds: float, error: str | None) -> None:
        base, tin, tout, ours = self._chat_attrs(agent, provider, model, response_model, error)
        self.duration.record(max(0.0, seconds), base)
        self.model_calls.add(1, ours)
        if usage is not None:
            self.token_usage.record(usage.input_tokens, tin)
            self.token_usage.record(usage.output_tokens, tout)
        if cost:
            self.cost.add(cost, ours)

    def tool_end(self, agent: str | None, tool: str, error: str | None) -> None:
        attrs = {sc.TOOL_NAME: tool}
        if agent:
            attrs[sc.AGENT_NAME] = agent
        if error:
            attrs[sc.ERROR_TYPE] = error
        self.tool_calls.add(1, attrs)

    def verdict(self, agent: str | None, verdict: Verdict) -> None:
        attrs = {sc.LG_DETECTOR: verdict.detector, sc.LG_ACTION: str(verdict.action)}
        if agent:
            attrs[sc.AGENT_NAME] = agent
        if verdict.action is Action.ABORT:
            attrs[sc.LG_ENFORCED] = verdict.enforced
            self.aborts.add(1, attrs)
        else:
            self.warnings.add(1, attrs)
