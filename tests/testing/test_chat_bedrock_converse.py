"""langchain-aws's ChatBedrockConverse (invoke and stream) on FakeBedrock, guarded by loopguard."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from loopguard import Guard, LoopGuardAbort, LoopGuardCallbackHandler, Policy
from loopguard.events import ModelEnd, Token
from loopguard.testing import FakeBedrock, Fault, Reply, ToolUse
from tests.conftest import require

require("langchain_aws")


class Recorder:
    """A sink that keeps every event the guard sees."""

    def __init__(self) -> None:
        self.events: list = []

    def on_event(self, state, event) -> None:
        self.events.append(event)

    def on_verdict(self, state, event, verdict) -> None:
        pass

    def on_run_end(self, state, event) -> None:
        pass

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


def guarded(policy: Policy | None = None) -> tuple[LoopGuardCallbackHandler, Recorder]:
    recorder = Recorder()
    return LoopGuardCallbackHandler(Guard(policy or Policy(), sinks=[recorder])), recorder


CACHED = Reply(
    text="Sunny.", input_tokens=40, output_tokens=3, cache_read_tokens=1200, cache_write_tokens=300
)


def test_invoke_text_and_cache_tokens_reach_usage_metadata_and_loopguard():
    handler, recorder = guarded()
    with FakeBedrock([CACHED]) as fake:
        message = fake.chat_model().invoke("weather?", config={"callbacks": [handler]})
    assert message.content == "Sunny."
    # langchain-aws counts cache tokens into input_tokens and details them
    assert message.usage_metadata["input_tokens"] == 40 + 1200 + 300
    assert message.usage_metadata["input_token_details"] == {
        "cache_read": 1200,
        "cache_creation": 300,
    }
    (end,) = recorder.of(ModelEnd)
    assert end.usage.to_dict() == {
        "input_tokens": 1540,
        "output_tokens": 3,
        "cache_read_tokens": 1200,
        "cache_write_tokens": 300,
    }
    assert fake.requests[0].operation == "Converse"


def test_stream_text_tool_call_and_cache_tokens():
    reply = Reply(
        text="Let me check the weather in Paris for you.",
        tool_calls=[ToolUse("get_weather", {"city": "Paris", "units": "metric"})],
        input_tokens=40,
        output_tokens=30,
        cache_read_tokens=1200,
        cache_write_tokens=0,
    )
    handler, recorder = guarded()
    with FakeBedrock([reply]) as fake:
        model = fake.chat_model().bind_tools([get_weather])
        chunks = list(model.stream("weather?", config={"callbacks": [handler]}))
    message = chunks[0]
    for chunk in chunks[1:]:
        message += chunk
    assert fake.requests[0].operation == "ConverseStream"
    assert message.tool_calls == [
        {
            "name": "get_weather",
            "args": {"city": "Paris", "units": "metric"},
            "id": "tooluse_0000_0",
            "type": "tool_call",
        }
    ]
    assert message.usage_metadata["input_token_details"]["cache_read"] == 1200
    assert message.response_metadata["stopReason"] == "tool_use"
    (end,) = recorder.of(ModelEnd)
    assert end.usage.cache_read_tokens == 1200 and end.usage.input_tokens == 1240
    assert [c.name for c in end.tool_calls] == ["get_weather"]
    assert end.tool_calls[0].args == {"city": "Paris", "units": "metric"}


def test_streamed_tokens_reach_loopguard_as_text():
    handler, recorder = guarded()
    with FakeBedrock([Reply(text="Let me check the weather in Paris for you.")]) as fake:
        list(fake.chat_model().stream("weather?", config={"callbacks": [handler]}))
    tokens = recorder.of(Token)
    assert all(isinstance(t.text, str) for t in tokens)
    assert "".join(t.text for t in tokens) == "Let me check the weather in Paris for you."


def test_prompt_cache_through_a_system_cache_point():
    system = SystemMessage(
        content=[
            {"type": "text", "text": "You are a careful assistant. " * 40},
            {"cachePoint": {"type": "default"}},
        ]
    )
    with FakeBedrock(["one", "two"]) as fake:
        model = fake.chat_model()
        first = model.invoke([system, HumanMessage("hi")]).usage_metadata["input_token_details"]
        second = model.invoke([system, HumanMessage("hi")]).usage_metadata["input_token_details"]
    assert first["cache_creation"] > 200 and first["cache_read"] == 0
    assert second["cache_read"] == first["cache_creation"] and second["cache_creation"] == 0


def test_mid_stream_abort_closes_the_stream():
    """The stream detector raises from on_llm_new_token; langchain-aws closes the response, and
    the server sees the client hang up long before it sent the whole answer."""
    degenerate = Reply(
        text="The order is on its way.\n" * 200, words_per_chunk=1, chunk_delay=0.005
    )
    handler, recorder = guarded(Policy())
    with FakeBedrock([degenerate]) as fake:
        with pytest.raises(LoopGuardAbort) as info:
            for _ in fake.chat_model().stream("where is it?", config={"callbacks": [handler]}):
                pass
        assert fake.wait_idle(timeout=10)
    call = fake.calls[0]
    assert info.value.verdict.detector == "stream"
    assert call.outcome == "client_closed"
    assert 0 < call.events_sent < call.events_total
    streamed = "".join(t.text for t in recorder.of(Token))
    assert streamed.startswith("The order is on its way.\n") and len(streamed) < 5 * 200


def test_time_limit_aborts_mid_stream_too():
    long_answer = Reply(
        text=" ".join(f"w{i}" for i in range(400)), words_per_chunk=1, chunk_delay=0.01
    )
    handler, _ = guarded(Policy(max_seconds=0.5))
    with FakeBedrock([long_answer]) as fake:
        with pytest.raises(LoopGuardAbort) as info:
            list(fake.chat_model().stream("talk", config={"callbacks": [handler]}))
        assert fake.wait_idle(timeout=10)
    assert info.value.verdict.evidence["limit"] == "max_seconds"
    assert fake.calls[0].outcome == "client_closed"


def test_faults_surface_through_the_chat_model():
    from botocore.exceptions import ClientError, EventStreamError

    with FakeBedrock(
        [
            Fault.throttle(),
            Fault.stream_error(after_events=2),
            Fault.cut(after_events=2),
            Fault.cut(),
        ]
    ) as fake:
        model = fake.chat_model()
        with pytest.raises(ClientError, match="ThrottlingException"):
            model.invoke("hi")
        with pytest.raises(EventStreamError, match="modelStreamErrorException"):
            list(model.stream("hi"))
        with pytest.raises(Exception) as cut:
            list(model.stream("hi"))
        assert not isinstance(cut.value, ClientError)
        with pytest.raises(ValueError, match="No 'output' key"):
            model.invoke("hi")


def test_retries_when_the_model_is_given_them():
    with FakeBedrock([Fault.throttle(), Reply(text="ok")]) as fake:
        assert fake.chat_model(retries=1).invoke("hi").content == "ok"
    assert [c.outcome for c in fake.calls] == ["error", "complete"]


def get_weather(city: str, units: str = "metric") -> str:
    """Get the weather for a city."""
    return f"{city}: sunny"


async def test_async_invoke_and_stream():
    """ainvoke/astream run the sync boto3 client in an executor; the fake serves both."""
    handler, recorder = guarded()
    with FakeBedrock([CACHED, Reply(text="streamed reply")]) as fake:
        model = fake.chat_model()
        message = await model.ainvoke("weather?", config={"callbacks": [handler]})
        chunks = [c async for c in model.astream("again", config={"callbacks": [handler]})]
    assert message.usage_metadata["input_token_details"]["cache_read"] == 1200
    assert "".join(c.text for c in chunks) == "streamed reply"
    assert [r.operation for r in fake.requests] == ["Converse", "ConverseStream"]
    assert len(recorder.of(ModelEnd)) == 2


def test_concurrent_agents_share_one_server():
    """Scenarios key on the conversation's own turn, so parallel agents each get the whole
    story; one guard keeps their runs apart."""
    from concurrent.futures import ThreadPoolExecutor

    from langchain.agents import create_agent

    from loopguard.demo.tools import tools_for
    from loopguard.testing import SCENARIOS

    scenario = SCENARIOS["healthy"]
    handler, recorder = guarded()
    with FakeBedrock(scenario.name) as fake:
        agent = create_agent(fake.chat_model(), tools_for(scenario.tools))

        def ask(n: int) -> str:
            result = agent.invoke(
                {"messages": [("user", f"{scenario.task} ({n})")]}, config={"callbacks": [handler]}
            )
            return result["messages"][-1].text

        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(ask, range(4)))
    assert all(a.startswith("The ACME X100 costs $249.00") for a in answers)
    assert len(fake.calls) == 12 and all(c.outcome == "complete" for c in fake.calls)
    runs = {e.run for e in recorder.of(ModelEnd)}
    assert len(runs) == 4


def test_a_reworded_search_is_stopped_by_progress_in_a_create_agent_run():
    """The query changes every call; the results do not: the stall detector stops it."""
    from langchain.agents import create_agent

    from loopguard.demo.tools import tools_for
    from loopguard.testing import SCENARIOS

    scenario = SCENARIOS["reworded-search"]
    handler, _ = guarded()
    with FakeBedrock(scenario.name) as fake:
        agent = create_agent(fake.chat_model(), tools_for(scenario.tools))
        with pytest.raises(LoopGuardAbort) as info:
            agent.invoke(
                {"messages": [("user", scenario.task)]},
                config={"callbacks": [handler], "recursion_limit": 100},
            )
    verdict = info.value.verdict
    assert verdict.detector == "progress" and verdict.step <= 6
    assert len(fake.calls) <= 5
