"""create_agent + the middleware with a graceful end: instead of raising, the agent returns,
its last message saying what loopguard stopped and why.

    python examples/create_agent_middleware.py
"""

from __future__ import annotations

from _bedrock import chat_model
from langchain.agents import create_agent

from loopguard import LoopGuardMiddleware, Policy
from loopguard.demo.tools import fetch_page, web_search

with chat_model("ping-pong") as llm:
    guard = LoopGuardMiddleware(policy=Policy(), agent="shopper", exit_behavior="end")
    agent = create_agent(
        llm,
        [web_search, fetch_page],
        name="shopper",
        system_prompt="Answer shopping questions. Search before you answer.",
        middleware=[guard],
    )  # list loopguard last: it wraps the model call
    result = agent.invoke({"messages": [("user", "What does the ACME X100 cost today?")]})
    print(f"the agent returned normally ({len(result['messages'])} messages)")
    print("last message:", result["messages"][-1].text)
