"""Annotate mode: put loopguard's attributes, events and abort status on the spans another
LangChain instrumentation already makes, instead of a second span tree.

Which span is "the chat span" of a model call is found by the LangChain run id:
- OpenInference (`openinference-instrumentation-langchain`): its public
  `LangChainInstrumentor().get_span(run_id)`.
- OpenLLMetry (`opentelemetry-instrumentation-langchain`): its callback handler's span table,
  reached through the callback-manager hook it installs (not a public API; if it moves, this
  lookup finds nothing and the fallback applies).
- Neither active: the span current at callback time (`trace.get_current_span()`).

Neither library makes its span current while a model runs (OpenInference never attaches
context; OpenLLMetry does for chains and tools but swaps in a suppression context for model
calls), so the current span alone would put a model call's attributes on its parent chain.

Their spans are created by their own callback handler, which LangChain calls after loopguard's
at a start, so annotations made at a start are kept and applied once the span exists; at an end
their span is still open. Only loopguard's own attributes (`loopguard.*`, `error.type`) are set:
names, `gen_ai.*` attributes and timing stay theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

SpanLookup = Callable[[UUID], Any]


def _openinference() -> SpanLookup | None:
    try:
        from openinference.instrumentation.langchain import LangChainInstrumentor
    except ImportError:
        return None
    instrumentor = LangChainInstrumentor._instance  # the singleton, without re-running __init__
    tracer = getattr(instrumentor, "_tracer", None) if instrumentor is not None else None
    return tracer.get_span if tracer is not None else None


def _openllmetry() -> SpanLookup | None:
    try:
        from langchain_core.callbacks import BaseCallbackManager
    except ImportError:
        return None
    hook = getattr(BaseCallbackManager.__init__, "_self_wrapper", None)  # a wrapt wrapper
    handler = getattr(hook, "_callback_handler", None)
    spans = getattr(handler, "spans", None)
    if not isinstance(spans, dict):
        return None

    def lookup(run_id: UUID) -> Any:
        holder = spans.get(run_id)
        return holder.span if holder is not None else None

    return lookup


def active_lookups() -> list[SpanLookup]:
    """The span lookups of the LangChain instrumentations active right now."""
    return [f for f in (_openinference(), _openllmetry()) if f is not None]


class _Target:
    """A span of loopguard's tree, resolved to another instrumentation's span when it exists.
    Annotations made before that are kept and applied then."""

    __slots__ = ("attrs", "error", "events", "key", "parent", "span")

    def __init__(self, key: str | None, parent: _Target | None) -> None:
        self.key = key
        self.parent = parent
        self.span: Any = None
        self.attrs: dict[str, Any] = {}
        self.events: list[tuple[str, float, dict[str, Any]]] = []
        self.error: str | None = None


def _ours(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k.startswith("loopguard.") or k == "error.type"}


class AnnotateBackend:
    """A span backend that creates no spans (see the module docstring)."""

    # Told of each span at its start: what is known then must wait for their span to exist,
    # and a call's end is the last moment their span is surely open.
    defers = False
    own_spans = False

    def __init__(self, lookup: SpanLookup | None = None) -> None:
        self._lookup = lookup

    def _lookups(self) -> list[SpanLookup]:
        # Looked up on each use: instrumentation may be switched on after the handler is made.
        return [self._lookup] if self._lookup is not None else active_lookups()

    def _find(self, target: _Target) -> Any:
        lookups = self._lookups()
        if not lookups:
            current = trace.get_current_span()
            return current if current.is_recording() else None
        if target.key is None:
            return None
        try:
            run_id = UUID(target.key)
        except ValueError:
            return None
        for lookup in lookups:
            span = lookup(run_id)
            if span is not None:
                return span
        return None

    def _resolve(self, target: _Target, final: bool = False) -> Any:
        if target.span is None:
            target.span = self._find(target)
            if target.span is None and final and target.parent is not None:
                # Their span never existed (a refused call) or is gone: annotate the parent.
                target.span = self._resolve(target.parent, final=True)
        if target.span is not None:
            self._flush(target)
        return target.span

    def _flush(self, target: _Target) -> None:
        span = target.span
        if target.attrs:
            span.set_attributes(target.attrs)
            target.attrs = {}
        for name, ts, attrs in target.events:
            span.add_event(name, attrs, timestamp=int(ts * 1e9))
        target.events = []
        if target.error is not None:
            span.set_status(Status(StatusCode.ERROR, target.error))
            target.error = None

    def start(
        self, name: str, kind: str, parent: Any, ts: float, attrs: dict[str, Any], key: str | None
    ) -> Any:
        target = _Target(key, parent)
        ours = _ours(attrs)
        if ours:
            target.attrs.update(ours)
        return target

    def set(self, target: _Target, attrs: dict[str, Any]) -> None:
        ours = _ours(attrs)
        if ours:
            target.attrs.update(ours)
        if target.attrs or target.events or target.error is not None:
            self._resolve(target)  # at a call's end their span is still open: hand over now

    def add_event(self, target: _Target, name: str, ts: float, attrs: dict[str, Any]) -> None:
        target.events.append((name, ts, attrs))
        self._resolve(target)

    def set_error(self, target: _Target, description: str) -> None:
        target.error = description
        self._resolve(target)

    def records(self, root: _Target) -> bool:
        return True  # whether their spans record is theirs to know

    def end(self, target: _Target, ts: float) -> None:
        # The span is theirs to end; this is the last chance to hand over what is pending.
        if target.attrs or target.events or target.error is not None:
            self._resolve(target, final=True)
