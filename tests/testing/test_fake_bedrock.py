"""FakeBedrock through boto3's real bedrock-runtime client."""

from __future__ import annotations

import pytest

from loopguard.testing import (
    SCENARIOS,
    FakeBedrock,
    Fault,
    Reply,
    Request,
    ScriptError,
    ToolUse,
    cycle,
)
from loopguard.testing.scenarios import get
from tests.conftest import require

botocore_exceptions = require("botocore.exceptions")
require("boto3")

ClientError = botocore_exceptions.ClientError
TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "lookup",
                "inputSchema": {
                    "json": {"type": "object", "properties": {"q": {"type": "string"}}}
                },
            }
        }
    ]
}
HELLO = [{"role": "user", "content": [{"text": "hello"}]}]
ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "us.anthropic.claude-3-5-haiku-20241022-v1:0"
)


def test_converse_text_usage_and_model_arn():
    with FakeBedrock([Reply(text="Hi there.", input_tokens=11, output_tokens=3)]) as fake:
        out = fake.client().converse(modelId=ARN, messages=HELLO)
    assert out["output"]["message"] == {"role": "assistant", "content": [{"text": "Hi there."}]}
    assert out["stopReason"] == "end_turn"
    assert out["usage"] == {"inputTokens": 11, "outputTokens": 3, "totalTokens": 14}
    assert out["metrics"]["latencyMs"] > 0
    assert fake.requests[0].model_id == ARN  # URL-encoded on the wire, decoded here
    assert fake.calls[0].outcome == "complete"


def test_tool_use_round_trip_and_request_view():
    seen: list[Request] = []

    def respond(request: Request) -> Reply:
        seen.append(request)
        if request.turn == 0:
            return Reply.calling("lookup", "Looking.", q="x")
        return Reply(text=f"Found: {request.tool_results[0]}")

    with FakeBedrock(respond) as fake:
        client = fake.client()
        first = client.converse(
            modelId="m",
            messages=HELLO,
            toolConfig=TOOLS,
            system=[{"text": "be brief"}],
            inferenceConfig={"maxTokens": 99},
        )
        assert first["stopReason"] == "tool_use"
        use = first["output"]["message"]["content"][1]["toolUse"]
        assert use["name"] == "lookup" and use["input"] == {"q": "x"}
        result = {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "42"}]}}
            ],
        }
        second = client.converse(
            modelId="m", messages=[*HELLO, first["output"]["message"], result], toolConfig=TOOLS
        )
    assert second["output"]["message"]["content"] == [{"text": "Found: 42"}]
    assert [r.turn for r in seen] == [0, 1]
    assert seen[0].tool_names == ["lookup"] and seen[0].system == "be brief"
    assert seen[0].max_tokens == 99 and seen[0].user_text == "hello"
    # the fake tokenizer: the second request reads more than the first
    assert second["usage"]["inputTokens"] > first["usage"]["inputTokens"]


@pytest.mark.parametrize(
    "messages, expected",
    [
        ([], "must start with a user message"),
        ([{"role": "assistant", "content": [{"text": "hi"}]}], "must start with a user message"),
        ([*HELLO, *HELLO], "must alternate"),
        (
            [
                *HELLO,
                {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {}}}],
                },
                {"role": "user", "content": [{"text": "no result"}]},
            ],
            "for the following Ids: t1",
        ),
    ],
)
def test_strict_mode_rejects_what_bedrock_rejects(messages, expected):
    with FakeBedrock(["unused"]) as fake:
        with pytest.raises(ClientError) as info:
            fake.client().converse(modelId="m", messages=messages, toolConfig=TOOLS)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert expected in info.value.response["Error"]["Message"]


def test_tool_blocks_need_tool_config():
    messages = [
        *HELLO,
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {}}}],
        },
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "r"}]}}],
        },
    ]
    with FakeBedrock(["unused"]) as fake:
        with pytest.raises(ClientError, match="toolConfig field must be defined"):
            fake.client().converse(modelId="m", messages=messages)


@pytest.mark.parametrize(
    "fault, code, status",
    [
        (Fault.throttle(), "ThrottlingException", 429),
        (Fault.server_error(), "InternalServerException", 500),
        (Fault.unavailable(), "ServiceUnavailableException", 503),
        (Fault("model_error", "boom"), "ModelErrorException", 424),
    ],
)
def test_http_faults(fault, code, status):
    with FakeBedrock([fault]) as fake:
        with pytest.raises(ClientError) as info:
            fake.client().converse(modelId="m", messages=HELLO)
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert len(fake.calls) == 1 and fake.calls[0].outcome == "error"


def test_client_retries_are_explicit():
    """botocore retries throttling by default; the helper's client only when asked."""
    with FakeBedrock([Fault.throttle(), Fault.throttle(), Reply(text="third time")]) as fake:
        out = fake.client(retries=2).converse(modelId="m", messages=HELLO)
    assert out["output"]["message"]["content"][0]["text"] == "third time"
    assert [c.outcome for c in fake.calls] == ["error", "error", "complete"]


def test_stream_cut_midway_raises_in_the_client():
    reply = Reply(text="one two three four five six seven eight", words_per_chunk=1)
    with FakeBedrock([Fault.cut(after_events=4, reply=reply)]) as fake:
        out = fake.client().converse_stream(modelId="m", messages=HELLO)
        got = []
        with pytest.raises(Exception) as info:  # urllib3's ProtocolError: the body broke off
            for event in out["stream"]:
                got.append(event)
        assert fake.wait_idle()
    assert "messageStop" not in str(got) and len(got) == 4
    assert not isinstance(info.value, ClientError)
    assert fake.calls[0].outcome == "cut" and fake.calls[0].events_sent == 4


def test_converse_cut_midway_leaves_botocore_without_output():
    """A Converse body that breaks off is not retried: botocore hands back a response without
    its body, and langchain-aws turns that into "No 'output' key found" (see the chat tests)."""
    with FakeBedrock([Fault.cut(reply=Reply(text="x" * 500))]) as fake:
        broken = fake.client(retries=2).converse(modelId="m", messages=HELLO)
    assert "output" not in broken and broken["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [c.outcome for c in fake.calls] == ["cut"]


def test_exception_inside_the_stream():
    with FakeBedrock([Fault.stream_error(after_events=2, message="overloaded")]) as fake:
        out = fake.client().converse_stream(modelId="m", messages=HELLO)
        with pytest.raises(botocore_exceptions.EventStreamError) as info:
            list(out["stream"])
        out["stream"].close()  # botocore leaves a stream it raised from open, socket and all
    assert info.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert "overloaded" in info.value.response["Error"]["Message"]
    assert fake.calls[0].outcome == "stream_error"


def test_stream_events_and_usage_with_cache_tokens():
    reply = Reply(
        text="a b c",
        tool_calls=[ToolUse("lookup", {"q": "x"})],
        input_tokens=10,
        output_tokens=5,
        cache_read_tokens=100,
        cache_write_tokens=20,
    )
    with FakeBedrock([reply]) as fake:
        events = list(
            fake.client().converse_stream(modelId="m", messages=HELLO, toolConfig=TOOLS)["stream"]
        )
    kinds = [next(iter(e)) for e in events]
    assert kinds == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert events[4]["contentBlockStart"] == {
        "start": {"toolUse": {"toolUseId": "tooluse_0000_0", "name": "lookup"}},
        "contentBlockIndex": 1,
    }
    assert events[-2] == {"messageStop": {"stopReason": "tool_use"}}
    assert events[-1]["metadata"]["usage"] == {
        "inputTokens": 10,
        "outputTokens": 5,
        "totalTokens": 135,
        "cacheReadInputTokens": 100,
        "cacheWriteInputTokens": 20,
    }


def test_max_tokens_clips_the_answer():
    with FakeBedrock([Reply(text="word " * 500)]) as fake:
        out = fake.client().converse(modelId="m", messages=HELLO, inferenceConfig={"maxTokens": 10})
    assert out["stopReason"] == "max_tokens"
    assert out["usage"]["outputTokens"] == 10
    assert len(out["output"]["message"]["content"][0]["text"]) == 40


def test_prompt_cache_writes_then_reads_the_prefix():
    system = [{"text": "You are a careful assistant. " * 40}, {"cachePoint": {"type": "default"}}]
    with FakeBedrock(cycle(Reply(text="ok"))) as fake:
        client = fake.client()
        first = client.converse(modelId="m", messages=HELLO, system=system)["usage"]
        second = client.converse(modelId="m", messages=HELLO, system=system)["usage"]
        other = client.converse(modelId="other-model", messages=HELLO, system=system)["usage"]
        plain = client.converse(modelId="m", messages=HELLO, system=system[:1])["usage"]
    assert first["cacheWriteInputTokens"] > 200 and first["cacheReadInputTokens"] == 0
    assert second["cacheReadInputTokens"] == first["cacheWriteInputTokens"]
    assert second["cacheWriteInputTokens"] == 0
    assert other["cacheWriteInputTokens"] > 0  # caches are per model
    assert "cacheReadInputTokens" not in plain  # no cachePoint, no caching
    assert second["inputTokens"] == first["inputTokens"] < plain["inputTokens"]


def test_script_errors_answer_500_and_fail_on_exit():
    fake = FakeBedrock([Reply.calling("not_offered")])
    with pytest.raises(ScriptError, match="not_offered"):
        with fake:
            with pytest.raises(ClientError) as info:
                fake.client().converse(modelId="m", messages=HELLO, toolConfig=TOOLS)
            assert info.value.response["Error"]["Code"] == "InternalServerException"


def test_exhausted_list_is_a_script_error():
    fake = FakeBedrock(["only one"])
    with pytest.raises(ScriptError, match="used up"):
        with fake:
            client = fake.client()
            client.converse(modelId="m", messages=HELLO)
            with pytest.raises(ClientError):
                client.converse(modelId="m", messages=HELLO)


def test_unknown_path_is_404():
    with FakeBedrock() as fake:
        with pytest.raises(ClientError) as info:
            fake.client().invoke_model(modelId="m", body=b"{}")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_bad_script_items_and_fault_kinds_are_named():
    with pytest.raises(TypeError, match="script item 1"):
        FakeBedrock(["ok", 42])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="throttle"):
        Fault("slow")
    with pytest.raises(KeyError, match="search-loop"):
        get("no-such-scenario")


@pytest.mark.parametrize("name", [n for n, s in SCENARIOS.items() if s.runaway])
def test_runaway_scenarios_never_finish_by_themselves(name):
    scenario = SCENARIOS[name]
    for turn in range(40):
        messages = [{"role": "user", "content": [{"text": "go"}]}]
        messages += [
            {"role": "assistant", "content": [{"text": "."}]},
            {"role": "user", "content": [{"text": "."}]},
        ] * turn
        reply = scenario.respond(Request("Converse", "m", {"messages": messages}, turn))
        assert reply.tool_calls and {c.name for c in reply.tool_calls} <= set(scenario.tools)


def test_healthy_scenario_finishes_on_its_third_turn():
    scenario = SCENARIOS["healthy"]
    replies = []
    for turn in range(3):
        messages = [{"role": "user", "content": [{"text": "go"}]}]
        messages += [
            {"role": "assistant", "content": [{"text": "."}]},
            {"role": "user", "content": [{"text": "."}]},
        ] * turn
        replies.append(scenario.respond(Request("Converse", "m", {"messages": messages}, turn)))
    assert [bool(r.tool_calls) for r in replies] == [True, True, False]
