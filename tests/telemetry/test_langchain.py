"""The handler's telemetry on a real agent (create_agent + ChatBedrockConverse on FakeBedrock),
alone and beside OpenInference's and OpenLLMetry's LangChain instrumentation."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from loopguard import LoopGuardAbort, LoopGuardCallbackHandler, Policy
from loopguard.telemetry import semconv as sc
from tests.conftest import require
from tests.telemetry.conftest import langchain_restored

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.fixture
def instrumentation(request, otel):
    """None, or OpenInference / OpenLLMetry instrumenting LangChain on the test's provider."""
    if request.param is None:
        yield None
        return
    if request.param == "openinference":
        module = require("openinference.instrumentation.langchain")
        instrumentor = module.LangChainInstrumentor()
    else:
        module = require("opentelemetry.instrumentation.langchain")
        instrumentor = module.LangchainInstrumentor()
    with langchain_restored():
        instrumentor.instrument(tracer_provider=otel.tracer_provider)
        try:
            yield request.param
        finally:
            instrumentor.uninstrument()


def run_agent(otel, telemetry=True, *, stream=False, policy=None):
    require("langchain.agents")
    require("langchain_aws")
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from loopguard.testing import FakeBedrock, Reply

    @tool
    def web_search(query: str) -> str:
        """Search the web."""
        return f"results for {query}"

    script = [
        Reply.calling("web_search", f"Searching for topic {i} now.", query=f"topic {i}")
        for i in range(5)
    ]
    handler = LoopGuardCallbackHandler(
        policy=policy or Policy(max_tool_calls=2),
        agent="researcher",
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
        telemetry=telemetry,
    )
    before = trace.get_current_span()
    with FakeBedrock(script) as fake:
        agent = create_agent(
            fake.chat_model(MODEL, streaming=stream) if stream else fake.chat_model(MODEL),
            [web_search],
        )
        with pytest.raises(LoopGuardAbort):
            agent.invoke({"messages": [("user", "research this")]}, config={"callbacks": [handler]})
    # No context is left attached, whoever else instruments the run.
    assert trace.get_current_span() is before
    return otel.spans()


def ours(spans):
    return [s for s in spans if s.instrumentation_scope.name == "loopguard"]


@pytest.mark.parametrize("instrumentation", [None, "openinference", "openllmetry"], indirect=True)
def test_loopguard_spans_are_right_beside_other_instrumentation(otel, instrumentation):
    spans = run_agent(otel)
    mine = ours(spans)
    if instrumentation is not None:
        assert len(spans) > len(mine)  # theirs are there too
    [root] = [s for s in mine if s.name == "invoke_agent researcher"]
    chats = [s for s in mine if s.name == f"chat {MODEL}"]
    tools = [s for s in mine if s.name == "execute_tool web_search"]
    guardrails = [s for s in mine if s.name == "run_guardrail loopguard"]
    assert len(mine) == 1 + len(chats) + len(tools) + len(guardrails)
    # A warning and the abort, each under the tool call it judged.
    assert [g.attributes[sc.GUARDRAIL_VERDICT_TYPE] for g in guardrails] == ["warn", "deny"]
    tool_ids = {t.context.span_id for t in tools}
    assert all(g.parent.span_id in tool_ids for g in guardrails)
    assert len(chats) == 3 and len(tools) == 3  # the third tool call was refused
    for s in chats + tools:
        assert s.parent.span_id == root.context.span_id
        assert s.context.trace_id == root.context.trace_id
        assert root.start_time <= s.start_time <= s.end_time <= root.end_time
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes[sc.ERROR_TYPE] == "LoopGuardAbort"
    assert [e.name for e in root.events] == ["loopguard.abort"]
    for chat in chats:
        assert chat.attributes[sc.PROVIDER_NAME] == "aws.bedrock"  # from LangChain's ls_provider
        assert chat.attributes[sc.USAGE_INPUT_TOKENS] > 0
        assert chat.attributes[sc.USAGE_OUTPUT_TOKENS] > 0
    [refused] = [t for t in tools if t.attributes.get(sc.LG_REFUSED)]
    assert refused.status.status_code is StatusCode.ERROR
    assert sum(1 for t in tools if any(e.name == "loopguard.warning" for e in t.events)) == 1


def test_streamed_call_has_time_to_first_chunk(otel):
    spans = run_agent(otel, stream=True)
    chats = [s for s in ours(spans) if s.name == f"chat {MODEL}"]
    assert chats and all(c.attributes[sc.RESPONSE_TIME_TO_FIRST_CHUNK] >= 0 for c in chats)


@pytest.mark.parametrize("instrumentation", ["openinference", "openllmetry"], indirect=True)
def test_annotate_mode_puts_loopguard_on_their_spans(otel, instrumentation):
    spans = run_agent(otel, telemetry="annotate")
    assert ours(spans) == []  # no second tree
    costed = [s for s in spans if sc.LG_RUN_COST in s.attributes]
    assert costed, "the model calls' spans carry loopguard's attributes"
    assert all("ChatBedrockConverse" in s.name for s in costed if sc.LG_CALL_COST in s.attributes)
    assert len([s for s in costed if sc.LG_CALL_COST in s.attributes]) == 3
    warned = [s for s in spans if any(e.name == "loopguard.warning" for e in s.events)]
    assert len(warned) == 1 and "web_search" in warned[0].name
    [root] = [s for s in spans if s.attributes.get(sc.LG_RUN_ID)]
    assert root.attributes[sc.ERROR_TYPE] == "LoopGuardAbort"
    assert root.status.status_code is StatusCode.ERROR
    [abort] = [e for e in root.events if e.name == "loopguard.abort"]
    assert abort.attributes[sc.LG_DETECTOR] == "limits"
    # Their names and gen_ai attributes are left alone.
    assert not any(s.name.startswith("invoke_agent researcher") for s in spans)


def test_annotate_mode_without_other_instrumentation_uses_the_current_span(otel):
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as request:
        spans_before = len(otel.spans())
        from loopguard.events import ModelEnd, ModelStart, RunEnd, Usage
        from loopguard.guard import Guard
        from loopguard.telemetry.spans import SpanSink

        guard = Guard(
            Policy(),
            sinks=[SpanSink(tracer_provider=otel.tracer_provider, mode="annotate", metrics=False)],
        )
        guard.process(ModelStart(run="r", agent="a", id="m", model="gpt-4o", ts=1.0e9))
        guard.process(
            ModelEnd(run="r", agent="a", id="m", model="gpt-4o", ts=1.0e9 + 1, usage=Usage(3, 4))
        )
        guard.process(RunEnd(run="r", agent="a", ts=1.0e9 + 2))
        assert len(otel.spans()) == spans_before  # none made
    [span] = otel.spans()
    assert span is not None and span.name == "request"
    assert span.attributes[sc.LG_RUN_ID] == "r"
    assert span.attributes[sc.LG_RUN_STATUS] == "ok"
    assert request.get_span_context().span_id == span.context.span_id


def test_a_failed_run_leaves_no_context_and_records_the_error(otel):
    require("langchain_aws")
    from loopguard.testing import FakeBedrock, Fault

    handler = LoopGuardCallbackHandler(
        agent="researcher", tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    before = trace.get_current_span()
    with FakeBedrock([Fault.validation("bad request")]) as fake:
        with pytest.raises(Exception, match="bad request"):
            fake.chat_model(MODEL).invoke("hello", config={"callbacks": [handler]})
    assert trace.get_current_span() is before
    root = otel.span("invoke_agent researcher")
    chat = otel.span(f"chat {MODEL}")
    assert chat.parent.span_id == root.context.span_id
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.attributes[sc.ERROR_TYPE] == "ValidationException"
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes[sc.LG_RUN_STATUS] == "error"
    [point] = otel.points(sc.METRIC_OPERATION_DURATION)
    assert point.attributes[sc.ERROR_TYPE] == "ValidationException"


def test_a_model_called_inside_a_tool_nests_under_the_tool(otel):
    require("langchain.agents")
    require("langchain_aws")
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from loopguard.testing import FakeBedrock, Reply

    script = [
        Reply.calling("summarize", "Let me summarize.", text="a long text"),
        Reply(text="a summary"),
        Reply(text="Here is the summary."),
    ]
    with FakeBedrock(script) as fake:
        inner = fake.chat_model(MODEL)

        @tool
        def summarize(text: str) -> str:
            """Summarize a text."""
            return inner.invoke(f"Summarize: {text}").text  # inherits the run's callbacks

        handler = LoopGuardCallbackHandler(
            agent="writer", tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
        )
        agent = create_agent(fake.chat_model(MODEL), [summarize])
        agent.invoke({"messages": [("user", "summarize this")]}, config={"callbacks": [handler]})
    mine = ours(otel.spans())
    root = next(s for s in mine if s.name == "invoke_agent writer")
    tool_span = next(s for s in mine if s.name == "execute_tool summarize")
    chats = sorted((s for s in mine if s.name == f"chat {MODEL}"), key=lambda s: s.start_time)
    assert len(chats) == 3
    assert [c.parent.span_id for c in chats] == [
        root.context.span_id,
        tool_span.context.span_id,
        root.context.span_id,
    ]
    assert tool_span.parent.span_id == root.context.span_id
    assert tool_span.start_time <= chats[1].start_time <= chats[1].end_time <= tool_span.end_time
    assert root.status.status_code is StatusCode.UNSET
    assert root.attributes[sc.LG_MODEL_CALLS] == 3


async def test_async_agent_gets_the_same_tree_and_leaves_no_context(otel):
    require("langchain.agents")
    require("langchain_aws")
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from loopguard.testing import FakeBedrock, Reply

    @tool
    def web_search(query: str) -> str:
        """Search the web."""
        return f"results for {query}"

    handler = LoopGuardCallbackHandler(
        policy=Policy(max_tool_calls=1),
        agent="researcher",
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
    )
    before = trace.get_current_span()
    script = [Reply.calling("web_search", f"Searching {i}.", query=f"topic {i}") for i in range(3)]
    with FakeBedrock(script) as fake:
        agent = create_agent(fake.chat_model(MODEL, streaming=True), [web_search])
        with pytest.raises(LoopGuardAbort):
            await agent.ainvoke(
                {"messages": [("user", "research")]}, config={"callbacks": [handler]}
            )
    assert trace.get_current_span() is before
    mine = ours(otel.spans())
    root = next(s for s in mine if s.name == "invoke_agent researcher")
    assert root.attributes[sc.ERROR_TYPE] == "LoopGuardAbort"
    calls = [s for s in mine if s is not root and s.name != "run_guardrail loopguard"]
    assert sorted(s.name for s in calls) == [f"chat {MODEL}"] * 2 + ["execute_tool web_search"] * 2
    assert all(s.parent.span_id == root.context.span_id for s in calls)


def _genai_ids(spans):
    tools = [s for s in ours(spans) if s.name == "execute_tool web_search"]
    chats = [s for s in ours(spans) if s.name == f"chat {MODEL}"]
    ids = [t.attributes.get(sc.TOOL_CALL_ID) for t in tools]
    return tools, chats, ids


def test_tool_call_ids_response_model_and_finish_reasons(otel):
    """Item 16: execute_tool spans carry the model's tool call id, chat spans the answering model
    and its finish reason (from the handler, on the real Bedrock client)."""
    spans = run_agent(otel)
    tools, chats, ids = _genai_ids(spans)
    assert len(tools) == 3 and all(i and i.startswith("tooluse_") for i in ids)
    assert len(set(ids)) == 3
    for chat in chats:
        assert chat.attributes[sc.RESPONSE_MODEL] == MODEL
        assert chat.attributes[sc.RESPONSE_FINISH_REASONS] == ("tool_use",)


def test_the_middleware_reports_the_same_ids(otel):
    require("langchain.agents")
    require("langchain_aws")
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from loopguard import LoopGuardMiddleware
    from loopguard.testing import FakeBedrock, Reply

    @tool
    def web_search(query: str) -> str:
        """Search the web."""
        return f"results for {query}"

    middleware = LoopGuardMiddleware(
        policy=Policy(),
        agent="researcher",
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
    )
    script = [Reply.calling("web_search", "Searching.", query="a"), Reply(text="Done.")]
    with FakeBedrock(script) as fake:
        agent = create_agent(fake.chat_model(MODEL), [web_search], middleware=[middleware])
        agent.invoke({"messages": [("user", "research")]})
    tools, chats, ids = _genai_ids(otel.spans())
    assert len(tools) == 1 and ids[0].startswith("tooluse_")
    assert [c.attributes[sc.RESPONSE_FINISH_REASONS] for c in chats] == [
        ("tool_use",),
        ("end_turn",),
    ]
    assert all(c.attributes[sc.RESPONSE_MODEL] == MODEL for c in chats)


def test_a_sub_agent_run_nests_in_the_tool_call_it_runs_in(otel):
    """A named agent called as a tool is a guarded run of its own (judged by its own policy);
    its `invoke_agent` span is a child of the tool call it runs in, in the enclosing trace."""
    require("langchain.agents")
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool

    from tests.integrations.fakes import ScriptedChatModel, tool_call

    child = create_agent(
        ScriptedChatModel(replies=[AIMessage("the child's answer")]), [], name="child"
    )

    @tool
    def ask_child(q: str) -> str:
        """Ask the child agent."""
        return str(child.invoke({"messages": [("user", q)]})["messages"][-1].content)

    parent_model = ScriptedChatModel(
        replies=[tool_call("ask_child", q="part 1"), AIMessage("done")]
    )
    parent = create_agent(parent_model, [ask_child], name="parent")
    handler = LoopGuardCallbackHandler(
        policy=Policy(), tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    parent.invoke({"messages": [("user", "plan")]}, config={"callbacks": [handler]})
    spans = ours(otel.spans())
    [outer] = [s for s in spans if s.name == "invoke_agent parent"]
    [inner] = [s for s in spans if s.name == "invoke_agent child"]
    [tool_span] = [s for s in spans if s.name == "execute_tool ask_child"]
    assert inner.context.trace_id == outer.context.trace_id
    assert inner.parent.span_id == tool_span.context.span_id
    assert tool_span.parent.span_id == outer.context.span_id
    child_chats = [
        s for s in spans if s.name.startswith("chat ") and s.parent.span_id == inner.context.span_id
    ]
    assert len(child_chats) == 1
