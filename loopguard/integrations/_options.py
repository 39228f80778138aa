"""What every adapter is configured with, declared once: `AdapterOptions`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from loopguard.guard import Guard
    from loopguard.policy import Policy, PolicySet


class AdapterOptions(TypedDict, total=False):
    """Keyword arguments shared by `LoopGuardCallbackHandler` and `LoopGuardMiddleware`.

    policy: a Policy, PolicySet or path, used when no guard is given (default: loaded from
        $LOOPGUARD_CONFIG / loopguard.toml / pyproject.toml, else the built-in default).
    agent: the agent name for every run the adapter sees (overrides metadata).
    record_to: write every event to this JSONL file (the flight recorder).
    record_content: with False, the recorder replaces text by a stable hash.
    telemetry: emit OpenTelemetry spans and metrics (True, False, or "annotate" to add
        loopguard's attributes to spans other instrumentation already made). Default: on
        when the adapter builds its own guard; a given guard keeps its own sinks.
    tracer_provider, meter_provider: OpenTelemetry providers (default: the global ones).
    """

    policy: Policy | PolicySet | str | os.PathLike[str] | None
    agent: str | None
    record_to: str | os.PathLike[str] | None
    record_content: bool
    telemetry: bool | str | None
    tracer_provider: Any
    meter_provider: Any


def adapter_guard(guard: Guard | None, options: AdapterOptions, adapter: str) -> Guard:
    """The guard an adapter works with, with the flight recorder and telemetry sinks it was
    asked for. Telemetry defaults to on for a guard the adapter builds; a guard that is given
    keeps its own sinks."""
    unknown = set(options) - set(AdapterOptions.__annotations__)
    if unknown:
        raise TypeError(
            f"{adapter}() got unexpected keyword argument(s): {', '.join(sorted(unknown))}"
        )
    policy = options.get("policy")
    if guard is not None and policy is not None:
        raise ValueError("pass either guard or policy, not both (a guard has its policies)")
    telemetry = options.get("telemetry")
    if telemetry is None:
        telemetry = guard is None
    if guard is None:
        from loopguard.guard import Guard

        guard = Guard(policy)
    record_to = options.get("record_to")
    if record_to is not None:
        from loopguard.recorder import FlightRecorder

        guard.sinks.append(
            FlightRecorder(record_to, record_content=options.get("record_content", True))
        )
    if telemetry:
        from loopguard.telemetry.spans import SpanSink

        guard.sinks.append(
            SpanSink(
                tracer_provider=options.get("tracer_provider"),
                meter_provider=options.get("meter_provider"),
                mode="annotate" if telemetry == "annotate" else "spans",
            )
        )
    return guard
