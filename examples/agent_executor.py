"""The classic AgentExecutor (langchain-classic) guarded by the callback handler. Left alone it
would run to its default max_iterations=15; loopguard stops the repeated search much earlier.

    python examples/agent_executor.py
"""

from __future__ import annotations

from _bedrock import chat_model
from langchain_classic.agents import AgentExecutor, create_tool_calling_agent
from langchain_core.prompts import ChatPromptTemplate

from loopguard import LoopGuardAbort, LoopGuardCallbackHandler, Policy
from loopguard.demo.tools import web_search

prompt = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer shopping questions. Search before you answer."),
        ("human", "{input}"),
        ("placeholder", "{agent_scratchpad}"),
    ]
)

with chat_model("search-loop") as llm:
    executor = AgentExecutor(
        agent=create_tool_calling_agent(llm, [web_search], prompt), tools=[web_search]
    )
    handler = LoopGuardCallbackHandler(policy=Policy(), agent="executor")
    try:
        out = executor.invoke(
            {"input": "What does the ACME X100 cost today?"}, config={"callbacks": [handler]}
        )
        print("answer:", out["output"])
    except LoopGuardAbort as stop:
        v = stop.verdict
        print(
            f"stopped by {v.detector} at model call {v.step} "
            f"(AgentExecutor's own limit: {executor.max_iterations} iterations): {v.reason}"
        )
