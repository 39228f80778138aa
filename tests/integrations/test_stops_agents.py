"""Proof that an abort really stops agents, through every wrapper users put around them.

In each test the caller gets LoopGuardAbort, and no model or tool call happens after the
verdict: the counts stop exactly at the configured limit.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import RetryPolicy

from loopguard import LoopGuardAbort, LoopGuardCallbackHandler, LoopGuardMiddleware, Policy
from tests.integrations.fakes import ScriptedChatModel, ToolCounter, endless_model, tool_call

USER = {"messages": [("user", "What's the weather?")]}


def handler(**limits: Any) -> LoopGuardCallbackHandler:
    return LoopGuardCallbackHandler(policy=Policy(**limits), telemetry=False)


def assert_stopped(info: pytest.ExceptionInfo[LoopGuardAbort], detector: str = "limits") -> None:
    verdict = info.value.verdict
    assert verdict.detector == detector
    assert verdict.enforced


# --- create_agent ---------------------------------------------------------------------------


def test_create_agent_invoke_stops_at_max_model_calls() -> None:
    model, tools = endless_model(), ToolCounter()
    agent = create_agent(model, [tools.tool])
    with pytest.raises(LoopGuardAbort) as info:
        agent.invoke(USER, config={"callbacks": [handler(max_model_calls=3)]})
    assert_stopped(info)
    assert model.call_count == 3
    assert tools.calls == 3  # the tool the third call asked for ran; nothing after the verdict
    assert info.value.verdict.step == 4
    assert info.value.verdict.usage["model_calls"] == 3


async def test_create_agent_ainvoke_stops_at_max_model_calls() -> None:
    model, tools = endless_model(), ToolCounter()
    agent = create_agent(model, [tools.tool])
    with pytest.raises(LoopGuardAbort) as info:
        await agent.ainvoke(USER, config={"callbacks": [handler(max_model_calls=2)]})
    assert_stopped(info)
    assert model.call_count == 2
    assert tools.calls == 2


def test_create_agent_stream_stops_at_max_tool_calls() -> None:
    model, tools = endless_model(), ToolCounter()
    agent = create_agent(model, [tools.tool])
    seen = []
    with pytest.raises(LoopGuardAbort) as info:
        for update in agent.stream(
            USER, config={"callbacks": [handler(max_tool_calls=2)]}, stream_mode="updates"
        ):
            seen.append(update)
    assert_stopped(info)
    assert tools.calls == 2
    assert model.call_count == 3  # the third call asked for a third tool call: refused
    assert seen, "updates streamed before the abort"


@pytest.fixture
def collected() -> Iterator[None]:
    """Collect garbage as the test ends, so what it left behind is reported as its own."""
    yield
    gc.collect()


# LangChain's AsyncCallbackManager makes one coroutine per handler and awaits the inline ones in
# order: the refused start leaves the handlers after ours (LangGraph's messages-mode handler)
# unawaited; they would have reported a call that never went out. LangGraph's runner keeps them
# until its tasks and generators are collected, at some point after the abort reached us: this
# test (its teardown collects) is the one place the warning may come from, and nothing else may.
@pytest.mark.filterwarnings("ignore:coroutine 'ahandle_event' was never awaited:RuntimeWarning")
async def test_create_agent_astream_messages_mode_stops(collected: None) -> None:
    model, tools = endless_model(), ToolCounter()
    agent = create_agent(model, [tools.tool])
    with pytest.raises(LoopGuardAbort):
        async for _ in agent.astream(
            USER, config={"callbacks": [handler(max_model_calls=2)]}, stream_mode="messages"
        ):
            pass
    assert model.call_count == 2


def test_per_tool_limit_stops_only_that_tool() -> None:
    model, tools = endless_model(), ToolCounter()
    agent = create_agent(model, [tools.tool])
    with pytest.raises(LoopGuardAbort) as info:
        agent.invoke(USER, config={"callbacks": [handler(max_calls_per_tool={"search": 4})]})
    assert tools.calls == 4
    assert info.value.verdict.evidence["limit"] == "max_calls_per_tool.search"


# --- a hand-built LangGraph graph with ToolNode(handle_tool_errors=True) ----------------------


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def build_graph(
    model: ScriptedChatModel, tools: ToolCounter, *, retry: RetryPolicy | None = None
) -> Any:
    def call_model(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(State)
    graph.add_node("model", call_model, retry_policy=retry)
    graph.add_node("tools", ToolNode([tools.tool], handle_tool_errors=True))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    return graph.compile()


def test_toolnode_handle_tool_errors_cannot_swallow_the_abort() -> None:
    # The abort at tool start is caught by ToolNode and turned into an error ToolMessage; the
    # run is aborted for good, so the very next model call is refused and the caller gets it.
    model, tools = endless_model(), ToolCounter()
    graph = build_graph(model, tools)
    with pytest.raises(LoopGuardAbort) as info:
        graph.invoke(USER, config={"callbacks": [handler(max_tool_calls=2)]})
    assert_stopped(info)
    assert tools.calls == 2
    assert model.call_count == 3  # no model call after the verdict (given at call 3's tool)


def test_langgraph_node_retry_policy_does_not_retry_the_abort() -> None:
    model, tools = endless_model(), ToolCounter()
    retry = RetryPolicy(max_attempts=5, initial_interval=0.0, jitter=False)
    graph = build_graph(model, tools, retry=retry)
    with pytest.raises(LoopGuardAbort):
        graph.invoke(USER, config={"callbacks": [handler(max_model_calls=2)]})
    assert model.call_count == 2


def test_langgraph_retry_policy_retrying_everything_still_stops() -> None:
    model, tools = endless_model(), ToolCounter()
    retry = RetryPolicy(max_attempts=5, initial_interval=0.0, jitter=False, retry_on=Exception)
    graph = build_graph(model, tools, retry=retry)
    with pytest.raises(LoopGuardAbort):
        graph.invoke(USER, config={"callbacks": [handler(max_model_calls=2)]})
    assert model.call_count == 2  # each retry was refused before it went out


# --- with_retry -------------------------------------------------------------------------------


def agent_loop(model: Any, steps: int = 20) -> RunnableLambda:
    """A plain runnable that calls `model` in a loop, as hand-written agents do."""

    def run(question: str, config: Any) -> str:
        answer = ""
        for _ in range(steps):
            out = model.invoke(question, config=config)
            answer = getattr(out, "content", out)
        return answer

    return RunnableLambda(run)


def test_with_retry_counts_every_provider_call_and_cannot_retry_past_the_abort() -> None:
    model = ScriptedChatModel(replies=[AIMessage("thinking...")], fail_on={2})
    retrying = model.with_retry(stop_after_attempt=4, wait_exponential_jitter=False)
    with pytest.raises(LoopGuardAbort) as info:
        agent_loop(retrying).invoke("go", config={"callbacks": [handler(max_model_calls=3)]})
    assert_stopped(info)
    # call 2 failed and was retried (call 3); both reached the provider and both count
    assert model.call_count == 3
    assert info.value.verdict.usage["model_calls"] == 3


# --- the classic AgentExecutor ------------------------------------------------------------------


def test_agent_executor_with_handle_parsing_errors_stops() -> None:
    from langchain_classic.agents import AgentExecutor, create_tool_calling_agent

    model, tools = endless_model(), ToolCounter()
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You are helpful."),
            ("human", "{input}"),
            ("placeholder", "{agent_scratchpad}"),
        ]
    )
    agent = create_tool_calling_agent(model, [tools.tool], prompt)
    executor = AgentExecutor(agent=agent, tools=[tools.tool], handle_parsing_errors=True)
    with pytest.raises(LoopGuardAbort) as info:
        executor.invoke({"input": "weather?"}, config={"callbacks": [handler(max_model_calls=4)]})
    assert_stopped(info)
    assert model.call_count == 4
    assert tools.calls == 4


def test_agent_executor_parsing_error_loop_is_stopped() -> None:
    # A ReAct agent whose model never follows the format: handle_parsing_errors=True feeds the
    # error back forever (up to max_iterations=15). loopguard stops it at its own limit.
    from langchain_classic.agents import AgentExecutor, create_react_agent
    from langchain_core.prompts import PromptTemplate

    model = ScriptedChatModel(replies=[AIMessage("I should look this up somehow.")])
    tools = ToolCounter()
    prompt = PromptTemplate.from_template(
        "Answer using tools {tools} ({tool_names}).\nQuestion: {input}\n{agent_scratchpad}"
    )
    agent = create_react_agent(model, [tools.tool], prompt)
    executor = AgentExecutor(agent=agent, tools=[tools.tool], handle_parsing_errors=True)
    with pytest.raises(LoopGuardAbort) as info:
        executor.invoke({"input": "weather?"}, config={"callbacks": [handler(max_model_calls=5)]})
    # The same unparsable answer every time: the loop detectors or the limit, whichever first.
    assert model.call_count <= 5
    assert model.call_count == info.value.verdict.usage["model_calls"]  # none after the verdict
    assert tools.calls == 0


# --- a plain runnable chain ---------------------------------------------------------------------


def test_plain_runnable_chain_stops() -> None:
    model = ScriptedChatModel(replies=[AIMessage("again")])
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | model | StrOutputParser()
    loop = agent_loop(chain.with_config(run_name="inner"), steps=10)
    with pytest.raises(LoopGuardAbort) as info:
        loop.invoke({"q": "hello"}, config={"callbacks": [handler(max_model_calls=6)]})
    assert model.call_count <= 6
    assert model.call_count == info.value.verdict.usage["model_calls"]


def test_handler_in_model_constructor_stops_a_loop_of_one_run() -> None:
    h = handler(max_model_calls=2)
    model = ScriptedChatModel(replies=[AIMessage("again")], callbacks=[h])
    with pytest.raises(LoopGuardAbort):
        agent_loop(model, steps=10).invoke("go")
    assert model.call_count == 2


# --- the middleware -----------------------------------------------------------------------------


def middleware(exit_behavior: str = "error", **limits: Any) -> LoopGuardMiddleware:
    return LoopGuardMiddleware(
        policy=Policy(**limits), exit_behavior=exit_behavior, telemetry=False
    )


def test_middleware_error_exit_raises_at_the_limit() -> None:
    model, tools = endless_model(), ToolCounter()
    guard_mw = middleware(max_model_calls=3)
    agent = create_agent(model, [tools.tool], middleware=[guard_mw])
    with pytest.raises(LoopGuardAbort) as info:
        agent.invoke(USER)
    assert_stopped(info)
    assert model.call_count == 3
    assert tools.calls == 3
    assert guard_mw.guard.active_runs == 0  # the run is over and its state freed


async def test_middleware_async_error_exit() -> None:
    model, tools = endless_model(), ToolCounter()
    agent = create_agent(model, [tools.tool], middleware=[middleware(max_tool_calls=2)])
    with pytest.raises(LoopGuardAbort):
        await agent.ainvoke(USER)
    assert tools.calls == 2
    assert model.call_count == 3


def test_middleware_end_exit_returns_normally_with_the_reason() -> None:
    model, tools = endless_model(), ToolCounter()
    guard_mw = middleware("end", max_model_calls=3)
    agent = create_agent(model, [tools.tool], middleware=[guard_mw])
    out = agent.invoke(USER)
    last = out["messages"][-1]
    assert isinstance(last, AIMessage) and not last.tool_calls
    assert "Stopped by loopguard [limits]" in last.content
    assert "max_model_calls=3" in last.content
    assert last.response_metadata["loopguard"]["detector"] == "limits"
    assert model.call_count == 3
    assert guard_mw.guard.active_runs == 0  # the run ended normally and was freed


def test_middleware_end_exit_at_a_tool_call() -> None:
    model, tools = endless_model(), ToolCounter()
    agent = create_agent(model, [tools.tool], middleware=[middleware("end", max_tool_calls=2)])
    out = agent.invoke(USER)
    assert tools.calls == 2
    assert model.call_count == 3  # no model call after the verdict
    assert "max_tool_calls=2" in out["messages"][-1].content


def test_middleware_counts_retries_of_model_retry_middleware() -> None:
    from langchain.agents.middleware import ModelRetryMiddleware

    model = ScriptedChatModel(replies=[lambda m, n: tool_call("search", query="x")], fail_on={1, 2})
    tools = ToolCounter()
    retry = ModelRetryMiddleware(max_retries=3, initial_delay=0, jitter=False)
    agent = create_agent(model, [tools.tool], middleware=[retry, middleware(max_model_calls=4)])
    with pytest.raises(LoopGuardAbort) as info:
        agent.invoke(USER)
    # two failed attempts + two successful calls = 4 provider calls, then the fifth is refused
    assert model.call_count == 4
    assert info.value.verdict.usage["model_calls"] == 4
    assert tools.calls == 2


def test_middleware_stream() -> None:
    model, tools = endless_model(), ToolCounter()
    agent = create_agent(model, [tools.tool], middleware=[middleware(max_model_calls=2)])
    with pytest.raises(LoopGuardAbort):
        for _ in agent.stream(USER, stream_mode="values"):
            pass
    assert model.call_count == 2


def test_many_concurrent_async_runs_are_counted_apart() -> None:
    async def main() -> list[Any]:
        h = handler(max_model_calls=3)
        pairs = [(endless_model(), ToolCounter()) for _ in range(20)]
        agents = [create_agent(m, [t.tool]) for m, t in pairs]
        results = await asyncio.gather(
            *(a.ainvoke(USER, config={"callbacks": [h]}) for a in agents), return_exceptions=True
        )
        assert h.guard.active_runs == 0
        return [(r, m.call_count) for r, (m, _) in zip(results, pairs, strict=True)]

    for result, calls in asyncio.run(main()):
        assert isinstance(result, LoopGuardAbort)
        assert calls == 3


def test_handler_with_model_retry_middleware_that_swallows_errors() -> None:
    # ModelRetryMiddleware(on_failure="continue") turns the final failure into an AIMessage and
    # lets the agent finish. The run was aborted, so the caller still gets the abort.
    from langchain.agents.middleware import ModelRetryMiddleware

    model, tools = endless_model(), ToolCounter()
    retry = ModelRetryMiddleware(max_retries=3, initial_delay=0, jitter=False)
    agent = create_agent(model, [tools.tool], middleware=[retry])
    with pytest.raises(LoopGuardAbort):
        agent.invoke(USER, config={"callbacks": [handler(max_model_calls=2)]})
    assert model.call_count == 2
    assert tools.calls == 2


def test_middleware_with_model_retry_after_it_in_the_list() -> None:
    # Listed after LoopGuardMiddleware, the retry middleware wraps the model more closely, so
    # loopguard sees one call per logical step; the refused step's retries never reach it.
    from langchain.agents.middleware import ModelRetryMiddleware

    model, tools = endless_model(), ToolCounter()
    retry = ModelRetryMiddleware(max_retries=2, initial_delay=0, jitter=False)
    agent = create_agent(model, [tools.tool], middleware=[middleware(max_model_calls=2), retry])
    with pytest.raises(LoopGuardAbort):
        agent.invoke(USER)
    assert model.call_count == 2


def test_middleware_passes_a_nudge_given_on_tool_results_to_the_next_model_call() -> None:
    # tool_repeat judges on tool results: the same search, the same answer. Its nudge is given
    # between model calls and must reach the model with the next one; a model that heeds it
    # finishes and is never stopped.
    from langchain_core.messages import HumanMessage

    seen: list[str] = []

    def reply(messages: list[Any], n: int) -> AIMessage:
        nudges = [
            m.content
            for m in messages
            if isinstance(m, HumanMessage) and "[loopguard]" in str(m.content)
        ]
        if nudges:
            seen.extend(nudges)
            return AIMessage("The forecast service keeps returning the same page; giving up.")
        return tool_call("search", query="weather paris")

    model, tools = ScriptedChatModel(replies=[reply]), ToolCounter()
    only_tool_results = Policy(similarity={"enabled": False}, cycle={"enabled": False})
    agent = create_agent(
        model,
        [tools.tool],
        middleware=[LoopGuardMiddleware(policy=only_tool_results, telemetry=False)],
    )
    out = agent.invoke(USER)
    assert "giving up" in out["messages"][-1].content
    assert len(seen) == 1 and "search" in seen[0]
    assert tools.calls <= 4
