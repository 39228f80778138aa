"""create_agent + the callback handler: loopguard stops an agent that keeps searching.

python examples/create_agent_handler.py
"""

from __future__ import annotations

from _bedrock import chat_model
from langchain.agents import create_agent

from loopguard import LoopGuardAbort, LoopGuardCallbackHandler, Policy
from loopguard.demo.tools import web_search

with chat_model("search-loop") as llm:
    agent = create_agent(
        llm,
        [web_search],
        name="shopper",
        system_prompt="Answer shopping questions. Search before you answer.",
    )
    # The default detectors plus a dollar cap for this run.
    handler = LoopGuardCallbackHandler(policy=Policy(max_cost_usd=0.50), agent="shopper")
    try:
        result = agent.invoke(
            {"messages": [("user", "What does the ACME X100 cost today?")]},
            config={"callbacks": [handler]},
        )
        print("answer:", result["messages"][-1].text)
    except LoopGuardAbort as stop:
        v = stop.verdict
        print(f"stopped by {v.detector} at model call {v.step}: {v.reason}")
        print(
            f"spent: {v.usage['model_calls']} model calls, {v.usage['input_tokens']:,} input "
            f"tokens, ${v.usage['cost_usd']:.4f}"
        )
