"""Pause instead of kill: the middleware with exit_behavior="interrupt" asks a person.

A stop (a cap or a loop detector) pauses the agent with LangGraph's interrupt(); the pause says
what stopped it and what the run has spent. The person answers with Command(resume=...):
raise a limit for this run only, let it finish with one more call, or stop it. The run keeps
its spend and detector state across the pause. It needs a checkpointer.

    python examples/pause_and_resume.py
"""

from __future__ import annotations

from _bedrock import chat_model
from langchain.agents import create_agent
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from loopguard import LoopGuardMiddleware, Policy
from loopguard.demo.tools import fetch_page, web_search


def show(out: dict) -> dict | None:
    """Print the pause, if the agent paused, and return its value."""
    if "__interrupt__" not in out:
        print("the agent ended:", out["messages"][-1].text)
        return None
    pause = out["__interrupt__"][0].value
    spend = pause["spend"]
    print(
        f"paused by [{pause['detector']}] at model call {pause['step']}: {pause['reason']}\n"
        f"  spent so far: {spend['model_calls']} model calls, ${spend['cost_usd']:.4f}"
    )
    return pause


with chat_model("ping-pong") as llm:
    guard = LoopGuardMiddleware(
        policy=Policy(max_model_calls=3), agent="shopper", exit_behavior="interrupt"
    )
    agent = create_agent(
        llm,
        [web_search, fetch_page],
        name="shopper",
        system_prompt="Answer shopping questions. Search before you answer.",
        middleware=[guard],
        checkpointer=InMemorySaver(),
    )
    thread = {"configurable": {"thread_id": "order-42"}}
    show(agent.invoke({"messages": [("user", "What does the ACME X100 cost?")]}, thread))

    print("person: raise max_model_calls to 6 for this run")
    pause = show(agent.invoke(Command(resume={"limits": {"max_model_calls": 6}}), thread))

    print("person: stop it")
    show(agent.invoke(Command(resume="stop"), thread))
