"""LangChain v1 agent middleware: the same guard, from inside `create_agent`.

List it last in `middleware=[...]`: the last middleware wraps the model call most closely, so
every real provider call (each retry of `ModelRetryMiddleware`, each fallback model) passes
through it and is counted. Tool calls are checked before they run.

With `exit_behavior="interrupt"` a stop pauses the agent with LangGraph's `interrupt()` instead
of ending it, and a person decides (see `Decision`). LangGraph resumes a paused node by running
it again from its start, so the pause never comes after a paid call is made again: a model
answer (or tool result) the guard stopped on is held here, and handed back on resume instead of
calling the model (or tool) a second time.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Annotated, Any, Literal, NoReturn, NotRequired, Unpack, get_args

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ModelRequest,
    ModelResponse,
    PrivateStateAttr,
)
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.errors import GraphBubbleUp

from loopguard.detectors import RUNAWAY
from loopguard.errors import ConfigError
from loopguard.events import (
    Event,
    ModelEnd,
    ModelFailed,
    ModelStart,
    RunEnd,
    RunStart,
    ToolEnd,
    ToolFailed,
    ToolStart,
)
from loopguard.guard import Guard, enclosing_owner
from loopguard.integrations._convert import (
    agent_of,
    labels_of,
    messages_of,
    response_info,
    stop_message,
    text_of,
    tool_calls_of,
    usage_of,
)
from loopguard.integrations._options import AdapterOptions, adapter_guard
from loopguard.verdict import LoopGuardAbort, Verdict

logger = logging.getLogger("loopguard")

ExitBehavior = Literal["error", "end", "interrupt"]
_EXITS: tuple[str, ...] = get_args(ExitBehavior)
_MAX_PAUSED = 1024  # runs with a held answer or a decision kept (oldest forgotten first)
_FINISH_NOTE = (
    "[loopguard] A person lets this run finish: give your final answer now, without tools."
)


# The guarded run whose tool is running: a sub-agent started inside the tool (called as a
# tool) nests its run in it. A context variable reaches sync, async and streamed tools alike,
# and LangChain copies it into the threads that run sync tools.
_ENCLOSING_RUN: ContextVar[str | None] = ContextVar("loopguard_enclosing_run", default=None)


class LoopGuardState(AgentState):
    loopguard_run: NotRequired[Annotated[str, PrivateStateAttr]]


class LoopGuardMiddleware(AgentMiddleware):
    """Guards a `create_agent` agent.

    Args:
        guard: the engine to use; several adapters may share one.
        exit_behavior: "error" raises `LoopGuardAbort` to the caller; "end" makes the agent
            return normally, its last message saying what was stopped and why; "interrupt"
            pauses the agent with LangGraph's `interrupt()` (it needs a checkpointer): the
            interrupt's value says what was stopped (`pause_payload`), and
            `Command(resume=...)` carries the decision: "continue" (optionally with `limits`
            raised for this run only), "finish" (one more model call, no tools, then stop) or
            "stop" (end as "end" does).
        nudge: when a detector asks for it, tell the model once (per detector and run) what it
            is repeating before the detector escalates to an abort.
        **options: policy, agent, record_to, record_content, telemetry, tracer_provider,
            meter_provider: see `loopguard.integrations.AdapterOptions`.
    """

    state_schema = LoopGuardState

    def __init__(
        self,
        guard: Guard | None = None,
        *,
        exit_behavior: ExitBehavior = "error",
        nudge: bool = True,
        **options: Unpack[AdapterOptions],
    ) -> None:
        super().__init__()
        if exit_behavior not in _EXITS:
            raise ValueError(
                f"exit_behavior must be one of {', '.join(map(repr, _EXITS))}, "
                f"got {exit_behavior!r}"
            )
        self.guard = adapter_guard(guard, options, type(self).__name__)
        self.agent = options.get("agent")
        self.exit_behavior = exit_behavior
        self.nudge = nudge
        # Interrupt mode, per run: what was held back when a stop paused the run (a model
        # response, or a tool result by call id), and what a person decided ("stop", "finish").
        self._held: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._decided: OrderedDict[str, str] = OrderedDict()
        self._paused_lock = threading.Lock()

    # --- the run ----------------------------------------------------------------------------

    def before_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        run = str(uuid.uuid4())
        metadata = _config_metadata()
        agent = self.agent or agent_of(metadata)
        start = RunStart(
            run=run,
            agent=agent,
            id=run,
            parent=_ENCLOSING_RUN.get(),
            name=agent or "agent",
            meta=labels_of(metadata),
        )
        try:
            self._send(start)
        except LoopGuardAbort as exc:  # nested deeper than max_depth, or in a stopped run
            self._raise(exc)
        return {"loopguard_run": run}

    async def abefore_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return self.before_agent(state, runtime)

    def after_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        run = state.get("loopguard_run")
        if run is not None:
            guarded = self.guard.get_run(run)
            aborted = guarded is not None and guarded.aborted is not None
            # With exit_behavior="end" an aborted run ends gracefully, on purpose. With "error",
            # a wrapper that swallowed the abort (ModelRetryMiddleware's on_failure="continue")
            # cannot make the run end normally: the guard raises the abort again at "ok".
            status = "aborted" if aborted and self.exit_behavior != "error" else "ok"
            self._forget(run)
            self._send(RunEnd(run=run, agent=self._agent(run), id=run, status=status))
        return None

    async def aafter_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return self.after_agent(state, runtime)

    # --- model calls ------------------------------------------------------------------------

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> Any:
        request, call, stopped = self._before_model(request)
        if stopped is not None:
            return stopped
        try:
            response = handler(request)
        except LoopGuardAbort as exc:
            return self._model_failed(call, exc, exc)
        except Exception as exc:
            self._model_failed(call, exc, None)
            raise
        return self._after_model(call, response)

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> Any:
        request, call, stopped = self._before_model(request)
        if stopped is not None:
            return stopped
        try:
            response = await handler(request)
        except LoopGuardAbort as exc:
            return self._model_failed(call, exc, exc)
        except Exception as exc:
            self._model_failed(call, exc, None)
            raise
        return self._after_model(call, response)

    def _before_model(self, request: ModelRequest) -> tuple[ModelRequest, _Call, Any]:
        run = self._run_of(request.state)
        held = self._take_held(run, "model") if self.exit_behavior == "interrupt" else None
        ls = _ls_params(request.model)  # once per call: both the id and max_tokens come from it
        model = _model_name(request.model, ls)
        messages = list(request.messages)
        if request.system_message is not None:
            messages.insert(0, request.system_message)
        call = _Call(run, self._agent(run), str(uuid.uuid4()), model)
        event = ModelStart(
            run=run,
            agent=call.agent,
            id=call.id,
            parent=run,
            model=model,
            messages=messages_of(messages),
            max_tokens=_max_tokens(request, ls),
            meta=labels_of(_config_metadata()),
        )
        while True:
            try:
                self._send(event)
                break
            except LoopGuardAbort as exc:
                if self.exit_behavior != "interrupt":
                    return request, call, self._stop_model(exc)
                decision = self._pause(exc.verdict)
                if decision == "stop":
                    return request, call, self._stop_model(exc)
                if held is not None:
                    # The stop came on this answer, after the call: it is not made again.
                    return request, call, held
                # Judged again, under the limits the person set.
        if self._decided.get(run) == "finish":
            request = request.override(messages=[*request.messages, HumanMessage(_FINISH_NOTE)])
        # A nudge asked for now, or since the last call, reaches the model with this call.
        if self.nudge:
            verdict = self.guard.take_nudge(run)
            if verdict is not None:
                text = f"[loopguard] {verdict.evidence.get('message') or verdict.reason}"
                request = request.override(messages=[*request.messages, HumanMessage(text)])
        return request, call, None

    def _after_model(self, call: _Call, response: Any) -> Any:
        message = _ai_message(response)
        response_model, finish_reason = response_info(message)
        event = ModelEnd(
            run=call.run,
            agent=call.agent,
            id=call.id,
            parent=call.run,
            model=call.model,
            text=text_of(getattr(message, "content", "")),
            tool_calls=tool_calls_of(message),
            usage=usage_of(message),
            response_model=response_model,
            finish_reason=finish_reason,
        )
        try:
            self._send(event)
        except LoopGuardAbort as exc:
            if self.exit_behavior == "interrupt":
                # Held for the resume, which runs this node again from its start.
                self._hold(call.run, "model", response)
                return self._stop_model(exc, pause=True)
            return self._stop_model(exc)  # the call was made; its tool calls are not run
        return response

    def _model_failed(self, call: _Call, exc: BaseException, abort: LoopGuardAbort | None) -> Any:
        try:
            self._send(
                ModelFailed(
                    run=call.run,
                    agent=call.agent,
                    id=call.id,
                    parent=call.run,
                    model=call.model,
                    error=f"{type(exc).__name__}: {exc}",
                )
            )
        except LoopGuardAbort as late:
            abort = abort or late
        if abort is not None:
            return self._stop_model(abort)
        return None

    def _raise(self, exc: LoopGuardAbort) -> NoReturn:
        """Raise the abort out of the agent. The run is over: its state is freed now (the
        guard keeps refusing it if anything catches the abort and carries on)."""
        run = exc.verdict.run
        if run is not None:
            self.guard.end_run(run, "aborted")
        raise exc

    def _stop_model(self, exc: LoopGuardAbort, *, pause: bool = False) -> Any:
        if self.exit_behavior == "error":
            self._raise(exc)
        if pause and self._pause(exc.verdict) != "stop":
            held = self._take_held(exc.verdict.run or "", "model")
            if held is not None:
                return held  # the answer the guard stopped on, let through
        return AIMessage(
            content=stop_message(exc.verdict),
            response_metadata={"loopguard": exc.verdict.to_dict()},
        )

    # --- tool calls -------------------------------------------------------------------------

    def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        call, stopped = self._before_tool(request)
        if stopped is not None:
            return stopped
        enclosing = _ENCLOSING_RUN.set(call.run)
        try:
            result = handler(request)
        except LoopGuardAbort as exc:
            self._unwind(call.run, exc)
            raise
        except Exception as exc:
            if not isinstance(exc, GraphBubbleUp):  # a pause (interrupt) is not a failure
                self._tool_failed(call, exc)
            raise
        finally:
            _ENCLOSING_RUN.reset(enclosing)
        return self._after_tool(call, request, result)

    async def awrap_tool_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        call, stopped = self._before_tool(request)
        if stopped is not None:
            return stopped
        enclosing = _ENCLOSING_RUN.set(call.run)
        try:
            result = await handler(request)
        except LoopGuardAbort as exc:
            self._unwind(call.run, exc)
            raise
        except Exception as exc:
            if not isinstance(exc, GraphBubbleUp):  # a pause (interrupt) is not a failure
                self._tool_failed(call, exc)
            raise
        finally:
            _ENCLOSING_RUN.reset(enclosing)
        return self._after_tool(call, request, result)

    def _unwind(self, run: str, exc: LoopGuardAbort) -> None:
        """A sub-agent's abort leaves through this agent's tool and ends this run on its way
        to the caller (after_agent will not run): its state is freed now."""
        if exc.verdict.run != run:
            self.guard.end_run(run, "aborted")

    def _before_tool(self, request: Any) -> tuple[_Call, Any]:
        tool_call = request.tool_call
        run = self._run_of(request.state)
        call = _Call(
            run,
            self._agent(run),
            str(tool_call.get("id") or uuid.uuid4()),
            tool_call.get("name") or "tool",
        )
        interrupting = self.exit_behavior == "interrupt"
        held = self._take_held(run, f"tool:{call.id}") if interrupting else None
        event = ToolStart(
            run=run,
            agent=call.agent,
            id=call.id,
            parent=run,
            tool=call.model,
            args=tool_call.get("args") or {},
            call_id=tool_call.get("id") or None,
        )
        while True:
            try:
                self._send(event)
                return call, None
            except LoopGuardAbort as exc:
                if self.exit_behavior == "error":
                    self._raise(exc)
                if interrupting and self._decided.get(run) is None:
                    if self._pause(exc.verdict) != "stop":
                        if held is not None:
                            return call, held  # the tool ran before the pause: not again
                        continue  # judged again, under the limits the person set
                # The tool does not run; the next model call is refused and ends the agent.
                return call, ToolMessage(
                    content=stop_message(exc.verdict),
                    tool_call_id=tool_call.get("id") or "",
                    name=call.model,
                    status="error",
                )

    def _after_tool(self, call: _Call, request: Any, result: Any) -> Any:
        status = getattr(result, "status", "success")
        content = text_of(getattr(result, "content", ""))
        event: Event = (
            ToolFailed(run=call.run, agent=call.agent, id=call.id, tool=call.model, error=content)
            if status == "error"
            else ToolEnd(
                run=call.run, agent=call.agent, id=call.id, tool=call.model, output=content
            )
        )
        try:
            self._send(event)
        except LoopGuardAbort as exc:
            if self.exit_behavior == "error":
                self._raise(exc)
            if self.exit_behavior == "interrupt" and self._decided.get(call.run) is None:
                self._hold(call.run, f"tool:{call.id}", result)
                if self._pause(exc.verdict) != "stop":
                    self._take_held(call.run, f"tool:{call.id}")
                    return result
            return ToolMessage(
                content=f"{content}\n\n{stop_message(exc.verdict)}",
                tool_call_id=request.tool_call.get("id") or "",
                name=call.model,
            )
        return result

    def _tool_failed(self, call: _Call, exc: BaseException) -> None:
        self._send(
            ToolFailed(
                run=call.run,
                agent=call.agent,
                id=call.id,
                tool=call.model,
                error=f"{type(exc).__name__}: {exc}",
            )
        )

    # --- pause and resume (exit_behavior="interrupt") ---------------------------------------

    def _pause(self, verdict: Verdict) -> str:
        """Pause the agent for a person's decision and apply it. Returns "continue",
        "finish" or "stop". A run a person already let finish, or stopped, is not asked again:
        its next stop ends it."""
        run = verdict.run or ""
        if self._decided.get(run) is not None:
            return "stop"
        from langgraph.types import interrupt

        payload = pause_payload(verdict)
        while True:
            try:
                action, limits = _decision(interrupt(payload))
                if action == "finish":
                    limits = {**(limits or {}), **self._finish_limits(run)}
                if action != "stop":
                    self.guard.resume(run, limits=limits)
                break
            except ConfigError as exc:
                # LangGraph keeps every resume value a node was given, so raising here would
                # leave the run stuck on the bad one: ask again, saying what was wrong.
                payload = {**payload, "error": str(exc)}
        if action != "continue":
            with self._paused_lock:
                self._decided[run] = action
                _bound(self._decided)
        return action

    def _finish_limits(self, run: str) -> dict[str, Any]:
        """One more model call and no more tool calls, loop detectors off, money caps kept."""
        state = self.guard.get_run(run)
        if state is not None:  # a sub-agent stopped by an enclosing run's cap: that run's counts
            state = enclosing_owner(state) or state
        calls, tools = (state.model_calls, state.tool_calls) if state is not None else (0, 0)
        limits: dict[str, Any] = {"max_model_calls": calls + 1, "max_tool_calls": tools}
        for section in RUNAWAY:
            limits[section] = {"enabled": False}
        return limits

    def _hold(self, run: str, key: str, value: Any) -> None:
        with self._paused_lock:
            self._held.setdefault(run, {})[key] = value
            self._held.move_to_end(run)
            _bound(self._held)

    def _take_held(self, run: str, key: str) -> Any:
        with self._paused_lock:
            found = self._held.get(run)
            return found.pop(key, None) if found else None

    def _forget(self, run: str) -> None:
        with self._paused_lock:
            self._held.pop(run, None)
            self._decided.pop(run, None)

    # --- helpers ----------------------------------------------------------------------------

    def _send(self, event: Event) -> Verdict | None:
        try:
            return self.guard.process(event)
        except LoopGuardAbort:
            raise
        except Exception:
            logger.exception("loopguard: internal error in the middleware (fail open)")
            return None

    def _run_of(self, state: Any) -> str:
        run = state.get("loopguard_run") if isinstance(state, dict) else None
        if run is None:
            # before_agent did not run (the middleware was added to a graph by hand):
            # each call is then its own run, so say so once.
            logger.warning(
                "loopguard: LoopGuardMiddleware saw no run id in the agent state; "
                "add it with create_agent(middleware=[...])"
            )
            run = str(uuid.uuid4())
        return run

    def _agent(self, run: str) -> str | None:
        state = self.guard.get_run(run)
        return state.agent if state is not None else self.agent


Decision = Literal["continue", "finish", "stop"]
"""What a person answers a pause with, as `Command(resume=...)`: the word alone, or
`{"action": "continue", "limits": {"max_cost_usd": 1.0}}` to raise limits for this run only
(keys as in a policy file)."""
_DECISIONS: tuple[str, ...] = get_args(Decision)


def pause_payload(verdict: Verdict) -> dict[str, Any]:
    """The value of the interrupt a stop pauses on: what stopped the run and what it spent.
    It is kept in the checkpointer, so it is the verdict as it may leave the process
    (`Verdict.to_dict`): no content, no metadata value (a budget's ledger key is digested)."""
    shown = verdict.to_dict()
    return {
        "type": "loopguard.stop",
        "detector": shown["detector"],
        "reason": shown["reason"],
        "evidence": shown["evidence"],
        "limit": {"name": verdict.evidence.get("limit"), "value": verdict.evidence.get("max")},
        "spend": shown["usage"],
        "run": shown["run"],
        "agent": shown["agent"],
        "step": shown["step"],
        "choices": list(_DECISIONS),
    }


def _decision(value: Any) -> tuple[str, Mapping[str, Any] | None]:
    """A resume value as (action, limits); anything else is a ConfigError naming the forms."""
    action, limits = value, None
    if isinstance(value, Mapping):
        extra = set(value) - {"action", "limits"}
        action, limits = value.get("action", "continue"), value.get("limits")
        if extra or not (limits is None or isinstance(limits, Mapping)):
            action = None
    if action not in _DECISIONS:
        raise ConfigError(
            "Command(resume=...)",
            f"{value!r}: expected 'continue', 'finish', 'stop' or "
            "{'action': 'continue' | 'finish', 'limits': {...policy keys...}}",
        )
    return action, limits


def _bound(table: OrderedDict[str, Any]) -> None:
    while len(table) > _MAX_PAUSED:
        table.popitem(last=False)


class _Call:
    __slots__ = ("agent", "id", "model", "run")

    def __init__(self, run: str, agent: str | None, id: str, model: str) -> None:
        self.run, self.agent, self.id, self.model = run, agent, id, model


def _config_metadata() -> dict[str, Any]:
    try:
        from langgraph.config import get_config

        return get_config().get("metadata") or {}
    except Exception:  # noqa: BLE001 - outside a graph there is no config
        return {}


def _ls_params(model: Any) -> dict[str, Any]:
    """LangChain's standard tracing params of a chat model (ls_model_name, ls_max_tokens)."""
    try:
        return model._get_ls_params() or {}
    except Exception:  # noqa: BLE001 - a model without them
        return {}


def _model_name(model: Any, ls: dict[str, Any]) -> str:
    name = ls.get("ls_model_name")
    for attr in ("model_id", "model", "model_name"):
        if name:
            break
        name = getattr(model, attr, None)
    return name if isinstance(name, str) and name else type(model).__name__


def _max_tokens(request: ModelRequest, ls: dict[str, Any]) -> int | None:
    value = request.model_settings.get("max_tokens")
    if value is None:
        value = ls.get("ls_max_tokens")
    return value if isinstance(value, int) else None


def _ai_message(response: Any) -> Any:
    if isinstance(response, AIMessage):
        return response
    inner = getattr(response, "model_response", response)
    for message in getattr(inner, "result", ()) or ():
        if isinstance(message, AIMessage):
            return message
    return None
