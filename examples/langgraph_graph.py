"""A hand-built LangGraph graph (model node, ToolNode, conditional edge) guarded by the callback
handler. The scripted model reads one long page after another; a dollar cap stops it.

    python examples/langgraph_graph.py
"""

from __future__ import annotations

from _bedrock import chat_model
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from loopguard import LoopGuardAbort, LoopGuardCallbackHandler, Policy
from loopguard.demo.tools import fetch_page

with chat_model("snowball") as llm:
    model = llm.bind_tools([fetch_page])

    def call_model(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    # handle_tool_errors=True turns tool exceptions into messages; loopguard's abort still
    # reaches the caller.
    builder.add_node("tools", ToolNode([fetch_page], handle_tool_errors=True))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition)
    builder.add_edge("tools", "model")
    graph = builder.compile(name="report-reader")

    handler = LoopGuardCallbackHandler(policy=Policy(max_cost_usd=0.10), agent="report-reader")
    try:
        graph.invoke(
            {"messages": [("user", "Summarise the annual report.")]},
            config={"callbacks": [handler], "recursion_limit": 200},
        )
        print("finished without being stopped")
    except LoopGuardAbort as stop:
        v = stop.verdict
        print(f"stopped by {v.detector} at model call {v.step}: {v.reason}")
        print(
            f"spent: ${v.usage['cost_usd']:.4f} of the $0.10 cap, "
            f"{v.usage['input_tokens']:,} input tokens"
        )
