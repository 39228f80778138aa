"""The one mapping from a guarded run's events and verdicts to a tree of spans.

`SpanTree` decides names, nesting, attributes, events and statuses; a `SpanBackend` makes them
real: OpenTelemetry spans (`spans.py`), annotations on another instrumentation's spans
(`annotate.py`), or plain records for Jaeger's JSON file (`jaeger.py`). Times always come from
the events' own timestamps, never from the clock at callback time.

The tree of a run: `invoke_agent {agent}` at the root (created by the run's first event, so a
handler attached only to a model still gets one), `chat {model}` per model call and
`execute_tool {tool}` per tool call, each a child of the span whose id is the event's `parent`
(a tool call, or the root).

On a backend that defers (OpenTelemetry), a call's span is created only when it is first
needed: when it ends, or when a child needs it as its parent. It is then started with its start
event's time and every attribute known by then, so a model call costs the SDK one `start_span`
and one `end` instead of a start, attribute updates and a status.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from loopguard import _safe
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
from loopguard.telemetry import content
from loopguard.telemetry import semconv as sc
from loopguard.verdict import Action

if TYPE_CHECKING:
    from loopguard.state import RunState
    from loopguard.telemetry.metrics import Metrics
    from loopguard.verdict import Verdict

INTERNAL, CLIENT = "internal", "client"
_STARTS = (ModelStart, ToolStart)
_TOOL_EVENTS = (ToolStart, ToolEnd, ToolFailed)
_GUARDRAIL_SPAN = f"{sc.OP_RUN_GUARDRAIL} loopguard"

# The handler reports errors as "ExceptionClass: message".
_ERROR_TYPE = re.compile(r"([A-Za-z_][\w.]*)(?::|$)")


class SpanBackend(Protocol):
    """Where spans go. `start` returns a handle the tree passes back to the other methods."""

    # True: `start` may be called late (when the span ends or a child needs it), with all the
    # attributes known by then; False: at the span's start event, with later ones `set`.
    defers: bool
    # False: the backend makes no spans of its own (annotate mode): no guardrail spans.
    own_spans: bool

    def start(
        self, name: str, kind: str, parent: Any, ts: float, attrs: dict[str, Any], key: str | None
    ) -> Any: ...

    def set(self, span: Any, attrs: dict[str, Any]) -> None: ...

    def add_event(self, span: Any, name: str, ts: float, attrs: dict[str, Any]) -> None: ...

    def set_error(self, span: Any, description: str) -> None: ...

    def end(self, span: Any, ts: float) -> None: ...

    def records(self, root: Any) -> bool:
        """False when the run's root span records nothing (no SDK, or not sampled): the tree
        then skips the run's spans and keeps only its metrics."""
        ...


class _Span:
    """A span of a run's tree. Until the backend's span exists (`handle`), its attributes,
    events and error are kept here, to be handed over in one go."""

    __slots__ = (
        "aborted",
        "attrs",
        "end_event",
        "end_ts",
        "error",
        "events",
        "guardrails",
        "handle",
        "key",
        "kind",
        "model",
        "name",
        "parent",
        "provider",
        "start",
        "streamed",
    )

    def __init__(
        self,
        name: str | None,
        kind: str,
        parent: _Span | None,
        start: float,
        attrs: dict[str, Any] | None,
        key: str | None,
        model: str | None = None,
        provider: str | None = None,
    ) -> None:
        self.handle: Any = None
        self.name = name
        self.kind = kind
        self.parent = parent
        self.start = start
        self.key = key
        self.attrs = attrs
        self.events: list[tuple[str, float, dict[str, Any]]] | None = None
        # Guardrail spans (children) waiting for this span to be started.
        self.guardrails: list[tuple[float, dict[str, Any]]] | None = None
        self.error: str | None = None
        self.model = model  # for the metrics of model calls
        self.provider = provider
        self.streamed = False
        self.aborted = False  # an enforced abort stopped the run at this call
        self.end_event: Event | None = None
        self.end_ts = 0.0


class _NoSpans:
    """The backend of a run whose spans record nothing."""

    defers = True

    def start(self, *args: Any) -> None:
        return None

    def set(self, *args: Any) -> None:
        pass

    add_event = set_error = end = set


_NO_SPANS = _NoSpans()


class _Run:
    __slots__ = (
        "agent",
        "calls",
        "capture",
        "defer",
        "failed",
        "metrics",
        "off",
        "own_spans",
        "pending",
        "refused",
        "root",
        "spans",
        "stopped",
        "tracing",
    )

    def __init__(self, root: _Span, spans: Any, metrics: Metrics | None, capture: bool) -> None:
        self.root = root
        self.spans = spans  # the tree's backend, or _NO_SPANS
        self.tracing = spans is not _NO_SPANS  # False: only the metrics need the calls
        self.defer = getattr(spans, "defers", False)
        self.own_spans = getattr(spans, "own_spans", True)
        self.metrics = metrics  # None when no SDK meter provider was set at the run's start
        self.off = not self.tracing and metrics is None  # nothing records: the run is ignored
        # By call key; looked up by an event's parent too, which may be None (a top-level call).
        self.calls: dict[str | None, _Span] = {}
        # A finished call whose span stays open until its verdicts (if any) are in: the guard
        # hands sinks an event, then at once its verdict, then the run's next event.
        self.pending: _Span | None = None
        self.capture = capture
        self.failed = False  # the root's error status is already set
        self.refused: set[str] = set()  # calls refused at their start: any later end is stray
        self.agent: str | None = None  # the agent's name as exported (escaped, bounded)
        self.stopped: str | None = None  # the status description of the run's aborted spans


# Recordings may lack ids; calls of a run are then matched in order, per kind (per tool).
def _model_key(event: ModelStart | ModelEnd | ModelFailed | Token) -> str:
    return event.id if event.id is not None else "model"


def _tool_key(event: ToolStart | ToolEnd | ToolFailed) -> str:
    return event.id if event.id is not None else f"tool:{event.tool}"


# The key of the call span an event belongs to: a model call's or a tool call's.
_CALL_OF: dict[type[Event], Callable[[Any], str]] = {
    ModelStart: _model_key,
    ModelFailed: _model_key,
    Token: _model_key,
    ModelEnd: _model_key,
    ToolStart: _tool_key,
    ToolEnd: _tool_key,
    ToolFailed: _tool_key,
}


def error_type(error: str) -> str:
    m = _ERROR_TYPE.match(error)
    return _safe.name(m.group(1)) if m else sc.ERROR_TYPE_OTHER


def error_description(error: str, capture: bool) -> str:
    """A failed call's status description. The error's message is content (a tool's error
    quotes its arguments, a provider's its input): without opt-in, only its type."""
    if capture:
        return _safe.text(error, content.MAX_CHARS)
    return f"{error_type(error)} (message not captured)"


def abort_description(verdict: Verdict) -> str:
    """The status description of every span an abort ends, the root's and the calls'."""
    detector = _safe.name(verdict.detector)
    return f"loopguard stopped the run: [{detector}] {_safe.text(verdict.reason)}"


class SpanTree:
    """Builds the span tree of every run it is shown, on one backend. Thread-safe per run (the
    guard calls sinks under the run's lock); runs are independent."""

    def __init__(self, backend: SpanBackend, metrics: Metrics | None = None) -> None:
        self.backend = backend
        self.metrics = metrics
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._on: dict[type[Event], Callable[[RunState, _Run, Any], None]] = {
            RunStart: self._run_start,
            ModelStart: self._model_start,
            ModelEnd: self._model_end,
            ModelFailed: self._model_error,
            ToolStart: self._tool_start,
            ToolEnd: self._tool_end,
            ToolFailed: self._tool_end,
        }

    @property
    def open_runs(self) -> int:
        return len(self._runs)

    # --- spans, created now or when first needed ----------------------------------------------

    def _span(
        self,
        run: _Run,
        name: str,
        kind: str,
        parent: _Span,
        ts: float,
        attrs: dict[str, Any],
        key: str | None,
        model: str | None = None,
        provider: str | None = None,
    ) -> _Span:
        span = _Span(name, kind, parent, ts, attrs, key, model, provider)
        if not run.defer:
            self._handle(run, span)
        return span

    def _handle(self, run: _Run, span: _Span) -> Any:
        """The backend's span, started now (with all that is known of it) if not yet."""
        handle = span.handle
        if handle is None:
            spans = run.spans
            parent = span.parent
            if parent is not None:
                parent = parent.handle if parent.handle is not None else self._handle(run, parent)
            handle = span.handle = spans.start(
                span.name, span.kind, parent, span.start, span.attrs, span.key
            )
            span.attrs = None  # from now on attributes go to the backend
            if span.events is not None:
                for name, ts, attrs in span.events:
                    spans.add_event(handle, name, ts, attrs)
                span.events = None
            if span.error is not None:
                spans.set_error(handle, span.error)
            if span.guardrails is not None:
                for ts, attrs in span.guardrails:
                    spans.end(spans.start(_GUARDRAIL_SPAN, INTERNAL, handle, ts, attrs, None), ts)
                span.guardrails = None
        return handle

    def _set(self, run: _Run, span: _Span, attrs: dict[str, Any]) -> None:
        kept = span.attrs  # None once the backend's span is started
        if kept is not None:
            kept.update(attrs)
        else:
            run.spans.set(span.handle, attrs)

    def _add_event(
        self, run: _Run, span: _Span, name: str, ts: float, attrs: dict[str, Any]
    ) -> None:
        if span.handle is None:
            if span.events is None:
                span.events = []
            span.events.append((name, ts, attrs))
        else:
            run.spans.add_event(span.handle, name, ts, attrs)

    def _set_error(self, run: _Run, span: _Span, description: str) -> None:
        if span.handle is None:
            span.error = description  # the last one wins, as with a span's status
        else:
            run.spans.set_error(span.handle, description)

    def _end(self, run: _Run, span: _Span, ts: float) -> None:
        run.spans.end(self._handle(run, span), ts)

    # --- events -------------------------------------------------------------------------------

    def event(self, state: RunState, event: Event) -> None:
        kind = type(event)
        if kind is Token:  # the hot path of streaming: one dict lookup
            run = self._runs.get(event.run)
            if run is None:
                return
            call = run.calls.get(event.id or "model")
            if call is not None and not call.streamed:
                call.streamed = True
                if run.tracing:
                    self._set(
                        run,
                        call,
                        {
                            sc.RESPONSE_TIME_TO_FIRST_CHUNK: _safe.sig(
                                max(0.0, event.ts - call.start)
                            )
                        },
                    )
            return
        run = self._runs.get(event.run)
        opened = run is None
        if run is None:
            if kind is RunEnd:
                return
            run = self._open(state, event)
        if run.off:
            return
        if run.pending is not None:
            self._close_pending(run, run.pending)
        if opened and kind is RunStart:
            return  # _open did what there is to do
        handler = self._on.get(kind)
        if handler is not None:
            handler(state, run, event)

    def _open(self, state: RunState, event: Event) -> _Run:
        agent = _safe.name(state.agent) if state.agent is not None else None
        attrs: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_INVOKE_AGENT,
            sc.LG_RUN_ID: state.run,
            sc.LG_MODE: state.policy.mode,
        }
        if agent:
            attrs[sc.AGENT_NAME] = agent
        if state.name:
            attrs[sc.LG_RUN_NAME] = _safe.name(state.name)
        thread = state.meta.get("thread_id") or state.meta.get("conversation_id")
        if thread is not None:
            attrs[sc.CONVERSATION_ID] = _safe.name(thread)
        name = f"invoke_agent {agent}" if agent else "invoke_agent"
        # The root is started at once: whether it records (is sampled) decides the run's work.
        root = _Span(name, INTERNAL, None, event.ts, None, state.run)
        root.handle = self.backend.start(
            name, INTERNAL, self._enclosing(event), event.ts, attrs, state.run
        )
        spans = self.backend if self.backend.records(root.handle) else _NO_SPANS
        metrics = self.metrics if self.metrics is not None and self.metrics.live() else None
        run = _Run(root, spans, metrics, content.capture_enabled(state.policy))
        run.agent = agent
        with self._lock:
            self._runs[event.run] = run
        return run

    def _enclosing(self, event: Event) -> Any:
        """The span a sub-agent's run nests in (its `run_start` names the enclosing run): that
        run's latest open tool call, which the sub-agent runs inside, else its root. None for
        a top-level run, which joins whatever trace is current."""
        if type(event) is not RunStart or event.parent is None:
            return None
        outer = self._runs.get(event.parent)
        if outer is None or not outer.tracing:
            return None
        calls = list(outer.calls.values())  # a copy: that run's thread may be adding to it
        tool = next((c for c in reversed(calls) if c.kind == INTERNAL), None)
        return self._handle(outer, tool) if tool is not None else outer.root.handle

    def _run_start(self, state: RunState, run: _Run, event: RunStart) -> None:
        if state.name and run.tracing:  # a run_start after the run's first event
            self._set(run, run.root, {sc.LG_RUN_NAME: _safe.name(state.name)})

    def _parent(self, run: _Run, event: Event) -> _Span:
        return run.calls.get(event.parent, run.root)

    def _model_start(self, state: RunState, run: _Run, event: ModelStart) -> None:
        provider = sc.provider_name(event.model, event.meta)
        model = _safe.name(event.model)
        if not run.tracing:  # only the metrics need the call
            run.calls[_model_key(event)] = _Span(
                None, CLIENT, None, event.ts, None, None, model, provider
            )
            return
        attrs: dict[str, Any] = {sc.OPERATION_NAME: sc.OP_CHAT, sc.REQUEST_MODEL: model}
        if provider:
            attrs[sc.PROVIDER_NAME] = provider
        if event.max_tokens is not None:
            attrs[sc.REQUEST_MAX_TOKENS] = event.max_tokens
        if run.capture:
            attrs[sc.INPUT_MESSAGES] = content.input_messages(event.messages)
        run.calls[event.id if event.id is not None else "model"] = self._span(
            run,
            f"chat {model}",
            CLIENT,
            self._parent(run, event),
            event.ts,
            attrs,
            event.id,
            model,
            provider,
        )

    def _model_end(self, state: RunState, run: _Run, event: ModelEnd) -> None:
        key = event.id if event.id is not None else "model"  # _key, inlined on the hot path
        call = run.calls.pop(key, None)
        if call is None:
            if key in run.refused:
                return
            # Its start was never seen: a zero-length span still shows the call.
            provider = sc.provider_name(event.model, None)
            model = _safe.name(event.model)
            if run.tracing:
                call = self._span(
                    run,
                    f"chat {model}",
                    CLIENT,
                    self._parent(run, event),
                    event.ts,
                    {sc.OPERATION_NAME: sc.OP_CHAT, sc.REQUEST_MODEL: model},
                    event.id,
                    model,
                    provider,
                )
            else:
                call = _Span(None, CLIENT, None, event.ts, None, None, model, provider)
        if run.tracing:
            self._usage_attributes(state, run, call, event, event.usage)
            self._finish(run, call, event)
        if run.metrics is not None:
            run.metrics.model_end(
                run.agent,
                call.provider,
                call.model or _safe.name(event.model),
                event.usage,
                state.last_call_cost,
                event.ts - call.start,
                None,
            )

    def _usage_attributes(
        self, state: RunState, run: _Run, call: _Span, event: ModelEnd | ModelFailed, usage: Usage
    ) -> None:
        # Straight into the span-to-be's attributes when it is not started yet.
        kept = call.attrs  # None once the backend's span is started
        attrs = kept if kept is not None else {}
        attrs[sc.USAGE_INPUT_TOKENS] = usage.input_tokens
        attrs[sc.USAGE_OUTPUT_TOKENS] = usage.output_tokens
        attrs[sc.LG_RUN_COST] = _safe.sig(state.cost_usd)
        if usage.cache_read_tokens:
            attrs[sc.USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_tokens
        if usage.cache_write_tokens:
            attrs[sc.USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write_tokens
        if state.last_call_cost is not None:
            attrs[sc.LG_CALL_COST] = _safe.sig(state.last_call_cost)
        if state.attributes:
            _copy_numbers(state.attributes, attrs)
        if type(event) is ModelFailed:
            # A call cut off (a stream stopped mid-answer) is charged what it streamed, as the
            # adapter estimated it: the provider never reported its usage.
            attrs[sc.LG_USAGE_ESTIMATED] = True
        else:
            if event.response_model is not None:
                attrs[sc.RESPONSE_MODEL] = _safe.name(event.response_model)
            if event.finish_reason is not None:
                attrs[sc.RESPONSE_FINISH_REASONS] = (_safe.name(event.finish_reason),)
            if run.capture:
                attrs[sc.OUTPUT_MESSAGES] = content.output_messages(event.text, event.tool_calls)
        if kept is None:
            run.spans.set(call.handle, attrs)

    def _model_error(self, state: RunState, run: _Run, event: ModelFailed) -> None:
        call = run.calls.pop(_model_key(event), None)
        if call is None:
            return  # a refused call: already ended when it was refused
        etype = error_type(event.error)
        usage = event.usage
        if run.tracing:
            if usage is not None:
                self._usage_attributes(state, run, call, event, usage)
            if not call.aborted:  # a call the abort cut off keeps the abort's status
                self._set(run, call, {sc.ERROR_TYPE: etype})
                self._set_error(run, call, error_description(event.error, run.capture))
            self._finish(run, call, event)
        if run.metrics is not None:
            run.metrics.model_end(
                run.agent,
                call.provider,
                call.model or _safe.name(event.model),
                usage,
                state.last_call_cost if usage is not None else None,
                event.ts - call.start,
                etype,
            )

    def _tool_start(self, state: RunState, run: _Run, event: ToolStart) -> None:
        if not run.tracing:  # only the metrics need the call
            run.calls[_tool_key(event)] = _Span(None, INTERNAL, None, event.ts, None, None)
            return
        tool = _safe.name(event.tool)
        attrs: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_EXECUTE_TOOL,
            sc.TOOL_NAME: tool,
            sc.TOOL_TYPE: "function",
        }
        if event.call_id is not None:
            attrs[sc.TOOL_CALL_ID] = _safe.name(event.call_id)
        if run.capture:
            attrs[sc.TOOL_CALL_ARGUMENTS] = content.clip(content.attr_value(event.args))
        run.calls[_tool_key(event)] = self._span(
            run,
            f"execute_tool {tool}",
            INTERNAL,
            self._parent(run, event),
            event.ts,
            attrs,
            event.id,
        )

    def _tool_end(self, state: RunState, run: _Run, event: ToolEnd | ToolFailed) -> None:
        call = run.calls.pop(_tool_key(event), None)
        if call is None:
            return
        if type(event) is ToolFailed:
            error: str | None = event.error
            etype = error_type(event.error)
        else:
            error = etype = None
        if run.tracing:
            kept = call.attrs  # None once the backend's span is started
            attrs = kept if kept is not None else {}
            if error is not None:
                attrs[sc.ERROR_TYPE] = etype
                self._set_error(run, call, error_description(error, run.capture))
            elif run.capture and type(event) is ToolEnd:
                attrs[sc.TOOL_CALL_RESULT] = content.clip(event.output)
            if kept is None:
                # Set even when empty: it is the call's last moment with its span surely open,
                # which annotate mode needs to hand over what it kept.
                run.spans.set(call.handle, attrs)
            self._finish(run, call, event)
        if run.metrics is not None:
            run.metrics.tool_end(run.agent, _safe.name(event.tool), etype)

    def _finish(self, run: _Run, call: _Span, event: Event) -> None:
        call.end_event, call.end_ts = event, event.ts
        run.pending = call

    def _close_pending(self, run: _Run, call: _Span) -> None:
        """End `call`, the run's pending call."""
        run.pending = None
        run.spans.end(self._handle(run, call), call.end_ts)

    # --- verdicts -----------------------------------------------------------------------------

    def verdict(self, state: RunState, event: Event, verdict: Verdict) -> None:
        run = self._runs.get(event.run)
        if run is None or run.off:
            return
        if run.tracing:
            self._mark(run, event, verdict)
        if run.metrics is not None:
            run.metrics.verdict(run.agent, verdict)

    def _mark(self, run: _Run, event: Event, verdict: Verdict) -> None:
        """A verdict on the spans: an event and a guardrail span, marks, and for an abort the
        error status of the root and of the call it stopped."""
        kind = type(event)
        call: _Span | None = None
        key = None
        if run.pending is not None and run.pending.end_event is event:
            call = run.pending
        elif kind in _CALL_OF:
            key = _CALL_OF[kind](event)
        if call is None and key is not None:
            call = run.calls.get(key)
        root = run.root
        attrs = verdict_attributes(verdict, run.capture)
        action = verdict.action
        if run.own_spans:
            self._guardrail(run, call if call is not None else root, event, verdict)
        if action is Action.ABORT and verdict.enforced:
            stopped = run.stopped = abort_description(verdict)
            marks: dict[str, Any] = {
                sc.LG_VERDICT: "abort",
                sc.LG_DETECTOR: _safe.name(verdict.detector),
                sc.ERROR_TYPE: sc.ABORT_ERROR_TYPE,
            }
            self._set(run, root, marks)
            self._set_error(run, root, stopped)
            run.failed = True
            self._add_event(run, root, sc.EVENT_ABORT, event.ts, attrs)
            if call is not None:
                # Wherever the abort is raised, the call it stops shows it: refused before it
                # went out (a start), or its result or stream withheld from the agent.
                call.aborted = True
                self._set(run, call, {**marks, sc.LG_REFUSED: True})
                self._set_error(run, call, stopped)
                if key is not None and (kind is ModelStart or kind is ToolStart):
                    # No end callback will come for a call that never went out.
                    run.calls.pop(key, None)
                    run.refused.add(key)
                    self._end(run, call, event.ts)
                    call = None
        elif action is Action.ABORT:
            self._set(run, root, {sc.LG_VERDICT: "shadow_abort"})
            self._add_event(run, root, sc.EVENT_SHADOW_ABORT, event.ts, attrs)
            if call is not None:
                self._set(
                    run,
                    call,
                    {sc.LG_VERDICT: "shadow_abort", sc.LG_DETECTOR: _safe.name(verdict.detector)},
                )
        else:
            self._add_event(
                run, call if call is not None else root, sc.EVENT_WARNING, event.ts, attrs
            )
        if call is not None and call is run.pending:
            self._close_pending(run, call)

    def _guardrail(self, run: _Run, parent: _Span, event: Event, verdict: Verdict) -> None:
        """The verdict as the GenAI conventions' guardrail run: a zero-length
        `run_guardrail loopguard` span under the call it judged (or the root)."""
        kind = type(event)
        abort = verdict.action is Action.ABORT
        attrs: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_RUN_GUARDRAIL,
            sc.GUARDRAIL_COMPONENT_NAME: "loopguard",
            sc.GUARDRAIL_TARGET_TYPE: "input" if kind in _STARTS else "output",
            sc.GUARDRAIL_TARGET_SUBTYPE: "tool_call" if kind in _TOOL_EVENTS else "llm",
            sc.GUARDRAIL_VERDICT_TYPE: "deny" if abort else "warn",
            sc.GUARDRAIL_ACTION_TYPE: (
                ("block" if verdict.enforced else "audit") if abort else "allow"
            ),
            sc.GUARDRAIL_POLICY_ID: _safe.name(verdict.detector),
            sc.GUARDRAIL_POLICY_RULE_ID: _safe.name(
                verdict.evidence.get("limit") or verdict.detector
            ),
            sc.GUARDRAIL_VERDICT_REASON: _safe.text(verdict.reason),
            sc.LG_ACTION: str(verdict.action),
        }
        target = getattr(event, "call_id", None) or event.id  # the model's id of a tool call
        if target is not None:
            attrs[sc.GUARDRAIL_TARGET_ID] = _safe.name(target)
        if run.capture:
            judged = _judged_content(event)
            if judged is not None:
                attrs[sc.GUARDRAIL_CONTENT_INPUT] = judged
        if parent.handle is None:  # started with its parent, which is not started yet
            if parent.guardrails is None:
                parent.guardrails = []
            parent.guardrails.append((event.ts, attrs))
        else:
            run.spans.end(
                run.spans.start(_GUARDRAIL_SPAN, INTERNAL, parent.handle, event.ts, attrs, None),
                event.ts,
            )

    # --- the end of a run ---------------------------------------------------------------------

    def run_end(self, state: RunState, event: RunEnd) -> None:
        with self._lock:
            run = self._runs.pop(event.run, None)
        if run is None or not run.tracing:
            return
        if run.pending is not None:
            self._close_pending(run, run.pending)
        status = event.status
        aborted = status == "aborted"
        stopped = run.stopped
        if aborted and stopped is None and state.aborted is not None:
            stopped = abort_description(state.aborted)
        for call in run.calls.values():  # calls the run ended before they finished
            if not call.aborted:
                self._set(
                    run,
                    call,
                    {sc.ERROR_TYPE: sc.ABORT_ERROR_TYPE if aborted else sc.ERROR_TYPE_OTHER},
                )
                self._set_error(
                    run,
                    call,
                    stopped
                    if aborted and stopped is not None
                    else f"the run ended ({status}) before this call did",
                )
            self._end(run, call, event.ts)
        run.calls.clear()
        usage = state.usage
        attrs: dict[str, Any] = {
            sc.LG_RUN_STATUS: status,
            sc.LG_RUN_COST: _safe.sig(state.cost_usd),
            sc.LG_MODEL_CALLS: state.model_calls,
            sc.LG_TOOL_CALLS: state.tool_calls,
            sc.USAGE_INPUT_TOKENS: usage.input_tokens,
            sc.USAGE_OUTPUT_TOKENS: usage.output_tokens,
        }
        if state.attributes:
            _copy_numbers(state.attributes, attrs)
        root = run.root
        if status != "ok" and not run.failed:
            attrs[sc.ERROR_TYPE] = sc.ABORT_ERROR_TYPE if aborted else sc.ERROR_TYPE_OTHER
            self._set_error(
                run,
                root,
                (stopped or "loopguard stopped the run") if aborted else "the run failed",
            )
        self._set(run, root, attrs)
        self._end(run, root, event.ts)


class TreeSink:
    """A guard sink that shows every run to a span tree."""

    # Of a stream it reads only the first chunk (time to first chunk), which comes alone.
    token_pieces = True

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
        sc.LG_DETECTOR: _safe.name(verdict.detector),
        sc.LG_ACTION: str(verdict.action),
        sc.LG_REASON: _safe.text(verdict.reason),
        sc.LG_STEP: verdict.step,
        sc.LG_ENFORCED: verdict.enforced,
    }
    for k, v in verdict.evidence.items():
        if v is not None:
            attrs[sc.LG_EVIDENCE_PREFIX + k] = content.evidence_value(k, v, capture)
    for k, v in verdict.usage.items():
        if v is not None:
            attrs[sc.LG_USAGE_PREFIX + k] = (
                _safe.sig(v) if type(v) is float else content.attr_value(v)
            )
    return attrs


def _judged_content(event: Event) -> Any:
    """What a verdict judged, for the opt-in content attribute of its guardrail span."""
    for field in ("args", "text", "output", "error"):
        value = getattr(event, field, None)
        if value:
            return content.attr_value(content.clip(value))
    return None


def _copy_numbers(source: dict[str, Any], into: dict[str, Any]) -> None:
    # Detectors publish their measurements (tokens per minute, similarity) in state.attributes.
    for k, v in source.items():
        if isinstance(v, (float, int, str)) and k.startswith("loopguard."):  # bool is an int
            into[k] = _safe.sig(v) if type(v) is float else _safe.name(v) if type(v) is str else v
