"""The one mapping from a guarded run's events and verdicts to a tree of spans.

`SpanTree` decides names, nesting, attributes, events and statuses; a `SpanBackend` makes them
real: OpenTelemetry spans (`spans.py`), annotations on another instrumentation's spans
(`annotate.py`), or plain records for Jaeger's JSON file (`jaeger.py`). Times always come from
the events' own timestamps, never from the clock at callback time.

The tree of a run: `invoke_agent {agent}` at the root (created by the run's first event, so a
handler attached only to a model still gets one), `chat {model}` per model call and
`execute_tool {tool}` per tool call, each a child of the span whose id is the event's `parent`
(a tool call, or the root).
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any, Protocol

from loopguard.events import (
    Event, ModelEnd, ModelError, ModelStart, RunEnd, RunStart, Token, ToolEnd, ToolError, ToolStart,
)
from loopguard.telemetry import content
from loopguard.telemetry import semconv as sc
from loopguard.verdict import Action

if TYPE_CHECKING:
    from loopguard.state import RunState
    from loopguard.telemetry.metrics import Metrics
    from loopguard.verdict import Verdict

INTERNAL, CLIENT = "internal", "client"

# The handler reports errors as "ExceptionClass: message".
_ERROR_TYPE = re.compile(r"([A-Za-z_][\w.]*)(?::|$)")
_MAX_DESCRIPTION = 500


class SpanBackend(Protocol):
    """Where spans go. `start` returns a handle the tree passes back to the other methods."""

    def start(self, name: str, kind: str, parent: Any, ts: float, attrs: dict[str, Any],
              key: str | None) -> Any: ...

    def set(self, span: Any, attrs: dict[str, Any]) -> None: ...

    def add_event(self, span: Any, name: str, ts: float, attrs: dict[str, Any]) -> None: ...

    def set_error(self, span: Any, description: str) -> None: ...

    def end(self, span: Any, ts: float) -> None: ...

    def records(self, root: Any) -> bool:
        """False when the run's root span records nothing (no SDK, or not sampled): the tree
        then skips the run's spans and keeps only its metrics."""
        ...


class _NoSpans:
    """The backend of a run whose spans record nothing."""

    def start(self, *args: Any) -> None:
        return None

    def set(self, *args: Any) -> None:
        pass

    add_event = set_error = end = set


_NO_SPANS = _NoSpans()


class _Call:
    """An open chat or execute_tool span."""

    __slots__ = ("span", "start", "model", "provider", "streamed", "end_event", "end_ts")

    def __init__(self, span: Any, start: float, model: str | None = None,
                 provider: str | None = None) -> None:
        self.span = span
        self.start = start
        self.model = model
        self.provider = provider
        self.streamed = False
        self.end_event: Event | None = None
        self.end_ts = 0.0


class _Run:
    __slots__ = ("root", "spans", "calls", "pending", "capture", "failed", "refused", "off")

    def __init__(self, root: Any, spans: Any, capture: bool) -> None:
        self.off = False  # nothing records: no spans, no live metrics; the run is ignored
        self.root = root
        self.spans = spans  # the tree's backend, or _NO_SPANS
        self.calls: dict[str, _Call] = {}
        # A finished call whose span stays open until its verdicts (if any) are in: the guard
        # hands sinks an event, then at once its verdict, then the run's next event.
        self.pending: _Call | None = None
        self.capture = capture
        self.failed = False  # the root's error status is already set
        self.refused: set[str] = set()  # calls refused at their start: any later end is stray


def _key(event: Event, kind: str) -> str:
    # Recordings may lack ids; calls of a run are then matched in order, per kind.
    if event.id is not None:
        return event.id
    return kind if kind == "model" else f"tool:{event.tool}"  # type: ignore[attr-defined]


def error_type(error: str) -> str:
    m = _ERROR_TYPE.match(error)
    return m.group(1) if m else sc.ERROR_TYPE_OTHER


class SpanTree:
    """Builds the span tree of every run it is shown, on one backend. Thread-safe per run (the
    guard calls sinks under the run's lock); runs are independent."""

    def __init__(self, backend: SpanBackend, metrics: Metrics | None = None) -> None:
        self.backend = backend
        self.metrics = metrics
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    @property
    def open_runs(self) -> int:
        return len(self._runs)

    # --- events -------------------------------------------------------------------------------

    def event(self, state: RunState, event: Event) -> None:
        kind = type(event)
        if kind is Token:  # the hot path of streaming: one dict lookup
            run = self._runs.get(event.run)
            call = run.calls.get(event.id or "model") if run is not None else None
            if call is not None and not call.streamed:
                call.streamed = True
                run.spans.set(call.span, {sc.RESPONSE_TIME_TO_FIRST_CHUNK:
                                          max(0.0, event.ts - call.start)})
            return
        run = self._runs.get(event.run)
        if run is None:
            if kind is RunEnd:
                return
            run = self._open(state, event)
        if run.off:
            return
        if run.pending is not None:
            self._close_pending(run)
        if kind is ModelStart:
            self._model_start(state, run, event)  # type: ignore[arg-type]
        elif kind is ModelEnd:
            self._model_end(state, run, event)  # type: ignore[arg-type]
        elif kind is ToolStart:
            self._tool_start(state, run, event)  # type: ignore[arg-type]
        elif kind is ToolEnd or kind is ToolError:
            self._tool_end(state, run, event)  # type: ignore[arg-type]
        elif kind is ModelError:
            self._model_error(state, run, event)  # type: ignore[arg-type]
        elif kind is RunStart and state.name:
            run.spans.set(run.root, {sc.LG_RUN_NAME: state.name})

    def _open(self, state: RunState, event: Event) -> _Run:
        agent = state.agent
        attrs: dict[str, Any] = {sc.OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.LG_RUN_ID: state.run,
                                 sc.LG_MODE: state.policy.mode}
        if agent:
            attrs[sc.AGENT_NAME] = agent
        if state.name:
            attrs[sc.LG_RUN_NAME] = state.name
        thread = state.meta.get("thread_id") or state.meta.get("conversation_id")
        if thread is not None:
            attrs[sc.CONVERSATION_ID] = str(thread)
        name = f"invoke_agent {agent}" if agent else "invoke_agent"
        root = self.backend.start(name, INTERNAL, None, event.ts, attrs, state.run)
        spans = self.backend if self.backend.records(root) else _NO_SPANS
        run = _Run(root, spans, content.capture_enabled(state.policy))
        # Without an SDK neither spans nor metrics go anywhere: skip the run's work entirely.
        run.off = spans is _NO_SPANS and (self.metrics is None or not self.metrics.live())
        with self._lock:
            self._runs[event.run] = run
        return run

    def _parent(self, run: _Run, event: Event) -> Any:
        call = run.calls.get(event.parent) if event.parent is not None else None
        return call.span if call is not None else run.root

    def _model_start(self, state: RunState, run: _Run, event: ModelStart) -> None:
        provider = sc.provider_name(event.model, event.meta)
        if run.spans is _NO_SPANS:  # only the metrics need the call
            run.calls[_key(event, "model")] = _Call(None, event.ts, event.model, provider)
            return
        attrs: dict[str, Any] = {sc.OPERATION_NAME: sc.OP_CHAT, sc.REQUEST_MODEL: event.model}
        if provider:
            attrs[sc.PROVIDER_NAME] = provider
        if event.max_tokens is not None:
            attrs[sc.REQUEST_MAX_TOKENS] = event.max_tokens
        if run.capture:
            attrs[sc.INPUT_MESSAGES] = content.input_messages(event.messages)
        span = run.spans.start(f"chat {event.model}", CLIENT, self._parent(run, event),
                               event.ts, attrs, event.id)
        run.calls[_key(event, "model")] = _Call(span, event.ts, event.model, provider)

    def _model_end(self, state: RunState, run: _Run, event: ModelEnd) -> None:
        call = run.calls.pop(_key(event, "model"), None)
        if call is None and _key(event, "model") in run.refused:
            return
        if call is None:  # its start was never seen: a zero-length span still shows the call
            call = _Call(run.spans.start(f"chat {event.model}", CLIENT,
                                         self._parent(run, event), event.ts,
                                         {sc.OPERATION_NAME: sc.OP_CHAT,
                                          sc.REQUEST_MODEL: event.model}, event.id),
                         event.ts, event.model, sc.provider_name(event.model, None))
        usage = event.usage
        if run.spans is not _NO_SPANS:
            self._usage_attributes(state, run, call, event)
        self._finish(run, call, event)
        if self.metrics is not None:
            self.metrics.model_end(state.agent, call.provider, call.model or event.model,
                                   usage, state.last_call_cost, event.ts - call.start, None)

    def _usage_attributes(self, state: RunState, run: _Run, call: _Call, event: ModelEnd) -> None:
        usage = event.usage
        attrs: dict[str, Any] = {
            sc.USAGE_INPUT_TOKENS: usage.input_tokens,
            sc.USAGE_OUTPUT_TOKENS: usage.output_tokens,
            sc.LG_RUN_COST: state.cost_usd,
        }
        if usage.cache_read_tokens:
            attrs[sc.USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_tokens
        if usage.cache_write_tokens:
            attrs[sc.USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write_tokens
        if state.last_call_cost is not None:
            attrs[sc.LG_CALL_COST] = state.last_call_cost
        if state.attributes:
            _copy_numbers(state.attributes, attrs)
        if run.capture:
            attrs[sc.OUTPUT_MESSAGES] = content.output_messages(event.text, event.tool_calls)
        run.spans.set(call.span, attrs)

    def _model_error(self, state: RunState, run: _Run, event: ModelError) -> None:
        call = run.calls.pop(_key(event, "model"), None)
        if call is None:
            return  # a refused call: already ended when it was refused
        etype = error_type(event.error)
        run.spans.set(call.span, {sc.ERROR_TYPE: etype})
        run.spans.set_error(call.span, event.error[:_MAX_DESCRIPTION])
        self._finish(run, call, event)
        if self.metrics is not None:
            self.metrics.model_end(state.agent, call.provider, call.model or event.model,
                                   None, None, event.ts - call.start, etype)

    def _tool_start(self, state: RunState, run: _Run, event: ToolStart) -> None:
        attrs: dict[str, Any] = {sc.OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.TOOL_NAME: event.tool,
                                 sc.TOOL_TYPE: "function"}
        if run.capture:
            attrs[sc.TOOL_CALL_ARGUMENTS] = content.attr_value(event.args)
        span = run.spans.start(f"execute_tool {event.tool}", INTERNAL,
                               self._parent(run, event), event.ts, attrs, event.id)
        run.calls[_key(event, "tool")] = _Call(span, event.ts, event.tool)

    def _tool_end(self, state: RunState, run: _Run, event: ToolEnd | ToolError) -> None:
        call = run.calls.pop(_key(event, "tool"), None)
        if call is None:
            return
        etype = None
        attrs: dict[str, Any] = {}
        if type(event) is ToolError:
            etype = attrs[sc.ERROR_TYPE] = error_type(event.error)
            run.spans.set_error(call.span, event.error[:_MAX_DESCRIPTION])
        elif run.capture:
            attrs[sc.TOOL_CALL_RESULT] = event.output  # type: ignore[union-attr]
        # Set even when empty: it is the call's last moment with its span surely open, which
        # annotate mode needs to hand over what it kept.
        run.spans.set(call.span, attrs)
        self._finish(run, call, event)
        if self.metrics is not None:
            self.metrics.tool_end(state.agent, event.tool, etype)

    def _finish(self, run: _Run, call: _Call, event: Event) -> None:
        call.end_event, call.end_ts = event, event.ts
        run.pending = call

    def _close_pending(self, run: _Run) -> None:
        call, run.pending = run.pending, None
        run.spans.end(call.span, call.end_ts)  # type: ignore[union-attr]

    # --- verdicts -----------------------------------------------------------------------------

    def verdict(self, state: RunState, event: Event, verdict: Verdict) -> None:
        run = self._runs.get(event.run)
        if run is None or run.off:
            return
        kind = type(event)
        call: _Call | None = None
        key = None
        if run.pending is not None and run.pending.end_event is event:
            call = run.pending
        elif kind in (ModelStart, ModelError, Token, ModelEnd):
            key = _key(event, "model")
        elif kind in (ToolStart, ToolEnd, ToolError):
            key = _key(event, "tool")
        if call is None and key is not None:
            call = run.calls.get(key)
        target = call.span if call is not None else run.root
        attrs = verdict_attributes(verdict, run.capture)
        action = verdict.action
        if action is Action.ABORT and verdict.enforced:
            run.spans.set(run.root, {sc.LG_VERDICT: "abort", sc.LG_DETECTOR: verdict.detector,
                                     sc.ERROR_TYPE: sc.ABORT_ERROR_TYPE})
            run.spans.set_error(run.root, f"[{verdict.detector}] {verdict.reason}")
            run.failed = True
            run.spans.add_event(run.root, sc.EVENT_ABORT, event.ts, attrs)
            if call is not None:
                marks: dict[str, Any] = {sc.LG_VERDICT: "abort", sc.LG_DETECTOR: verdict.detector}
                if kind is ModelStart or kind is ToolStart:
                    # The call was refused before it went out: no end callback will come.
                    marks[sc.LG_REFUSED] = True
                    marks[sc.ERROR_TYPE] = sc.ABORT_ERROR_TYPE
                    run.spans.set(call.span, marks)
                    run.spans.set_error(call.span, f"refused: [{verdict.detector}] "
                                                   f"{verdict.reason}")
                    run.calls.pop(key, None)  # type: ignore[arg-type]
                    run.refused.add(key)  # type: ignore[arg-type]
                    run.spans.end(call.span, event.ts)
                    call = None
                else:
                    run.spans.set(call.span, marks)
        elif action is Action.ABORT:
            run.spans.set(run.root, {sc.LG_VERDICT: "shadow_abort"})
            run.spans.add_event(run.root, sc.EVENT_SHADOW_ABORT, event.ts, attrs)
            if call is not None:
                run.spans.set(call.span, {sc.LG_VERDICT: "shadow_abort",
                                          sc.LG_DETECTOR: verdict.detector})
        else:
            run.spans.add_event(target, sc.EVENT_WARNING, event.ts, attrs)
        if call is not None and call is run.pending:
            self._close_pending(run)
        if self.metrics is not None:
            self.metrics.verdict(state.agent, verdict)

    # --- the end of a run ---------------------------------------------------------------------

    def run_end(self, state: RunState, event: RunEnd) -> None:
        with self._lock:
            run = self._runs.pop(event.run, None)
        if run is None or run.off:
            return
        if run.pending is not None:
            self._close_pending(run)
        status = event.status
        aborted = status == "aborted"
        for call in run.calls.values():  # calls the run ended before they finished
            run.spans.set(call.span, {sc.ERROR_TYPE: sc.ABORT_ERROR_TYPE if aborted
                                      else sc.ERROR_TYPE_OTHER})
            run.spans.set_error(call.span, f"the run ended ({status}) before this call did")
            run.spans.end(call.span, event.ts)
        run.calls.clear()
        usage = state.usage
        attrs: dict[str, Any] = {
            sc.LG_RUN_STATUS: status, sc.LG_RUN_COST: state.cost_usd,
            sc.LG_MODEL_CALLS: state.model_calls, sc.LG_TOOL_CALLS: state.tool_calls,
            sc.USAGE_INPUT_TOKENS: usage.input_tokens, sc.USAGE_OUTPUT_TOKENS: usage.output_tokens,
        }
        if state.attributes:
            _copy_numbers(state.attributes, attrs)
        if status != "ok" and not run.failed:
            attrs[sc.ERROR_TYPE] = sc.ABORT_ERROR_TYPE if aborted else sc.ERROR_TYPE_OTHER
            run.spans.set_error(run.root, "the run was stopped by loopguard" if aborted
                                else "the run failed")
        run.spans.set(run.root, attrs)
        run.spans.end(run.root, event.ts)


class TreeSink:
    """A guard sink that shows every run to a span tree."""

    def __init__(self, tree: SpanTree) -> None:
        self.tree = tree

    def on_event(self, state: RunState, event: Event) -> None:
        self.tree.event(state, event)

    def on_verdict(self, state: RunState, event: Event, verdict: Verdict) -> None:
        self.tree.verdict(state, event, verdict)

    def on_run_end(self, state: RunState, event: RunEnd) -> None:
        self.tree.run_end(state, event)


def verdict_attributes(verdict: Verdict, capture: bool) -> dict[str, Any]:
    """A verdict as span-event attributes: evidence and usage flattened under loopguard.*"""
    attrs: dict[str, Any] = {
        sc.LG_DETECTOR: verdict.detector, sc.LG_ACTION: str(verdict.action),
        sc.LG_REASON: verdict.reason, sc.LG_STEP: verdict.step, sc.LG_ENFORCED: verdict.enforced,
    }
    for k, v in verdict.evidence.items():
        if v is not None:
            attrs[sc.LG_EVIDENCE_PREFIX + k] = content.evidence_value(k, v, capture)
    for k, v in verdict.usage.items():
        if v is not None:
            attrs[sc.LG_USAGE_PREFIX + k] = content.attr_value(v)
    return attrs


def _copy_numbers(source: dict[str, Any], into: dict[str, Any]) -> None:
    # Detectors publish their measurements (tokens per minute, similarity) in state.attributes.
    for k, v in source.items():
        if isinstance(v, (str, bool, int, float)) and k.startswith("loopguard."):
            into[k] = v
