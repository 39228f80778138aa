"""The LangChain callback handler: LangChain callbacks in, loopguard events out.

Thin by design: it resolves every LangChain run to its root run, converts what LangChain reports
into events, and lets the guard judge. Checks that prevent spending run at model start and tool
start, so a refused call never goes out. One synchronous handler serves sync, async and
streaming code: it runs inline (no thread hop) and its abort propagates (`raise_error`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Unpack
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from loopguard.events import (
    Event,
    Message,
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
from loopguard.guard import Guard
from loopguard.integrations._convert import (
    PromptConverter,
    agent_of,
    labels_of,
    max_tokens_of,
    model_id,
    response_info,
    text_of,
    tool_calls_of,
    usage_of,
)
from loopguard.integrations._options import AdapterOptions, adapter_guard
from loopguard.tokens import estimate_input_tokens, tokens_for_chars
from loopguard.verdict import LoopGuardAbort

logger = logging.getLogger("loopguard")


def _internal_error() -> None:
    """Log the adapter's own bug and go on (fail open): it must never break the agent it
    guards. Called from `except Exception` clauses that let `LoopGuardAbort` through; a
    try/except costs nothing per event when nothing is raised, a context manager two calls."""
    logger.error("loopguard: internal error in the callback handler (fail open)", exc_info=True)


class _Node:
    """What the handler remembers of one live LangChain run."""

    __slots__ = (
        "_inner",
        "agent",
        "anchor",
        "granted",
        "id",
        "is_root",
        "label",
        "pending",
        "piece",
        "root",
        "streamed",
    )

    def __init__(
        self,
        id: str,
        root: str,
        anchor: str,
        agent: str | None,
        is_root: bool,
        label: str | None = None,
    ) -> None:
        self.id = id  # the LangChain run id as a string, made once
        self.root = root  # the guarded run (root LangChain run id)
        self.anchor = anchor  # nearest enclosing call with a span: a tool run, or the root
        self.agent = agent
        self.is_root = is_root
        self.label = label  # the model id of a model run, the tool name of a tool run
        self.streamed = 0  # characters of a model run's stream handed to the guard
        self.pending = ""  # streamed text not yet handed to the guard
        # How much streamed text may be gathered: none before the first chunk went, then what
        # the guard granted at the call's start (Guard.token_piece).
        self.piece = 0
        self.granted = 0
        self._inner: _Node | None = None

    def inner(self) -> _Node:
        """What a plain chain run inside this one is (same run, same span anchor). Chains are
        most of a graph's runs, so they share one node instead of making their own."""
        if not self.is_root and self.label is None:
            return self
        inner = self._inner
        if inner is None:
            inner = self._inner = _Node(self.id, self.root, self.anchor, self.agent, False)
        return inner


_NOT_STREAMING: tuple[UUID | None, _Node | None] = (None, None)


class LoopGuardCallbackHandler(BaseCallbackHandler):
    """Guards every run it sees. Pass it in `config={"callbacks": [handler]}` (sees the whole
    run tree: recommended) or to a model's constructor (sees that model's calls, grouped by
    the run that calls the model).

    Args:
        guard: the engine to use; several handlers may share one.
        **options: policy, agent, record_to, record_content, telemetry, tracer_provider,
            meter_provider: see `loopguard.integrations.AdapterOptions`.
    """

    raise_error = True  # the abort must reach the caller
    run_inline = True  # no executor hop in async code: cheaper, and the abort propagates

    def __init__(self, guard: Guard | None = None, **options: Unpack[AdapterOptions]) -> None:
        self.guard = adapter_guard(guard, options, type(self).__name__)
        self.agent = options.get("agent")
        self._nodes: dict[UUID, _Node] = {}
        # The LangChain runs of as many guarded runs as the guard remembers (its max_runs live
        # runs and as many evicted ones), and a quarter more between purges: those of runs
        # whose end never comes are forgotten.
        self._max_roots = 2 * self.guard.max_runs
        self._new_roots = 0  # guarded runs first seen since the last purge
        self._prompts = PromptConverter(max_runs=self._max_roots)
        self._lock = threading.Lock()
        # The call that streamed last, found by identity (LangChain passes the same run id
        # object with each chunk; hashing a UUID is a Python call): forgotten when it ends.
        self._streaming: tuple[UUID | None, _Node | None] = _NOT_STREAMING

    # --- the run tree ---------------------------------------------------------------------

    def _parent(self, parent_run_id: UUID | None) -> _Node | None:
        return self._nodes.get(parent_run_id) if parent_run_id is not None else None

    def _enter(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        parent: _Node | None,
        name: str | None,
        metadata: Mapping[str, Any] | None,
        *,
        is_tool: bool = False,
        label: str | None = None,
    ) -> _Node:
        """Track a new LangChain run; `parent` is the node of `parent_run_id`, if known (the
        callers have looked it up already). `name` only matters when there is no parent."""
        key = str(run_id)
        if parent is not None:
            root, anchor, agent, is_root = parent.root, parent.anchor, parent.agent, False
        else:
            # No parent, or one this handler never saw (attached to a model's constructor):
            # the outermost run it can see is the guarded run.
            root = key if parent_run_id is None else str(parent_run_id)
            anchor, is_root = root, parent_run_id is None
            agent = self._agent_name(metadata, name)
            self._new_roots += 1
            if self._new_roots > self._max_roots // 4:
                self._purge()
        node = _Node(key, root, key if is_tool else anchor, agent, is_root, label)
        self._track(run_id, node)
        return node

    def _track(self, run_id: UUID, node: _Node) -> None:
        self._nodes[run_id] = node

    def _purge(self) -> None:
        """Forget the LangChain runs of all but the `_max_roots` guarded runs seen most
        recently (a run is as recent as its newest node)."""
        with self._lock:
            self._streaming = _NOT_STREAMING
            self._new_roots = 0
            nodes = self._nodes
            keep: set[str] = set()
            for node in reversed(list(nodes.values())):  # newest first
                if node.root not in keep:
                    if len(keep) == self._max_roots:
                        break
                    keep.add(node.root)
            for key, node in list(nodes.items()):
                if node.root not in keep:
                    nodes.pop(key, None)

    def _agent_name(self, metadata: Mapping[str, Any] | None, name: str | None) -> str | None:
        if self.agent is not None:
            return self.agent
        return agent_of(metadata) or name

    def _send(self, event: Event, refused: UUID | None = None) -> None:
        """Hand `event` to the guard (which fails open on its own bugs)."""
        try:
            self.guard.process(event)
        except LoopGuardAbort:
            if refused is not None:
                # A refused start gets no end or error callback: forget the run now.
                self._nodes.pop(refused, None)
            raise

    # --- chains (only the root matters) -------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            parent = self._parent(parent_run_id)
            enclosing = None
            if parent is not None:  # the common case: a chain inside a known run
                if not _starts_agent(metadata, kwargs):
                    self._track(run_id, parent.inner())
                    return
                # A named agent started inside the run's graph (called as a tool, or run as
                # a subgraph node): a run of its own, nested in the one it runs in.
                enclosing, parent_run_id = parent.root, None
            name = _name(serialized, kwargs)
            node = self._enter(run_id, parent_run_id, None, name, metadata)
            if node.is_root:
                self._send(
                    RunStart(
                        run=node.root,
                        agent=node.agent,
                        id=node.root,
                        parent=enclosing,
                        name=name,
                        meta=labels_of(metadata),
                    )
                )
        except LoopGuardAbort:
            raise
        except Exception:  # noqa: BLE001
            _internal_error()

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._leave(run_id, "ok")

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._leave(run_id, _failed(error))

    def _leave(self, run_id: UUID, status: str) -> None:
        node = self._nodes.pop(run_id, None)
        if node is not None and node.is_root:
            self._end_run(node, status)

    # --- models -----------------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._model_start(
                serialized, messages[0] if messages else (), run_id, parent_run_id, metadata, kwargs
            )
        except LoopGuardAbort:
            raise
        except Exception:  # noqa: BLE001
            _internal_error()

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._model_start(
                serialized,
                [Message("user", p) for p in prompts[:1]],
                run_id,
                parent_run_id,
                metadata,
                kwargs,
            )
        except LoopGuardAbort:
            raise
        except Exception:  # noqa: BLE001
            _internal_error()

    def _model_start(
        self,
        serialized: dict[str, Any] | None,
        prompt: Sequence[Any],
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        params = kwargs.get("invocation_params")
        model = model_id(metadata, params)
        parent = self._parent(parent_run_id)
        # The name is the model's fallback id, and the agent's name of a run that is this call.
        name = _name(serialized, kwargs) if model is None or parent is None else None
        label = model or name or "unknown"
        node = self._enter(run_id, parent_run_id, parent, name, metadata, label=label)
        messages = self._prompts.convert(node.root, prompt)
        self._send(
            ModelStart(
                run=node.root,
                agent=node.agent,
                id=node.id,
                parent=node.anchor,
                model=label,
                messages=messages,
                max_tokens=max_tokens_of(metadata, params),
                meta=labels_of(metadata),
            ),
            refused=run_id,
        )
        node.granted = self.guard.token_piece(node.root)

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        run_id: UUID,
        # Named, so that each chunk does not build a dict of them (a tenth of a µs).
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        chunk: Any = None,
        **kwargs: Any,
    ) -> None:
        if not token:
            return
        streaming = self._streaming
        if streaming[0] is run_id:
            node = streaming[1]
        else:
            node = self._nodes.get(run_id)
            if node is not None:  # not a run it does not know: it may start later
                self._streaming = (run_id, node)
        if node is None:
            return
        try:
            if type(token) is not str:  # ChatBedrockConverse streams content blocks
                token = text_of(token)
                if not token:
                    return
            # Chunks are gathered into pieces when the guard allows (see Guard.token_piece):
            # the first chunk goes alone, a chunk that ends a line ends its piece.
            text = node.pending + token
            if len(text) < node.piece and "\n" not in token:
                node.pending = text
                return
            node.pending = ""
            node.streamed += len(text)
            node.piece = node.granted
            self._send(Token(run=node.root, agent=node.agent, id=node.id, text=text))
        except LoopGuardAbort:
            node.piece = node.granted = 0  # any later chunk of this call is refused at once
            raise
        except Exception:  # noqa: BLE001
            _internal_error()

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._streaming = _NOT_STREAMING
        node = self._nodes.pop(run_id, None)
        if node is None:
            return
        try:
            generations = response.generations[0] if response.generations else ()
            first = generations[0] if generations else None
            message = getattr(first, "message", None)
            text = (
                text_of(message.content)
                if message is not None
                else (getattr(first, "text", "") or "")
            )
            response_model, finish_reason = response_info(message)
            self._send(
                ModelEnd(
                    run=node.root,
                    agent=node.agent,
                    id=node.id,
                    parent=node.anchor,
                    model=node.label or "unknown",
                    text=text,
                    tool_calls=tool_calls_of(message),
                    usage=usage_of(message, response.llm_output),
                    response_model=response_model,
                    finish_reason=finish_reason,
                )
            )
        except LoopGuardAbort:
            raise
        except Exception:  # noqa: BLE001
            _internal_error()
        finally:  # an abort on the answer still ends a run that is this one call
            if node.is_root:
                self._end_run(node, "ok")

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._streaming = _NOT_STREAMING
        node = self._nodes.pop(run_id, None)
        if node is None:
            return
        # A stream cut mid-answer (by loopguard or the network) was billed for its prompt and
        # for what it streamed, though the provider never reported usage: estimate it.
        try:
            usage = None
            streamed = node.streamed + len(node.pending)
            if streamed:
                # The run's latest prompt (the converter's; nodes keep no prompt text).
                prompt = self._prompts.last(node.root)
                usage = Usage(estimate_input_tokens(prompt), tokens_for_chars(streamed))
            self._send(
                ModelFailed(
                    run=node.root,
                    agent=node.agent,
                    id=node.id,
                    parent=node.anchor,
                    model=node.label or "unknown",
                    error=f"{type(error).__name__}: {error}",
                    usage=usage,
                )
            )
        except LoopGuardAbort:
            raise
        except Exception:  # noqa: BLE001
            _internal_error()
        finally:
            if node.is_root:
                self._end_run(node, _failed(error))

    # --- tools ------------------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            tool = _name(serialized, kwargs) or "tool"
            parent = self._parent(parent_run_id)
            node = self._enter(
                run_id, parent_run_id, parent, tool, metadata, is_tool=True, label=tool
            )
            anchor = parent.anchor if parent is not None else node.root
            self._send(
                ToolStart(
                    run=node.root,
                    agent=node.agent,
                    id=node.id,
                    parent=anchor,
                    tool=tool,
                    args=_tool_args(inputs, input_str),
                    call_id=_call_id(kwargs),
                ),
                refused=run_id,
            )
        except LoopGuardAbort:
            raise
        except Exception:  # noqa: BLE001
            _internal_error()

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        node = self._nodes.pop(run_id, None)
        if node is None:
            return
        try:
            content = getattr(output, "content", output)
            self._send(
                ToolEnd(
                    run=node.root,
                    agent=node.agent,
                    id=node.id,
                    tool=node.label or "tool",
                    output=text_of(content),
                )
            )
        except LoopGuardAbort:
            raise
        except Exception:  # noqa: BLE001
            _internal_error()
        finally:
            if node.is_root:
                self._end_run(node, "ok")

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        node = self._nodes.pop(run_id, None)
        if node is None:
            return
        try:
            if not _pauses(error):  # a pause (LangGraph's interrupt()) is not a failure
                self._send(
                    ToolFailed(
                        run=node.root,
                        agent=node.agent,
                        id=node.id,
                        tool=node.label or "tool",
                        error=f"{type(error).__name__}: {error}",
                    )
                )
        except LoopGuardAbort:
            raise
        except Exception:  # noqa: BLE001
            _internal_error()
        finally:
            if node.is_root:
                self._end_run(node, _failed(error))

    def _end_run(self, node: _Node, status: str) -> None:
        # Called from `finally` clauses, outside the callbacks' own fail-open handling.
        try:
            self._prompts.forget(node.root)
            self._send(RunEnd(run=node.root, agent=node.agent, id=node.root, status=status))
        except LoopGuardAbort:
            raise
        except Exception:  # noqa: BLE001
            _internal_error()

    # --- retrievers only matter for the run tree ----------------------------------------------

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if parent_run_id is not None:
            self._enter(run_id, parent_run_id, self._parent(parent_run_id), None, metadata)

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        self._nodes.pop(run_id, None)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._nodes.pop(run_id, None)


def _starts_agent(metadata: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> bool:
    """Whether a chain is the start of a named agent inside a graph: `create_agent(name=...)`
    names its graph's run after the agent and sets `lc_agent_name`; `langgraph_node` says it
    runs in a node of an enclosing graph. An unnamed agent stays part of the run it is in."""
    if not metadata:
        return False
    agent = metadata.get("lc_agent_name")
    return agent is not None and kwargs.get("name") == agent and "langgraph_node" in metadata


def _pauses(error: BaseException) -> bool:
    """Whether `error` is LangGraph's way of pausing or handing control up (`interrupt()`,
    `Command(graph=PARENT)`): its GraphBubbleUp, known by name so LangGraph stays optional."""
    return any(cls.__name__ == "GraphBubbleUp" for cls in type(error).__mro__)


def _failed(error: BaseException) -> str:
    return "aborted" if isinstance(error, LoopGuardAbort) else "error"


def _name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> str | None:
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if serialized:
        name = serialized.get("name")
        if isinstance(name, str) and name:
            return name
        ids = serialized.get("id")
        if isinstance(ids, list) and ids:
            return str(ids[-1])
    return None


def _call_id(kwargs: Mapping[str, Any]) -> str | None:
    """The id the model gave the tool call (LangChain passes it to on_tool_start)."""
    value = kwargs.get("tool_call_id")
    return value if isinstance(value, str) and value else None


def _tool_args(inputs: Mapping[str, Any] | None, input_str: str) -> dict[str, Any] | str:
    if isinstance(inputs, Mapping):
        return dict(inputs)
    try:
        import json

        parsed = json.loads(input_str)
    except (TypeError, ValueError):
        return input_str
    return parsed if isinstance(parsed, dict) else input_str
