"""Adapter paths the agent tests do not reach: a plain (non-chat) LLM, a tool that raises, the
handler failing open in every callback when the guard itself breaks, the middleware's async
tool error and its "end" exit after a tool result."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from loopguard import Guard, LoopGuardCallbackHandler, LoopGuardMiddleware, Policy
from loopguard.events import Event, ModelEnd, ModelStart, ToolFailed
from tests.integrations.fakes import ScriptedChatModel, ToolCounter, tool_call
from tests.integrations.test_handler import Collect

USER = {"messages": [("user", "What's the weather?")]}


@tool
def flaky(query: str) -> str:
    """A tool that always fails."""
    raise ValueError(f"backend down for {query}")


def kinds(events: list[Event]) -> list[str]:
    return [e.type for e in events]


def test_a_plain_llm_is_guarded_through_on_llm_start() -> None:
    sink = Collect()
    handler = LoopGuardCallbackHandler(Guard(Policy(), sinks=[sink]), telemetry=False)
    out = FakeListLLM(responses=["Paris"]).invoke("Capital of France?", {"callbacks": [handler]})
    assert out == "Paris"
    start = next(e for e in sink.events if type(e) is ModelStart)
    assert [(m.role, m.content) for m in start.messages] == [("user", "Capital of France?")]
    assert any(type(e) is ModelEnd for e in sink.events)


def test_a_tool_that_raises_is_a_tool_error_and_ends_its_run() -> None:
    sink = Collect()
    handler = LoopGuardCallbackHandler(Guard(Policy(), sinks=[sink]), telemetry=False)
    with pytest.raises(ValueError, match="backend down"):
        flaky.invoke({"query": "x"}, {"callbacks": [handler]})
    assert kinds(sink.events) == ["tool_start", "tool_error", "run_end"]
    failed = next(e for e in sink.events if type(e) is ToolFailed)
    assert failed.tool == "flaky" and failed.error.startswith("ValueError: backend down")
    assert sink.events[-1].status == "error"  # type: ignore[attr-defined]


class BrokenGuard(Guard):
    """The guard with a bug: every event it is given raises."""

    def process(self, event: Event) -> Any:
        raise ZeroDivisionError("a bug inside loopguard")


@pytest.fixture
def broken(caplog: pytest.LogCaptureFixture) -> LoopGuardCallbackHandler:
    caplog.set_level(logging.ERROR, logger="loopguard")
    return LoopGuardCallbackHandler(BrokenGuard(Policy()), telemetry=False)


def fail_open_logged(caplog: pytest.LogCaptureFixture) -> None:
    logged = [r for r in caplog.records if "fail open" in r.getMessage()]
    assert logged, "the internal error was not logged"


def test_the_handler_fails_open_in_an_agent_run(broken, caplog) -> None:
    model = ScriptedChatModel(replies=[tool_call("search", query="a"), AIMessage("done")])
    tools = ToolCounter()
    out = create_agent(model, [tools.tool]).invoke(USER, config={"callbacks": [broken]})
    assert out["messages"][-1].content == "done" and tools.calls == 1
    fail_open_logged(caplog)


async def test_the_handler_fails_open_in_an_async_agent_run(broken, caplog) -> None:
    model = ScriptedChatModel(replies=[tool_call("search", query="a"), AIMessage("done")])
    tools = ToolCounter()
    out = await create_agent(model, [tools.tool]).ainvoke(USER, config={"callbacks": [broken]})
    assert out["messages"][-1].content == "done" and tools.calls == 1
    fail_open_logged(caplog)


def test_the_handler_fails_open_on_a_plain_llm_a_failing_model_and_tool(broken, caplog) -> None:
    assert FakeListLLM(responses=["ok"]).invoke("hi", {"callbacks": [broken]}) == "ok"
    with pytest.raises(ValueError, match="backend down"):
        flaky.invoke({"query": "x"}, {"callbacks": [broken]})
    model = ScriptedChatModel(replies=[AIMessage("never")], fail_on={1})
    with pytest.raises(ConnectionError):
        model.invoke("hi", {"callbacks": [broken]})
    fail_open_logged(caplog)


async def test_the_middleware_records_an_async_tool_error() -> None:
    sink = Collect()
    guard = Guard(Policy(), sinks=[sink])
    model = ScriptedChatModel(replies=[tool_call("flaky", query="a"), AIMessage("gave up")])
    agent = create_agent(model, [flaky], middleware=[LoopGuardMiddleware(guard, telemetry=False)])
    with pytest.raises(ValueError, match="backend down"):  # create_agent lets it through
        await agent.ainvoke(USER)
    failed = [e for e in sink.events if type(e) is ToolFailed]
    assert [e.tool for e in failed] == ["flaky"] and "backend down" in failed[0].error


def test_the_middleware_ends_the_run_after_a_tool_result_that_trips_a_limit() -> None:
    sink = Collect()
    guard = Guard(Policy(tool_repeat={"max_polls": 2, "warn_polls": 1}), sinks=[sink])
    model = ScriptedChatModel(replies=[tool_call("search", query="same")])  # polls forever
    tools = ToolCounter()
    middleware = LoopGuardMiddleware(guard, exit_behavior="end", telemetry=False)
    out = create_agent(model, [tools.tool], middleware=[middleware]).invoke(USER)
    # The fourth identical result trips the limit: the tool's answer is kept, the stop is said
    # after it, and the next model call ends the agent with the reason instead of calling.
    *_, last_tool, final = out["messages"]
    assert isinstance(last_tool, ToolMessage) and last_tool.content.startswith("same: ")
    assert "Stopped by loopguard [tool_repeat]" in last_tool.content
    assert final.response_metadata["loopguard"]["detector"] == "tool_repeat"
    assert final.content.startswith("Stopped by loopguard [tool_repeat]")
    assert tools.calls == model.call_count == 4
    assert kinds(sink.events)[-1] == "run_end"
