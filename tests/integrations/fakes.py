"""Fake chat models for the integration tests: scripted, counting every provider call."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from pydantic import Field

Reply = AIMessage | Callable[[list[BaseMessage], int], AIMessage]


class ScriptedChatModel(BaseChatModel):
    """Returns scripted replies (cycling), counts calls, and streams word by word.

    `fail_on` lists 1-based call numbers that raise a transient error instead of answering.
    """

    replies: list[Any]  # AIMessage or callable(messages, n) -> AIMessage
    calls: list[int] = Field(default_factory=list)  # a shared counter survives bind_tools
    fail_on: set[int] = Field(default_factory=set)
    model: str = "anthropic.claude-3-5-sonnet-20241022-v2:0"
    max_tokens: int | None = 256

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "max_tokens": self.max_tokens}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_model_name"] = self.model
        if self.max_tokens:
            params["ls_max_tokens"] = self.max_tokens
        return params

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:
        return self

    def _next(self, messages: list[BaseMessage]) -> AIMessage:
        self.calls.append(1)
        n = len(self.calls)
        if n in self.fail_on:
            raise ConnectionError(f"transient failure on call {n}")
        reply = self.replies[(n - 1) % len(self.replies)]
        message = reply(messages, n) if callable(reply) else reply
        if message.usage_metadata is None:
            message = message.model_copy(
                update={
                    "usage_metadata": {
                        "input_tokens": 100 * n,
                        "output_tokens": 20,
                        "total_tokens": 100 * n + 20,
                    }
                }
            )
        return message

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._next(messages)
        words = str(message.content).split(" ") if message.content else []
        for i, word in enumerate(words):
            chunk = ChatGenerationChunk(
                message=AIMessageChunk(content=word if i == 0 else " " + word)
            )
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                tool_call_chunks=[
                    {
                        "name": c["name"],
                        "args": __import__("json").dumps(c["args"]),
                        "id": c["id"],
                        "index": i,
                    }
                    for i, c in enumerate(message.tool_calls)
                ],
                usage_metadata=message.usage_metadata,
                chunk_position="last",
            )
        )

    @property
    def call_count(self) -> int:
        return len(self.calls)


_ids = itertools.count(1)


def tool_call(name: str, **args: Any) -> AIMessage:
    """A reply that asks for one tool call."""
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": f"call_{next(_ids)}", "type": "tool_call"}],
    )


_TOPICS = (
    "volcanoes",
    "tides",
    "glaciers",
    "monsoons",
    "aurora",
    "lightning",
    "deserts",
    "coral reefs",
    "jet streams",
    "hurricanes",
    "fog banks",
    "sea ice",
    "geysers",
    "dust storms",
    "permafrost",
    "heat domes",
    "sandbars",
    "typhoons",
    "rainbows",
    "avalanches",
)


def endless_model(**kwargs: Any) -> ScriptedChatModel:
    """A model that never finishes but never repeats itself either: each call searches a new
    topic. Only the plain run limits can stop it, which is what the limit tests need."""
    return ScriptedChatModel(
        replies=[lambda msgs, n: tool_call("search", query=_TOPICS[(n - 1) % len(_TOPICS)])],
        **kwargs,
    )


class ToolCounter:
    """A `search` tool that counts its executions."""

    def __init__(self) -> None:
        self.calls = 0

        @tool
        def search(query: str) -> str:
            """Search the web."""
            self.calls += 1
            # distinct text per query, as a real search returns
            words = hashlib.sha256(query.encode()).hexdigest()
            return f"{query}: " + " ".join(_WORDS[int(c, 16)] for c in words[:12])

        self.tool = search


_WORDS = (
    "alpha",
    "basin",
    "cirrus",
    "delta",
    "ember",
    "fjord",
    "gale",
    "humid",
    "isobar",
    "jetty",
    "katabatic",
    "lagoon",
    "mistral",
    "nimbus",
    "ozone",
    "plume",
)
