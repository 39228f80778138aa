"""Several agents, one loopguard.toml, one guard: each agent runs under its own policy.

python examples/per_agent_policies.py
"""

from __future__ import annotations

from pathlib import Path

from _bedrock import chat_model
from langchain.agents import create_agent

from loopguard import Guard, LoopGuardAbort, LoopGuardCallbackHandler
from loopguard.demo.tools import fetch_page, web_search

guard = Guard(Path(__file__).with_name("loopguard.toml"))  # or $LOOPGUARD_CONFIG

# (agent name, FakeBedrock scenario, tools, question)
AGENTS = [
    ("researcher", "snowball", [fetch_page], "Summarise the annual report."),
    ("support", "search-loop", [web_search], "What does the ACME X100 cost today?"),
    ("concierge", "healthy", [web_search, fetch_page], "What does the ACME X100 cost today?"),
]

for name, scenario, tools, question in AGENTS:
    policy = guard.policy_for(name)
    with chat_model(scenario) as llm:
        agent = create_agent(llm, tools, name=name)
        handler = LoopGuardCallbackHandler(guard, agent=name)
        try:
            result = agent.invoke(
                {"messages": [("user", question)]}, config={"callbacks": [handler]}
            )
            print(
                f"{name}: finished (max_cost_usd={policy.max_cost_usd}): "
                f"{result['messages'][-1].text}"
            )
        except LoopGuardAbort as stop:
            v = stop.verdict
            print(f"{name}: stopped by {v.detector} at model call {v.step}: {v.reason}")
