"""Pause instead of kill: `LoopGuardMiddleware(exit_behavior="interrupt")`.

A stop pauses a real `create_agent` agent through LangGraph's `interrupt()` on a real
checkpointer (the in-memory saver); a person resumes it with `Command(resume=...)`. Each test
counts the provider calls and tool runs, so a resume that made a paid call twice, or let one
through that the decision did not allow, fails.
"""

from __future__ import annotations

from typing import Any, ClassVar

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from loopguard import Guard, LoopGuardMiddleware, Policy
from loopguard.events import Event, ModelEnd
from loopguard.state import RunState
from loopguard.verdict import Verdict, abort
from tests.integrations.fakes import ScriptedChatModel, ToolCounter, endless_model, tool_call

USER = {"messages": [("user", "What's the weather?")]}
QUIET = {"progress": {"enabled": False}}  # only the limits under test stop these runs


def paused_agent(
    model: Any, tools: ToolCounter, guard: Guard | None = None, **limits: Any
) -> tuple[Any, LoopGuardMiddleware]:
    guard_mw = LoopGuardMiddleware(
        guard or Guard(Policy(**limits, **QUIET)), exit_behavior="interrupt", telemetry=False
    )
    agent = create_agent(model, [tools.tool], middleware=[guard_mw], checkpointer=InMemorySaver())
    return agent, guard_mw


def config(thread: str = "t-1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def the_pause(out: dict[str, Any]) -> dict[str, Any]:
    interrupts = out.get("__interrupt__")
    assert interrupts and len(interrupts) == 1, out.get("__interrupt__")
    payload: dict[str, Any] = interrupts[0].value
    assert payload["type"] == "loopguard.stop"
    return payload


def run_state(guard_mw: LoopGuardMiddleware, payload: dict[str, Any]) -> RunState:
    state = guard_mw.guard.get_run(payload["run"])
    assert state is not None, "a paused run stays live in the guard"
    return state


def test_a_cap_pauses_and_a_raised_limit_lets_the_run_go_on() -> None:
    model, tools = endless_model(), ToolCounter()
    agent, guard_mw = paused_agent(model, tools, max_model_calls=3)

    payload = the_pause(agent.invoke(USER, config()))
    assert payload["detector"] == "limits"
    assert payload["limit"] == {"name": "max_model_calls", "value": 3}
    assert payload["spend"]["model_calls"] == 3
    assert payload["choices"] == ["continue", "finish", "stop"]
    assert model.call_count == 3 and tools.calls == 3  # paused before the 4th call went out
    spent = run_state(guard_mw, payload).cost_usd
    assert spent > 0

    again = the_pause(agent.invoke(Command(resume={"limits": {"max_model_calls": 5}}), config()))
    assert again["run"] == payload["run"]  # the same run, resumed: not a new one
    assert model.call_count == 5 and tools.calls == 5  # two more, and no call made twice
    state = run_state(guard_mw, again)
    assert state.model_calls == 5 and state.cost_usd > spent  # counts and spend carried on
    assert again["spend"]["model_calls"] == 5

    out = agent.invoke(Command(resume="stop"), config())
    assert "__interrupt__" not in out
    last = out["messages"][-1]
    assert isinstance(last, AIMessage) and "Stopped by loopguard [limits]" in last.content
    assert model.call_count == 5
    assert guard_mw.guard.active_runs == 0  # the run ended (as aborted) and was freed


def test_the_raised_limit_is_for_this_run_only() -> None:
    model, tools = endless_model(), ToolCounter()
    agent, _ = paused_agent(model, tools, max_model_calls=2)
    the_pause(agent.invoke(USER, config("a")))
    the_pause(agent.invoke(Command(resume={"limits": {"max_model_calls": 4}}), config("a")))
    assert model.call_count == 4
    # Another run under the same middleware still has the policy's own limit.
    the_pause(agent.invoke(USER, config("b")))
    assert model.call_count == 6


def test_continue_without_new_limits_asks_again_at_once() -> None:
    model, tools = endless_model(), ToolCounter()
    agent, _ = paused_agent(model, tools, max_model_calls=2)
    first = the_pause(agent.invoke(USER, config()))
    second = the_pause(agent.invoke(Command(resume="continue"), config()))
    assert second["detector"] == first["detector"] == "limits"
    assert model.call_count == 2  # the cap still holds: nothing went out


def finishing_model() -> ScriptedChatModel:
    """Searches for ever, except when told to finish: then it answers."""

    def reply(messages: list[BaseMessage], n: int) -> AIMessage:
        if "give your final answer now" in str(messages[-1].content):
            return AIMessage(content="Sunny, 21 degrees.")
        return tool_call("search", query=f"weather source {n}")

    return ScriptedChatModel(replies=[reply])


def test_finish_allows_one_more_call_without_tools_then_ends() -> None:
    model, tools = finishing_model(), ToolCounter()
    agent, guard_mw = paused_agent(model, tools, max_model_calls=3)
    the_pause(agent.invoke(USER, config()))
    out = agent.invoke(Command(resume="finish"), config())
    assert "__interrupt__" not in out
    assert out["messages"][-1].content == "Sunny, 21 degrees."
    assert model.call_count == 4 and tools.calls == 3
    assert guard_mw.guard.active_runs == 0


def test_finish_refuses_tools_and_asks_no_second_question() -> None:
    model, tools = endless_model(), ToolCounter()  # ignores the note and calls a tool again
    agent, _ = paused_agent(model, tools, max_model_calls=2)
    the_pause(agent.invoke(USER, config()))
    out = agent.invoke(Command(resume="finish"), config())
    assert "__interrupt__" not in out
    assert model.call_count == 3  # exactly one more call
    assert tools.calls == 2  # its tool call was refused
    assert "Stopped by loopguard" in out["messages"][-1].content


class StopOnAnswer:
    """A detector that stops the run on the answer of model call `at` (after the call)."""

    name: ClassVar[str] = "on_answer"
    events: ClassVar[tuple[type[Event], ...]] = (ModelEnd,)

    def __init__(self, at: int) -> None:
        self.at = at

    def __call__(self, state: RunState, event: Event) -> Verdict | None:
        if state.model_calls == self.at:
            return abort(self.name, f"stopped on the answer of call {self.at}")
        return None


def test_a_stop_after_the_call_hands_back_the_answer_without_calling_again() -> None:
    model, tools = endless_model(), ToolCounter()
    guard = Guard(Policy(max_model_calls=4, **QUIET), detectors=[StopOnAnswer(at=2)])
    agent, _ = paused_agent(model, tools, guard)
    payload = the_pause(agent.invoke(USER, config()))
    assert payload["detector"] == "on_answer"
    assert model.call_count == 2 and tools.calls == 1  # call 2 answered; its tool not run yet

    out = agent.invoke(Command(resume="continue"), config())
    assert the_pause(out)["detector"] == "limits"  # then on to the policy's own cap
    # Call 2's held answer was let through (its tool ran) and the model was not asked for it
    # again: calls 3 and 4 are new ones, the 5th is refused.
    assert model.call_count == 4 and tools.calls == 4
    searches = [m.tool_calls[0]["args"] for m in out["messages"] if getattr(m, "tool_calls", None)]
    assert searches == [{"query": q} for q in ("volcanoes", "tides", "glaciers", "monsoons")]


def test_a_tool_cap_pauses_before_the_tool_runs() -> None:
    model, tools = endless_model(), ToolCounter()
    agent, _ = paused_agent(model, tools, max_tool_calls=2)
    payload = the_pause(agent.invoke(USER, config()))
    assert payload["limit"]["name"] == "max_tool_calls"
    assert tools.calls == 2 and model.call_count == 3
    the_pause(agent.invoke(Command(resume={"limits": {"max_tool_calls": 3}}), config()))
    assert tools.calls == 3 and model.call_count == 4


def test_a_bad_resume_value_asks_again_saying_what_was_wrong() -> None:
    model, tools = endless_model(), ToolCounter()
    agent, _ = paused_agent(model, tools, max_model_calls=1)
    assert "error" not in the_pause(agent.invoke(USER, config()))
    again = the_pause(agent.invoke(Command(resume="maybe"), config()))
    assert "'maybe': expected 'continue', 'finish', 'stop'" in again["error"]
    again = the_pause(agent.invoke(Command(resume={"limits": {"max_modle_calls": 3}}), config()))
    assert "max_modle_calls" in again["error"]  # the policy's own error, naming the key
    assert model.call_count == 1
    # A proper answer still works.
    the_pause(agent.invoke(Command(resume={"limits": {"max_model_calls": 2}}), config()))
    assert model.call_count == 2


async def test_async_pause_and_resume_keep_spend_and_counts() -> None:
    model, tools = endless_model(), ToolCounter()
    agent, guard_mw = paused_agent(model, tools, max_model_calls=2)
    payload = the_pause(await agent.ainvoke(USER, config()))
    spent = run_state(guard_mw, payload).cost_usd
    again = the_pause(
        await agent.ainvoke(Command(resume={"limits": {"max_model_calls": 3}}), config())
    )
    assert model.call_count == 3
    assert run_state(guard_mw, again).cost_usd > spent
    out = await agent.ainvoke(Command(resume="stop"), config())
    assert "Stopped by loopguard" in out["messages"][-1].content
    assert model.call_count == 3


def test_guard_resume_is_for_live_stopped_runs() -> None:
    guard = Guard(Policy(max_model_calls=5))
    assert guard.resume("nope") is None  # not live: nothing to lift


def test_the_pause_carries_no_metadata_value() -> None:
    # The interrupt's value is kept in the checkpointer: a tenant budget's refusal must not
    # put the tenant id there (the verdict's ledger key holds it).
    import json
    import uuid

    from loopguard.testing.policies import money_policy

    tenant = "acme-private-tenant"
    policy = money_policy(
        ledger=f"memory://{uuid.uuid4().hex}",
        budgets=[{"scope": "tenant", "key": "tenant_id", "max_usd": 0.0001}],
    )
    agent, _ = paused_agent(endless_model(), ToolCounter(), Guard(policy))
    payload = the_pause(agent.invoke(USER, {**config(), "metadata": {"tenant_id": tenant}}))
    assert payload["detector"] == "budget"
    assert payload["limit"] == {"name": "budget.max_usd", "value": 0.0001}
    assert payload["evidence"]["key"].startswith("<not captured: ")
    assert tenant not in json.dumps(payload, default=str)
