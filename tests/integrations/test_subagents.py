"""Sub-agents: a real `create_agent` agent called as a tool, or run as a subgraph node, inside a
guarded run.

Each test counts the provider calls of every agent, so a sub-agent call that slipped past the
enclosing run's cap (an overshoot), or one refused that should have gone out, fails.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph

from loopguard import (
    Guard,
    LoopGuardAbort,
    LoopGuardCallbackHandler,
    LoopGuardMiddleware,
    Policy,
    PolicySet,
)
from tests.integrations.fakes import ScriptedChatModel, ToolCounter, endless_model, tool_call

USER = {"messages": [("user", "Plan the trip.")]}
QUIET = {"progress": {"enabled": False}}  # only the limits under test stop these runs


def policies(parent: dict[str, Any] | None = None, **agents: dict[str, Any]) -> PolicySet:
    return PolicySet(
        default=Policy(**(parent or {}), **QUIET),
        agents={name: Policy(**limits, **QUIET) for name, limits in agents.items()},
    )


def middleware(guard: Guard | PolicySet) -> LoopGuardMiddleware:
    if isinstance(guard, Guard):
        return LoopGuardMiddleware(guard, telemetry=False)
    return LoopGuardMiddleware(policy=guard, telemetry=False)


def asks_child_forever() -> ScriptedChatModel:
    return ScriptedChatModel(replies=[lambda msgs, n: tool_call("ask_child", q=f"part {n}")])


def child_tool(child: Any) -> Any:
    """The sub-agent as a tool, sync and async (each way calls the real agent)."""

    @tool
    def ask_child(q: str) -> str:
        """Ask the child agent."""
        return str(child.invoke({"messages": [("user", q)]})["messages"][-1].content)

    @tool
    async def ask_child_async(q: str) -> str:
        """Ask the child agent."""
        out = await child.ainvoke({"messages": [("user", q)]})
        return str(out["messages"][-1].content)

    ask_child.coroutine = ask_child_async.coroutine
    return ask_child


def one_answer() -> ScriptedChatModel:
    return ScriptedChatModel(replies=[AIMessage("the child's answer")])


# --- the middleware ---------------------------------------------------------------------------


def test_middleware_sub_agent_calls_count_toward_the_parent_cap() -> None:
    # Each agent has its own middleware and its own guard (each built from the same policies):
    # parent call 1, child call 2, parent call 3, child call 4 would exceed the parent's 3.
    rules = policies({"max_model_calls": 3}, child={"max_model_calls": 50})
    parent_model, child_model = asks_child_forever(), one_answer()
    child = create_agent(child_model, [], name="child", middleware=[middleware(rules)])
    parent = create_agent(
        parent_model, [child_tool(child)], name="parent", middleware=[middleware(rules)]
    )
    with pytest.raises(LoopGuardAbort) as info:
        parent.invoke(USER)
    assert parent_model.call_count + child_model.call_count == 3  # no overshoot
    assert child_model.call_count == 1
    verdict = info.value.verdict
    assert verdict.agent == "child"
    assert verdict.evidence["limit"] == "max_model_calls"
    assert verdict.evidence["enclosing_agent"] == "parent"
    assert verdict.usage["model_calls"] == 3  # the enclosing run's count: the one capped


async def test_middleware_sub_agent_async_rolls_up() -> None:
    rules = policies({"max_model_calls": 4}, child={"max_model_calls": 50})
    parent_model, child_model = asks_child_forever(), one_answer()
    guard = Guard(rules)
    child = create_agent(child_model, [], name="child", middleware=[middleware(guard)])
    parent = create_agent(
        parent_model, [child_tool(child)], name="parent", middleware=[middleware(guard)]
    )
    with pytest.raises(LoopGuardAbort) as info:
        await parent.ainvoke(USER)
    assert parent_model.call_count + child_model.call_count == 4
    assert info.value.verdict.agent == "parent"  # its own 5th call: refused by its own cap
    assert guard.active_runs == 0  # the parent and every child run ended


def test_middleware_dollar_cap_counts_the_sub_agent_spend_streaming() -> None:
    # $1 a call (projection and settlement alike): a $2.50 cap lets exactly two calls out.
    guard = Guard(policies({"max_cost_usd": 2.5}), pricer=lambda *_: 1.0)
    parent_model, child_model = asks_child_forever(), one_answer()
    child = create_agent(child_model, [], name="child", middleware=[middleware(guard)])
    parent = create_agent(
        parent_model, [child_tool(child)], name="parent", middleware=[middleware(guard)]
    )
    with pytest.raises(LoopGuardAbort) as info:
        for _ in parent.stream(USER, stream_mode="updates"):
            pass
    assert parent_model.call_count + child_model.call_count == 2
    verdict = info.value.verdict
    assert verdict.evidence["limit"] == "max_cost_usd"
    assert verdict.evidence["spent_usd"] == 2.0  # the parent's spend includes the child's $1


def capped_tree(parent_exit: str, **agent: Any) -> tuple[Guard, Any, ScriptedChatModel, Any]:
    """A parent agent (max_model_calls=3) that asks its child agent (its own cap far higher,
    exit_behavior="end") again and again: the guard, the parent, and both models."""
    guard = Guard(policies({"max_model_calls": 3}, child={"max_model_calls": 50}))
    parent_model, child_model = asks_child_forever(), one_answer()
    child = create_agent(
        child_model,
        [],
        name="child",
        middleware=[LoopGuardMiddleware(guard, exit_behavior="end", telemetry=False)],
    )
    parent = create_agent(
        parent_model,
        [child_tool(child)],
        name="parent",
        middleware=[LoopGuardMiddleware(guard, exit_behavior=parent_exit, telemetry=False)],
        **agent,
    )
    return guard, parent, parent_model, child_model


def test_middleware_end_stops_the_child_then_the_parent_whose_cap_it_hit() -> None:
    # exit_behavior="end": the child ends with a stop message instead of raising; the parent's
    # cap is spent, so its next model call is refused and it ends too.
    guard, parent, parent_model, child_model = capped_tree("end")
    out = parent.invoke(USER)
    assert parent_model.call_count + child_model.call_count == 3
    assert "max_model_calls=3" in str(out["messages"][-1].content)
    assert guard.active_runs == 0


def test_middleware_outer_agent_pauses_for_its_sub_agents_spend() -> None:
    # The outer agent pauses (exit_behavior="interrupt"), its sub-agent ends ("end"): the
    # sub-agent's call refused by the outer cap ends it, the outer agent pauses at its next
    # call, and a person raises the outer cap for this run: the tree goes on to the new cap.
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command

    guard, parent, parent_model, child_model = capped_tree(
        "interrupt", checkpointer=InMemorySaver()
    )
    thread = {"configurable": {"thread_id": "t-1"}}
    out = parent.invoke(USER, thread)
    assert out["__interrupt__"][0].value["evidence"]["max"] == 3
    assert parent_model.call_count + child_model.call_count == 3
    out = parent.invoke(Command(resume={"limits": {"max_model_calls": 5}}), thread)
    assert out["__interrupt__"][0].value["evidence"]["max"] == 5
    assert parent_model.call_count + child_model.call_count == 5
    parent.invoke(Command(resume="stop"), thread)
    assert parent_model.call_count + child_model.call_count == 5
    assert guard.active_runs == 0


def test_middleware_sub_agent_is_judged_by_its_own_policy() -> None:
    rules = policies({"max_tool_calls": 50}, child={"max_tool_calls": 1})
    parent_model, child_model, searches = asks_child_forever(), endless_model(), ToolCounter()
    child = create_agent(child_model, [searches.tool], name="child", middleware=[middleware(rules)])
    parent = create_agent(
        parent_model, [child_tool(child)], name="parent", middleware=[middleware(rules)]
    )
    with pytest.raises(LoopGuardAbort) as info:
        parent.invoke(USER)
    assert searches.calls == 1
    assert parent_model.call_count == 1
    verdict = info.value.verdict
    assert (verdict.agent, verdict.evidence["limit"]) == ("child", "max_tool_calls")
    assert "enclosing_run" not in verdict.evidence  # the child's own cap


def test_middleware_max_depth_refuses_the_level_beyond_it() -> None:
    # An agent that calls itself as a tool: levels 0, 1 and 2 run; level 3 is refused.
    guard = Guard(policies({"max_depth": 2}))
    model = ScriptedChatModel(replies=[lambda msgs, n: tool_call("ask_child", q="deeper")])
    agent: Any = None

    @tool
    def ask_child(q: str) -> str:
        """Ask yourself."""
        return str(agent.invoke({"messages": [("user", q)]})["messages"][-1].content)

    agent = create_agent(model, [ask_child], name="recursive", middleware=[middleware(guard)])
    with pytest.raises(LoopGuardAbort) as info:
        agent.invoke(USER)
    assert model.call_count == 3  # one call per level that ran
    verdict = info.value.verdict
    assert (verdict.evidence["limit"], verdict.evidence["value"]) == ("max_depth", 3)
    assert guard.active_runs == 0


# --- the callback handler ---------------------------------------------------------------------


def handler(rules: PolicySet) -> LoopGuardCallbackHandler:
    return LoopGuardCallbackHandler(policy=rules, telemetry=False)


def test_handler_sub_agent_tool_rolls_up_and_has_its_own_policy() -> None:
    rules = policies({"max_model_calls": 3}, child={"max_model_calls": 50})
    parent_model, child_model = asks_child_forever(), one_answer()
    child = create_agent(child_model, [], name="child")
    parent = create_agent(parent_model, [child_tool(child)], name="parent")
    guard = handler(rules)
    with pytest.raises(LoopGuardAbort) as info:
        parent.invoke(USER, config={"callbacks": [guard]})
    assert parent_model.call_count + child_model.call_count == 3
    assert info.value.verdict.agent == "child"
    assert info.value.verdict.evidence["enclosing_agent"] == "parent"

    # The child's own policy: one tool call.
    rules = policies(child={"max_tool_calls": 1})
    child_model, searches = endless_model(), ToolCounter()
    child = create_agent(child_model, [searches.tool], name="child")
    parent = create_agent(asks_child_forever(), [child_tool(child)], name="parent")
    with pytest.raises(LoopGuardAbort) as info:
        parent.invoke(USER, config={"callbacks": [handler(rules)]})
    assert searches.calls == 1
    assert (info.value.verdict.agent, info.value.verdict.evidence["limit"]) == (
        "child",
        "max_tool_calls",
    )


def test_handler_sub_agent_streamed_with_its_model_streaming() -> None:
    # stream_mode="messages" makes every model stream token by token, the child's included.
    rules = policies({"max_model_calls": 3}, child={"max_model_calls": 50})
    parent_model, child_model = asks_child_forever(), one_answer()
    child = create_agent(child_model, [], name="child")
    parent = create_agent(parent_model, [child_tool(child)], name="parent")
    with pytest.raises(LoopGuardAbort) as info:
        for _ in parent.stream(
            USER, config={"callbacks": [handler(rules)]}, stream_mode="messages"
        ):
            pass
    assert parent_model.call_count + child_model.call_count == 3
    assert info.value.verdict.evidence["enclosing_agent"] == "parent"


async def test_handler_sub_agent_async_dollar_cap() -> None:
    guard = Guard(policies({"max_cost_usd": 2.5}), pricer=lambda *_: 1.0)
    parent_model, child_model = asks_child_forever(), one_answer()
    child = create_agent(child_model, [], name="child")
    parent = create_agent(parent_model, [child_tool(child)], name="parent")
    with pytest.raises(LoopGuardAbort) as info:
        await parent.ainvoke(USER, config={"callbacks": [LoopGuardCallbackHandler(guard)]})
    assert parent_model.call_count + child_model.call_count == 2
    assert info.value.verdict.evidence["limit"] == "max_cost_usd"
    assert guard.active_runs == 0


def test_handler_subgraph_nodes_roll_up_into_the_graph_run() -> None:
    # A graph with two named agents as nodes: "a" answers after two calls, "b" never ends.
    # The graph's cap of 4 model calls stops b at its second call; b's own cap (9) never does.
    a_model = ScriptedChatModel(replies=[tool_call("search", query="x"), AIMessage("a done")])
    b_model, searches = endless_model(), ToolCounter()
    graph = StateGraph(MessagesState)
    graph.add_node("first", create_agent(a_model, [searches.tool], name="a"))
    graph.add_node("second", create_agent(b_model, [searches.tool], name="b"))
    graph.add_edge(START, "first")
    graph.add_edge("first", "second")
    rules = policies({"max_model_calls": 4}, b={"max_model_calls": 9})
    with pytest.raises(LoopGuardAbort) as info:
        graph.compile().invoke(USER, config={"callbacks": [handler(rules)]})
    assert a_model.call_count + b_model.call_count == 4
    assert b_model.call_count == 2
    assert info.value.verdict.agent == "b"
    assert info.value.verdict.evidence["limit"] == "max_model_calls"

    # And each node's agent is judged by its own policy: b may make one call only.
    b_model = endless_model()
    graph = StateGraph(MessagesState)
    graph.add_node("second", create_agent(b_model, [searches.tool], name="b"))
    graph.add_edge(START, "second")
    with pytest.raises(LoopGuardAbort) as info:
        graph.compile().invoke(
            USER, config={"callbacks": [handler(policies(b={"max_model_calls": 1}))]}
        )
    assert b_model.call_count == 1
    assert "enclosing_run" not in info.value.verdict.evidence


@pytest.mark.parametrize("adapter", ["middleware", "handler"])
def test_a_pause_inside_a_tool_is_not_a_tool_failure(adapter: str) -> None:
    # A tool that asks a person (LangGraph's interrupt()) pauses the agent: the guard must not
    # count it as a failed tool call (the repeated-errors and tool-repeat detectors would).
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command, interrupt

    from loopguard.events import Event, ToolFailed
    from loopguard.state import RunState

    class Events:
        def __init__(self) -> None:
            self.seen: list[Event] = []

        def on_event(self, state: RunState, event: Event) -> None:
            self.seen.append(event)

        def on_verdict(self, state: RunState, event: Event, verdict: Any) -> None:
            pass

        def on_run_end(self, state: RunState, event: Any) -> None:
            pass

    @tool
    def ask_person(q: str) -> str:
        """Ask a person."""
        return str(interrupt(q))

    events = Events()
    guard = Guard(policies(), sinks=[events])
    model = ScriptedChatModel(replies=[tool_call("ask_person", q="ok?"), AIMessage("done")])
    on_agent = [middleware(guard)] if adapter == "middleware" else []
    agent = create_agent(model, [ask_person], middleware=on_agent, checkpointer=InMemorySaver())
    thread: dict[str, Any] = {"configurable": {"thread_id": "t-2"}}
    if adapter == "handler":
        thread["callbacks"] = [LoopGuardCallbackHandler(guard)]
    assert "__interrupt__" in agent.invoke(USER, thread)
    out = agent.invoke(Command(resume="yes"), thread)
    assert out["messages"][-1].content == "done"
    assert not [e for e in events.seen if isinstance(e, ToolFailed)]
