"""The span tree of a guarded run, checked with the SDK's in-memory exporter."""

from __future__ import annotations

import json
import threading

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from loopguard.events import ToolCall, Usage
from loopguard.guard import Guard
from loopguard.policy import Policy
from loopguard.telemetry import semconv as sc
from loopguard.telemetry.spans import SpanSink
from loopguard.verdict import abort, warn
from tests.telemetry.conftest import T0, Driver, feed, ns


def guarded(otel, policy=None, **kw) -> Guard:
    sink = SpanSink(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    return Guard(policy or Policy(), sinks=[sink], **kw)


def test_tree_names_kinds_parents_and_times(otel, script):
    s = script
    m1, t1, m2 = s.new_id(), s.new_id(), s.new_id()
    events = [
        s.run_start(meta={"thread_id": "conv-7"}),
        s.model_start(m1),
        s.model_end(m1, tool_calls=[ToolCall("calculator", {"expression": "2+2"})]),
        s.tool_start(t1),
        s.model_start(m2, parent=t1),  # a model called inside the tool
        s.model_end(m2, parent=t1),
        s.tool_end(t1),
        s.run_end(),
    ]
    feed(guarded(otel), events)

    root = otel.span("invoke_agent researcher")
    chat = [x for x in otel.spans() if x.name.startswith("chat ")]
    tool = otel.span("execute_tool calculator")
    assert len(otel.spans()) == 4 and len(chat) == 2
    first, inner = sorted(chat, key=lambda x: x.start_time)
    assert root.parent is None
    assert first.parent.span_id == root.context.span_id
    assert tool.parent.span_id == root.context.span_id
    assert inner.parent.span_id == tool.context.span_id
    assert {x.context.trace_id for x in otel.spans()} == {root.context.trace_id}
    assert root.kind is SpanKind.INTERNAL and first.kind is SpanKind.CLIENT
    assert tool.kind is SpanKind.INTERNAL
    # Times are the events' own, to the nanosecond of the float.
    by_ts = {e.id: e.ts for e in events if e.type in ("model_start", "tool_start")}
    assert first.start_time == ns(by_ts[m1]) and first.end_time == ns(events[2].ts)
    assert tool.start_time == ns(by_ts[t1]) and tool.end_time == ns(events[6].ts)
    assert root.start_time == ns(events[0].ts) and root.end_time == ns(events[-1].ts)
    assert root.status.status_code is StatusCode.UNSET

    assert root.attributes[sc.OPERATION_NAME] == "invoke_agent"
    assert root.attributes[sc.AGENT_NAME] == "researcher"
    assert root.attributes[sc.CONVERSATION_ID] == "conv-7"
    assert root.attributes[sc.LG_RUN_ID] == s.run
    assert root.attributes[sc.LG_MODEL_CALLS] == 2
    assert root.attributes[sc.USAGE_INPUT_TOKENS] == 240
    a = first.attributes
    assert a[sc.OPERATION_NAME] == "chat"
    assert a[sc.PROVIDER_NAME] == "aws.bedrock"
    assert a[sc.REQUEST_MODEL] == "anthropic.claude-3-5-haiku-20241022-v1:0"
    assert a[sc.REQUEST_MAX_TOKENS] == 256
    assert a[sc.USAGE_INPUT_TOKENS] == 120 and a[sc.USAGE_OUTPUT_TOKENS] == 30
    assert a[sc.USAGE_CACHE_READ_INPUT_TOKENS] == 100
    assert sc.USAGE_CACHE_CREATION_INPUT_TOKENS not in a  # zero counts are left out
    assert tool.attributes[sc.OPERATION_NAME] == "execute_tool"
    assert tool.attributes[sc.TOOL_NAME] == "calculator"


def test_root_is_created_lazily_without_run_start(otel, script):
    s = script
    m = s.new_id()
    feed(guarded(otel), [s.model_start(m), s.model_end(m), s.run_end()])
    root = otel.span("invoke_agent researcher")
    chat = otel.span("chat anthropic.claude-3-5-haiku-20241022-v1:0")
    assert chat.parent.span_id == root.context.span_id
    assert root.start_time == chat.start_time


def test_abort_at_model_start(otel, script):
    s = script
    ids = [s.new_id() for _ in range(3)]
    events = [s.run_start()]
    for m in ids:
        events += [s.model_start(m, text=f"question {m}"), s.model_end(m, text=f"answer {m}")]
    events.append(s.run_end("aborted"))  # a recording: the refused call's end is stray
    aborts = feed(guarded(otel, Policy(max_model_calls=2)), events)
    assert len(aborts) == 1

    root = otel.span("invoke_agent researcher")
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes[sc.ERROR_TYPE] == "LoopGuardAbort"
    assert root.attributes[sc.LG_VERDICT] == "abort"
    assert root.attributes[sc.LG_DETECTOR] == "limits"
    [event] = [e for e in root.events if e.name == "loopguard.abort"]
    ea = event.attributes
    assert ea[sc.LG_DETECTOR] == "limits" and ea[sc.LG_STEP] == 3
    assert "max_model_calls" in ea[sc.LG_REASON]
    assert ea["loopguard.evidence.max"] == 2
    assert ea["loopguard.usage.model_calls"] == 2
    assert event.timestamp == ns(events[5].ts)  # the refused model_start

    chats = sorted(
        (x for x in otel.spans() if x.name.startswith("chat")), key=lambda x: x.start_time
    )
    assert len(chats) == 3  # the refused call shows, marked
    refused = chats[-1]
    assert refused.attributes[sc.LG_REFUSED] is True
    assert refused.attributes[sc.ERROR_TYPE] == "LoopGuardAbort"
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.start_time == refused.end_time  # it never went out
    assert all(c.status.status_code is StatusCode.UNSET for c in chats[:2])


def test_nothing_is_left_open_or_current(otel, script):
    s = script
    m, t = s.new_id(), s.new_id()
    sink = SpanSink(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    guard = Guard(Policy(max_tool_calls=0), sinks=[sink])
    before = trace.get_current_span()
    feed(guard, [s.run_start(), s.model_start(m), s.tool_start(t)])  # aborted at the tool
    assert trace.get_current_span() is before
    guard.end_run(s.run, "aborted", ts=s.ts + 1)
    assert trace.get_current_span() is before
    assert sink.tree.open_runs == 0
    spans = otel.spans()
    assert len(spans) == 4 and all(x.end_time is not None for x in spans)  # and the guardrail
    chat = next(x for x in spans if x.name.startswith("chat"))
    assert chat.status.status_code is StatusCode.ERROR  # ended by the run's end
    assert chat.end_time == ns(s.ts + 1)


def test_shadow_mode_records_would_be_abort_without_error(otel, script):
    events = script.model_calls(2)
    assert feed(guarded(otel, Policy(mode="shadow", max_model_calls=1)), events) == []
    root = otel.span("invoke_agent researcher")
    assert root.status.status_code is StatusCode.UNSET
    assert sc.ERROR_TYPE not in root.attributes
    assert root.attributes[sc.LG_MODE] == "shadow"
    [event] = [e for e in root.events if e.name == "loopguard.shadow_abort"]
    assert event.attributes[sc.LG_ENFORCED] is False
    assert len([x for x in otel.spans() if x.name.startswith("chat")]) == 2


def test_warning_is_an_event_on_the_call_span(otel, script):
    events = script.model_calls(2)
    feed(guarded(otel, Policy(max_model_calls=10, warn_model_calls=2)), events)
    chats = sorted(
        (x for x in otel.spans() if x.name.startswith("chat")), key=lambda x: x.start_time
    )
    assert [e for e in chats[0].events if e.attributes[sc.LG_DETECTOR] == "limits"] == []
    [event] = [e for e in chats[1].events if e.attributes[sc.LG_DETECTOR] == "limits"]
    assert event.name == "loopguard.warning"
    assert event.attributes[sc.LG_ACTION] == "warn"
    assert event.attributes[sc.LG_DETECTOR] == "limits"
    assert event.timestamp == ns(events[3].ts)
    assert otel.span("invoke_agent researcher").status.status_code is StatusCode.UNSET


def test_verdict_on_a_finished_call_lands_on_its_span(otel, script):
    s = script
    m = s.new_id()
    d = Driver(SpanSink(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider))
    d.send(s.model_start(m))
    end = s.model_end(m)
    d.state.attributes["loopguard.similarity"] = 0.97
    d.state.attributes["loopguard.tokens_per_minute"] = 1234.5
    d.state.cost_usd, d.state.last_call_cost = 0.25, 0.05
    d.send(end, warn("repeat", "the answer repeats", similarity=0.97, text="4 4 4"))
    d.send(s.run_end())
    chat = otel.span("chat anthropic.claude-3-5-haiku-20241022-v1:0")
    [event] = chat.events
    assert event.name == "loopguard.warning" and event.attributes[sc.LG_DETECTOR] == "repeat"
    assert event.attributes["loopguard.evidence.similarity"] == 0.97
    # Content-bearing evidence is not exported without opt-in.
    assert "4 4 4" not in event.attributes["loopguard.evidence.text"]
    assert chat.end_time == ns(end.ts)
    assert chat.attributes["loopguard.similarity"] == 0.97
    assert chat.attributes["loopguard.tokens_per_minute"] == 1234.5
    assert chat.attributes[sc.LG_CALL_COST] == 0.05
    assert chat.attributes[sc.LG_RUN_COST] == 0.25
    root = otel.span("invoke_agent researcher")
    assert root.attributes["loopguard.similarity"] == 0.97


def test_abort_on_a_finished_call_marks_it_and_structured_evidence_is_json(otel, script):
    s = script
    m = s.new_id()
    d = Driver(SpanSink(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider))
    d.send(s.model_start(m))
    verdict = abort(
        "cycle",
        "the agent repeats a cycle of 2 calls",
        period=2,
        repeats=3,
        start_step=4,
        cycle=["search", "fetch"],
    )
    verdict.step, verdict.usage = 9, {"cost_usd": 1.5, "model_calls": 9}
    d.send(s.model_end(m), verdict)
    d.send(s.run_end("aborted"))
    chat = otel.span("chat anthropic.claude-3-5-haiku-20241022-v1:0")
    assert chat.attributes[sc.LG_VERDICT] == "abort"
    # The call went out; its answer was withheld from the agent: refused, in error.
    assert chat.attributes[sc.LG_REFUSED] is True
    # One status description for every span the abort ended.
    description = "loopguard stopped the run: [cycle] the agent repeats a cycle of 2 calls"
    assert chat.status.description == description
    assert otel.span("invoke_agent researcher").status.description == description
    root = otel.span("invoke_agent researcher")
    assert root.status.status_code is StatusCode.ERROR
    [event] = root.events
    assert event.attributes["loopguard.evidence.period"] == 2
    assert json.loads(event.attributes["loopguard.evidence.cycle"]) == ["search", "fetch"]
    assert event.attributes["loopguard.usage.cost_usd"] == 1.5
    assert event.attributes[sc.LG_STEP] == 9


def test_model_and_tool_errors(otel, script):
    s = script
    m, t = s.new_id(), s.new_id()
    feed(
        guarded(otel),
        [
            s.run_start(),
            s.model_start(m),
            s.model_error(m, "ThrottlingException: Rate exceeded"),
            s.tool_start(t),
            s.tool_error(t, error="TimeoutError: slow"),
            s.run_end("error"),
        ],
    )
    chat = otel.span("chat anthropic.claude-3-5-haiku-20241022-v1:0")
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.attributes[sc.ERROR_TYPE] == "ThrottlingException"
    # The error's message is content: only its type leaves without opt-in.
    assert chat.status.description == "ThrottlingException (message not captured)"
    tool = otel.span("execute_tool calculator")
    assert tool.attributes[sc.ERROR_TYPE] == "TimeoutError"
    root = otel.span("invoke_agent researcher")
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes[sc.ERROR_TYPE] == "_OTHER"


def test_streaming_time_to_first_chunk(otel, script):
    s = script
    m = s.new_id()
    start = s.model_start(m)
    feed(
        guarded(otel),
        [
            s.run_start(),
            start,
            s.token(m, "4", dt=0.25),
            s.token(m, "."),
            s.model_end(m),
            s.run_end(),
        ],
    )
    chat = otel.span("chat anthropic.claude-3-5-haiku-20241022-v1:0")
    assert chat.attributes[sc.RESPONSE_TIME_TO_FIRST_CHUNK] == pytest.approx(0.25)


def test_callbacks_on_other_threads_keep_event_times(otel, script):
    s = script
    guard = guarded(otel)
    ids = [s.new_id() for _ in range(4)]
    starts = [s.model_start(m, dt=0.0) for m in ids]  # four calls in flight at once
    ends = [s.model_end(m, dt=1.0) for m in ids]
    guard.process(s.run_start())
    for e in starts:
        guard.process(e)
    seen = []

    def finish(e):
        seen.append(trace.get_current_span())
        guard.process(e)
        seen.append(trace.get_current_span())

    threads = [threading.Thread(target=finish, args=(e,)) for e in reversed(ends)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    guard.process(s.run_end())
    chats = [x for x in otel.spans() if x.name.startswith("chat")]
    assert {x.start_time for x in chats} == {ns(starts[0].ts)}
    by_end = sorted(x.end_time for x in otel.spans() if x.name.startswith("chat"))
    assert by_end == [ns(e.ts) for e in ends]
    assert all(not sp.get_span_context().is_valid for sp in seen)


def test_content_is_private_by_default(otel, script, monkeypatch):
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    s = script
    m, t = s.new_id(), s.new_id()
    feed(
        guarded(otel),
        [
            s.model_start(m, text="my secret question"),
            s.model_end(m, text="secret answer"),
            s.tool_start(t, args={"q": "secret args"}),
            s.tool_end(t, output="secret result"),
            s.run_end(),
        ],
    )
    dumped = json.dumps([dict(x.attributes) for x in otel.spans()])
    assert "secret" not in dumped
    for key in (sc.INPUT_MESSAGES, sc.OUTPUT_MESSAGES, sc.TOOL_CALL_ARGUMENTS, sc.TOOL_CALL_RESULT):
        assert key not in dumped


@pytest.mark.parametrize("how", ["env", "policy"])
def test_content_is_exported_on_opt_in(otel, script, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
        policy = Policy()
    else:
        monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
        policy = Policy(capture_content=True)
    s = script
    m, t = s.new_id(), s.new_id()
    feed(
        guarded(otel, policy),
        [
            s.model_start(m, text="my question"),
            s.model_end(m, text="", tool_calls=[ToolCall("calculator", {"expression": "2+2"})]),
            s.tool_start(t, args={"expression": "2+2"}),
            s.tool_end(t, output="4"),
            s.run_end(),
        ],
    )
    chat = otel.span("chat anthropic.claude-3-5-haiku-20241022-v1:0")
    inputs = json.loads(chat.attributes[sc.INPUT_MESSAGES])
    assert inputs[1] == {"role": "user", "parts": [{"type": "text", "content": "my question"}]}
    outputs = json.loads(chat.attributes[sc.OUTPUT_MESSAGES])
    assert outputs == [
        {
            "role": "assistant",
            "finish_reason": "tool_call",
            "parts": [
                {"type": "tool_call", "name": "calculator", "arguments": {"expression": "2+2"}}
            ],
        }
    ]
    tool = otel.span("execute_tool calculator")
    assert json.loads(tool.attributes[sc.TOOL_CALL_ARGUMENTS]) == {"expression": "2+2"}
    assert tool.attributes[sc.TOOL_CALL_RESULT] == "4"


def test_cost_from_the_pricer(otel, script):
    s = script
    m1, m2 = s.new_id(), s.new_id()
    guard = guarded(otel, pricer=lambda policy, model, usage: usage.output_tokens * 0.001)
    feed(
        guard,
        [
            s.model_start(m1),
            s.model_end(m1, usage=Usage(10, 20)),
            s.model_start(m2),
            s.model_end(m2, usage=Usage(10, 40)),
            s.run_end(),
        ],
    )
    chats = sorted(
        (x for x in otel.spans() if x.name.startswith("chat")), key=lambda x: x.start_time
    )
    assert [c.attributes[sc.LG_CALL_COST] for c in chats] == pytest.approx([0.02, 0.04])
    assert [c.attributes[sc.LG_RUN_COST] for c in chats] == pytest.approx([0.02, 0.06])
    assert otel.span("invoke_agent researcher").attributes[sc.LG_RUN_COST] == pytest.approx(0.06)


def test_events_without_ids_pair_in_order(otel, script):
    s = script
    a, b = s.model_start(None), s.model_end(None)
    feed(guarded(otel), [a, b, s.run_end()])
    chat = otel.span("chat anthropic.claude-3-5-haiku-20241022-v1:0")
    assert chat.start_time == ns(a.ts) and chat.end_time == ns(b.ts)
    assert T0 < a.ts


def test_provider_name_inference():
    assert sc.provider_name("us.anthropic.claude-3-5-haiku-20241022-v1:0", None) == "aws.bedrock"
    assert sc.provider_name("amazon.nova-pro-v1:0", None) == "aws.bedrock"
    assert sc.provider_name("claude-sonnet-4-5", None) == "anthropic"
    assert sc.provider_name("gpt-4o", None) == "openai"
    assert sc.provider_name("anything", {"ls_provider": "amazon_bedrock"}) == "aws.bedrock"
    assert sc.provider_name("my-model", None) is None


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="annotate"):
        SpanSink(mode="span")


def test_unsampled_runs_make_no_spans_but_keep_metrics(otel, script):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    unsampled = TracerProvider(sampler=ALWAYS_OFF)
    unsampled.add_span_processor(otel.tracer_provider._active_span_processor)
    sink = SpanSink(tracer_provider=unsampled, meter_provider=otel.meter_provider)
    guard = Guard(Policy(max_model_calls=1), sinks=[sink])
    s = script
    m1, m2, t = s.new_id(), s.new_id(), s.new_id()
    feed(
        guard,
        [
            s.run_start(),
            s.model_start(m1),
            s.model_end(m1),
            s.tool_start(t),
            s.tool_end(t),
            s.model_start(m2),
            s.run_end("aborted"),
        ],
    )
    assert otel.spans() == []
    assert guard.internal_errors == 0 and sink.tree.open_runs == 0
    assert sum(p.value for p in otel.points(sc.METRIC_MODEL_CALLS)) == 1
    assert sum(p.value for p in otel.points(sc.METRIC_ABORTS)) == 1


def test_without_an_sdk_everything_is_a_no_op(script):
    sink = SpanSink()  # the global providers: no-op unless something installed an SDK
    guard = Guard(Policy(), sinks=[sink])
    feed(guard, script.model_calls(2))
    assert guard.internal_errors == 0 and sink.tree.open_runs == 0
