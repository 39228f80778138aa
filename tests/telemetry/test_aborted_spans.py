"""Where a real agent is stopped, the span tree shows it (issue 13, items 13-15): the call the
abort stopped is marked refused with the run's one abort description, a stream cut mid-answer
keeps the usage it was charged (marked estimated), and numbers are rounded for people."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import StatusCode

from loopguard import LoopGuardAbort, LoopGuardCallbackHandler, Policy
from loopguard.telemetry import semconv as sc
from tests.conftest import require

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


def _run(otel: Any, script: list[Any]) -> list[Any]:
    require("langchain.agents")
    require("langchain_aws")
    import pytest
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from loopguard.testing import FakeBedrock

    @tool
    def lookup(query: str) -> str:
        """Look a record up."""
        return f"record for {query}: pending"

    handler = LoopGuardCallbackHandler(
        policy=Policy(),
        agent="support",
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
    )
    with FakeBedrock(script) as fake:
        agent = create_agent(fake.chat_model(MODEL, streaming=True), [lookup])
        with pytest.raises(LoopGuardAbort):
            agent.invoke(
                {"messages": [("user", "where is order 7?")]}, config={"callbacks": [handler]}
            )
    return otel.spans()


def _root(spans: list[Any]) -> Any:
    return next(s for s in spans if s.name == "invoke_agent support")


def test_tool_repeat_abort_in_the_tool_callback_marks_the_tool_span(otel):
    from loopguard.testing import Reply

    spans = _run(otel, [Reply.calling("lookup", "Checking.", query="order 7") for _ in range(8)])
    root = _root(spans)
    assert root.attributes[sc.LG_DETECTOR] == "tool_repeat"
    description = root.status.description
    assert description.startswith("loopguard stopped the run: [tool_repeat] the same call to")
    tools = [s for s in spans if s.name == "execute_tool lookup"]
    [stopped] = [t for t in tools if t.attributes.get(sc.LG_REFUSED)]
    assert stopped is tools[-1]  # the call whose result the abort withheld
    assert stopped.status.status_code is StatusCode.ERROR
    assert stopped.status.description == description  # one style for every aborted span
    assert stopped.attributes[sc.ERROR_TYPE] == "LoopGuardAbort"
    assert stopped.attributes[sc.LG_VERDICT] == "abort"
    # The verdict as the GenAI conventions' guardrail run, under the call it judged.
    [guardrail] = [
        s
        for s in spans
        if s.name == "run_guardrail loopguard" and s.parent.span_id == stopped.context.span_id
    ]
    ga = guardrail.attributes
    assert ga[sc.OPERATION_NAME] == "run_guardrail"
    assert ga[sc.GUARDRAIL_VERDICT_TYPE] == "deny" and ga[sc.GUARDRAIL_ACTION_TYPE] == "block"
    assert ga[sc.GUARDRAIL_POLICY_ID] == "tool_repeat"
    assert (
        ga[sc.GUARDRAIL_TARGET_TYPE] == "output" and ga[sc.GUARDRAIL_TARGET_SUBTYPE] == "tool_call"
    )
    assert ga[sc.GUARDRAIL_VERDICT_REASON] == root.attributes.get(
        sc.LG_REASON, ga[sc.GUARDRAIL_VERDICT_REASON]
    )
    assert guardrail.status.status_code is StatusCode.UNSET
    # The loopguard.* events stay.
    assert [e.name for e in root.events] == ["loopguard.abort"]


def test_a_stream_cut_mid_answer_keeps_its_estimated_usage(otel):
    from loopguard.testing import Reply

    passage = "The order ships tomorrow from the northern warehouse, as said before. "
    spans = _run(otel, [Reply(text="Here it is. " + passage * 40, words_per_chunk=3)])
    root = _root(spans)
    assert root.attributes[sc.LG_DETECTOR] == "stream"
    [chat] = [s for s in spans if s.name == f"chat {MODEL}"]
    ca = chat.attributes
    assert ca[sc.LG_USAGE_ESTIMATED] is True
    assert ca[sc.USAGE_INPUT_TOKENS] > 0 and ca[sc.USAGE_OUTPUT_TOKENS] > 0
    assert ca[sc.LG_CALL_COST] > 0
    # The root counts what the chat span now shows.
    assert root.attributes[sc.USAGE_OUTPUT_TOKENS] == ca[sc.USAGE_OUTPUT_TOKENS]
    assert root.attributes[sc.LG_RUN_COST] == ca[sc.LG_RUN_COST]
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.status.description == root.status.description
    assert ca[sc.LG_REFUSED] is True and ca[sc.ERROR_TYPE] == "LoopGuardAbort"


def _significant(value: float) -> int:
    digits = repr(abs(value)).split("e")[0].replace(".", "").strip("0")  # shortest repr
    return len(digits)


def test_money_rates_and_times_are_rounded_at_the_source(otel):
    from loopguard.testing import Reply

    passage = "The order ships tomorrow from the northern warehouse, as said before. "
    spans = _run(
        otel,
        [Reply.calling("lookup", "Checking.", query=f"order {i}") for i in range(3)]
        + [Reply(text="Here it is. " + passage * 40, words_per_chunk=3)],
    )
    floats = [
        (s.name, k, v)
        for s in spans
        for source in (s.attributes, *(e.attributes for e in s.events))
        for k, v in source.items()
        if isinstance(v, float)
    ]
    keys = {k for _, k, _ in floats}
    assert {sc.LG_CALL_COST, sc.LG_RUN_COST, sc.RESPONSE_TIME_TO_FIRST_CHUNK} <= keys
    assert [f for f in floats if _significant(f[2]) > 8] == []
