"""The detectors behind the real LangChain adapters: a create_agent loop, a healthy batch, a
streamed repetition, and a nudge the model heeds (through the middleware)."""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import tool

from loopguard import LoopGuardAbort, LoopGuardCallbackHandler, LoopGuardMiddleware, Policy
from tests.integrations.fakes import ScriptedChatModel, tool_call

USER = {"messages": [("user", "Who is on call for payments?")]}
QUERIES = ["payments on-call", "on-call payments", "Payments on call", "on call  payments"]


def _directory() -> tuple[list[str], object]:
    asked: list[str] = []

    @tool
    def directory(q: str) -> str:
        """Look people up."""
        asked.append(q)
        return "0 results. Try a person's name or an email address."

    return asked, directory


def test_a_reworded_search_loop_is_stopped_in_a_create_agent_run() -> None:
    model = ScriptedChatModel(replies=[lambda msgs, n: tool_call("directory", q=QUERIES[n % 4])])
    _asked, directory = _directory()
    agent = create_agent(model, [directory])
    handler = LoopGuardCallbackHandler(policy=Policy(), telemetry=False)
    with pytest.raises(LoopGuardAbort) as info:
        agent.invoke(USER, config={"callbacks": [handler]})
    verdict = info.value.verdict
    assert verdict.detector in ("similarity", "tool_repeat", "cycle", "progress")
    assert {"start_step", "period", "repeats"} <= set(verdict.evidence)
    assert model.call_count <= 6  # within 3 calls of the loop's second repetition (call 3)


def test_a_healthy_batch_runs_to_its_end() -> None:
    model = ScriptedChatModel(
        replies=[
            lambda msgs, n: (
                tool_call("get_order", order_id=5000 + n)
                if n <= 25
                else AIMessage(content="All 25 orders checked.")
            )
        ]
    )
    checked: list[int] = []

    @tool
    def get_order(order_id: int) -> str:
        """Fetch an order."""
        checked.append(order_id)
        return f"Order {order_id}: delayed {order_id % 7 + 1} days"

    agent = create_agent(model, [get_order])
    handler = LoopGuardCallbackHandler(policy=Policy(), telemetry=False)
    result = agent.invoke(USER, config={"callbacks": [handler]})
    assert result["messages"][-1].content == "All 25 orders checked."
    assert len(checked) == 25


def test_a_streamed_repetition_is_cut_mid_stream() -> None:
    sentence = "Because the key includes the request id, every request misses the cache."
    model = ScriptedChatModel(replies=[AIMessage(content=" ".join([sentence] * 40))])
    handler = LoopGuardCallbackHandler(policy=Policy(), telemetry=False)
    chunks = 0
    with pytest.raises(LoopGuardAbort) as info:
        for _ in model.stream("Why did the hit rate drop?", config={"callbacks": [handler]}):
            chunks += 1
    assert info.value.verdict.detector == "stream"
    assert chunks < len(sentence.split()) * 40 // 2  # stopped well before the end


def test_the_model_gets_one_nudge_and_can_change_course() -> None:
    def reply(messages: list[BaseMessage], n: int) -> AIMessage:
        if any("[loopguard]" in str(m.content) for m in messages):
            return AIMessage(content="I could not find the on-call person; please ask #payments.")
        return tool_call("directory", q=QUERIES[n % 4])

    model = ScriptedChatModel(replies=[reply])
    asked, directory = _directory()
    agent = create_agent(
        model, [directory], middleware=[LoopGuardMiddleware(policy=Policy(), telemetry=False)]
    )
    result = agent.invoke(USER)
    assert "please ask #payments" in result["messages"][-1].content
    assert len(asked) <= 4
