"""Shadow mode: evaluate everything, stop nothing, and report what would have been stopped.
How to tune a policy on production traffic before enforcing it.

    python examples/shadow_mode.py
"""

from __future__ import annotations

from _bedrock import chat_model
from langchain.agents import create_agent
from langgraph.errors import GraphRecursionError

from loopguard import Guard, LoopGuardCallbackHandler, Policy
from loopguard.demo.tools import web_search
from loopguard.events import ModelStart


class ReportWouldBeStops:
    """A guard sink (sinks observe, never decide): prints each would-be abort."""

    def __init__(self) -> None:
        self.model_calls = 0

    def on_event(self, state, event) -> None:
        if isinstance(event, ModelStart):
            self.model_calls += 1

    def on_verdict(self, state, event, verdict) -> None:
        if not verdict.enforced:
            print(
                f"shadow: would have stopped the run at model call {verdict.step}: "
                f"[{verdict.detector}] {verdict.reason}"
            )

    def on_run_end(self, state, event) -> None:
        pass


report = ReportWouldBeStops()
guard = Guard(Policy(mode="shadow"), sinks=[report])

with chat_model("search-loop") as llm:
    agent = create_agent(llm, [web_search], name="shopper")
    try:
        agent.invoke(
            {"messages": [("user", "What does the ACME X100 cost today?")]},
            # 25 was LangGraph's default recursion limit for years.
            config={
                "callbacks": [LoopGuardCallbackHandler(guard, agent="shopper")],
                "recursion_limit": 25,
            },
        )
        print(f"the run finished by itself after {report.model_calls} model calls")
    except GraphRecursionError:
        print(
            f"nothing was stopped: LangGraph's recursion limit ended the run after "
            f"{report.model_calls} model calls"
        )
