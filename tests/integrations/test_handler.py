"""The callback handler: run trees, agent names, streaming, concurrency, failing open, memory."""

from __future__ import annotations

import gc
import threading
import uuid
from typing import Any, ClassVar

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from loopguard import Guard, LoopGuardAbort, LoopGuardCallbackHandler, Policy
from loopguard.events import Event, ModelEnd, ModelStart, RunStart, Token, ToolStart
from loopguard.state import RunState
from loopguard.verdict import Verdict, abort
from tests.integrations.fakes import ScriptedChatModel, ToolCounter, endless_model, tool_call

USER = {"messages": [("user", "hi")]}


class Collect:
    """A sink that keeps every event it sees."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.ended: list[tuple[str, str]] = []

    def on_event(self, state: RunState, event: Event) -> None:
        self.events.append(event)

    def on_verdict(self, state: RunState, event: Event, verdict: Verdict) -> None:
        pass

    def on_run_end(self, state: RunState, event: Any) -> None:
        self.ended.append((state.run, event.status))
        self.last_cost = state.cost_usd


def guarded(policy: Policy | None = None) -> tuple[LoopGuardCallbackHandler, Collect]:
    sink = Collect()
    return LoopGuardCallbackHandler(Guard(policy or Policy(), sinks=[sink])), sink


def test_one_agent_invocation_is_one_guarded_run_with_its_events() -> None:
    model = ScriptedChatModel(replies=[tool_call("search", query="a"), AIMessage("done")])
    tools = ToolCounter()
    h, sink = guarded()
    create_agent(model, [tools.tool], name="weather").invoke(USER, config={"callbacks": [h]})
    runs = {e.run for e in sink.events}
    assert len(runs) == 1
    kinds = [e.type for e in sink.events]
    assert kinds == [
        "run_start",
        "model_start",
        "model_end",
        "tool_start",
        "tool_end",
        "model_start",
        "model_end",
        "run_end",
    ]
    start = sink.events[1]
    assert isinstance(start, ModelStart)
    assert start.model == "anthropic.claude-3-5-sonnet-20241022-v2:0"
    assert start.max_tokens == 256
    assert [m.role for m in start.messages] == ["user"]
    assert all(e.agent == "weather" for e in sink.events)  # LangGraph's agent name
    end = sink.events[2]
    assert isinstance(end, ModelEnd) and end.tool_calls[0].name == "search"
    assert end.usage.input_tokens == 100
    tool_start = sink.events[3]
    assert isinstance(tool_start, ToolStart) and tool_start.args == {"query": "a"}
    assert tool_start.parent == start.run  # a tool called by the agent hangs off the root
    assert sink.ended == [(start.run, "ok")]
    assert h.guard.active_runs == 0 and not h._nodes


def test_agent_name_resolution_order() -> None:
    model = ScriptedChatModel(replies=[AIMessage("ok")])
    agent = create_agent(model, [], name="graph-name")

    def agent_of(h: LoopGuardCallbackHandler, sink: Collect, **config: Any) -> str | None:
        agent.invoke(USER, config={"callbacks": [h], **config})
        return sink.events[-1].agent

    h, sink = guarded()
    assert agent_of(h, sink) == "graph-name"
    h, sink = guarded()
    assert agent_of(h, sink, metadata={"loopguard_agent": "from-meta"}) == "from-meta"
    sink = Collect()
    named = LoopGuardCallbackHandler(Guard(Policy(), sinks=[sink]), agent="explicit")
    assert agent_of(named, sink, metadata={"loopguard_agent": "from-meta"}) == "explicit"
    h, sink = guarded()
    create_agent(model, []).invoke(USER, config={"callbacks": [h]})
    assert sink.events[-1].agent == "LangGraph"  # the root run's name


def test_the_middleware_reads_the_agent_from_metadata_as_the_handler_does() -> None:
    from loopguard import LoopGuardMiddleware

    for metadata, want in (
        ({"loopguard_agent": "from-meta"}, "from-meta"),
        ({"loopguard_agent": 7}, "graph-name"),  # not a name: LangGraph's agent name instead
        ({"loopguard_agent": ""}, "graph-name"),
    ):
        sink = Collect()
        middleware = LoopGuardMiddleware(Guard(Policy(), sinks=[sink]), telemetry=False)
        model = ScriptedChatModel(replies=[AIMessage("ok")])
        agent = create_agent(model, [], name="graph-name", middleware=[middleware])
        agent.invoke(USER, config={"metadata": metadata})
        assert sink.events[-1].agent == want, metadata


def test_per_agent_policies_apply_by_agent_name() -> None:
    from loopguard import PolicySet

    policies = PolicySet(
        default=Policy(max_model_calls=2), agents={"patient": Policy(max_model_calls=5)}
    )
    h = LoopGuardCallbackHandler(policy=policies, telemetry=False)
    for name, limit in (("patient", 5), ("other", 2)):
        model, tools = endless_model(), ToolCounter()
        with pytest.raises(LoopGuardAbort):
            create_agent(model, [tools.tool], name=name).invoke(USER, config={"callbacks": [h]})
        assert model.call_count == limit


class StopOnToken:
    """A test detector: aborts when a streamed chunk contains a word."""

    name: ClassVar[str] = "stop-word"
    events: ClassVar[tuple[type[Event], ...]] = (Token,)

    def __init__(self, word: str) -> None:
        self.word = word

    def __call__(self, state: RunState, event: Event) -> Verdict | None:
        return abort(self.name, "saw the word") if self.word in event.text else None  # type: ignore[attr-defined]


def test_streaming_abort_stops_the_stream_mid_way() -> None:
    words = " ".join(["la"] * 10 + ["STOP"] + ["la"] * 50)
    model = ScriptedChatModel(replies=[AIMessage(words)])
    h = LoopGuardCallbackHandler(Guard(Policy(), detectors=[StopOnToken("STOP")]))
    received = []
    with pytest.raises(LoopGuardAbort) as info:
        for chunk in model.stream("sing", config={"callbacks": [h]}):
            received.append(chunk.content)
    assert info.value.verdict.detector == "stop-word"
    assert len(received) == 10  # the chunk that tripped it was never handed to the caller
    assert h.guard.active_runs == 0


async def test_async_streaming_abort() -> None:
    model = ScriptedChatModel(replies=[AIMessage("a b c STOP d e f")])
    h = LoopGuardCallbackHandler(Guard(Policy(), detectors=[StopOnToken("STOP")]))
    received = []
    with pytest.raises(LoopGuardAbort):
        async for chunk in model.astream("x", config={"callbacks": [h]}):
            received.append(chunk.content)
    assert len(received) == 3


class Broken:
    name: ClassVar[str] = "broken"
    events: ClassVar[tuple[type[Event], ...]] = (RunStart, ModelStart, ModelEnd, ToolStart, Token)

    def __call__(self, state: RunState, event: Event) -> Verdict | None:
        raise ZeroDivisionError("a bug inside loopguard")


class BrokenSink(Collect):
    def on_event(self, state: RunState, event: Event) -> None:
        raise KeyError("sink bug")


def test_a_bug_inside_the_guard_does_not_break_the_agent(caplog: pytest.LogCaptureFixture) -> None:
    model = ScriptedChatModel(replies=[tool_call("search", query="a"), AIMessage("done")])
    tools = ToolCounter()
    guard = Guard(Policy(), detectors=[Broken()], sinks=[BrokenSink()])
    h = LoopGuardCallbackHandler(guard)
    out = create_agent(model, [tools.tool]).invoke(USER, config={"callbacks": [h]})
    assert out["messages"][-1].content == "done"
    assert tools.calls == 1
    assert guard.internal_errors > 0
    logged = [r for r in caplog.records if "fail open" in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is logged, once
    # and the limits still work beside the broken detector
    h2 = LoopGuardCallbackHandler(Guard(Policy(max_model_calls=2), detectors=[Broken()]))
    looping, t2 = endless_model(), ToolCounter()
    with pytest.raises(LoopGuardAbort):
        create_agent(looping, [t2.tool]).invoke(USER, config={"callbacks": [h2]})
    assert looping.call_count == 2


def test_parallel_tool_calls_on_threads_never_exceed_the_limit() -> None:
    # LangGraph runs the tool calls of one model message in parallel on threads. With
    # max_tool_calls=5 and six parallel calls per step, exactly five may run.
    ran = []
    lock = threading.Lock()

    @tool
    def fetch(n: int) -> str:
        """Fetch item n."""
        with lock:
            ran.append(n)
        return str(n)

    six = AIMessage(
        content="",
        tool_calls=[
            {"name": "fetch", "args": {"n": i}, "id": f"c{i}", "type": "tool_call"}
            for i in range(6)
        ],
    )
    model = ScriptedChatModel(replies=[six])
    h = LoopGuardCallbackHandler(policy=Policy(max_tool_calls=5), telemetry=False)
    with pytest.raises(LoopGuardAbort):
        create_agent(model, [fetch]).invoke(USER, config={"callbacks": [h]})
    assert len(ran) == 5
    assert model.call_count == 1


def test_many_threads_driving_one_guard_keep_exact_counts() -> None:
    guard = Guard(Policy(max_model_calls=1000, max_tool_calls=None))
    run = "shared"
    errors = []

    def work() -> None:
        try:
            for _ in range(200):
                guard.process(ModelStart(run=run, model="m"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = guard.get_run(run)
    assert state is not None
    assert state.model_calls == 1000  # 1,600 attempts, exactly 1,000 allowed
    assert errors and all(isinstance(e, LoopGuardAbort) for e in errors)


def drive_short_run(h: LoopGuardCallbackHandler, *, end: bool = True) -> None:
    root, llm = uuid.uuid4(), uuid.uuid4()
    h.on_chain_start({"name": "agent"}, {}, run_id=root)
    h.on_chat_model_start(
        {"name": "m"}, [[]], run_id=llm, parent_run_id=root, metadata={"ls_model_name": "m"}
    )
    result = type(
        "R",
        (),
        {
            "generations": [[type("G", (), {"message": AIMessage("x"), "text": "x"})()]],
            "llm_output": None,
        },
    )()
    h.on_llm_end(result, run_id=llm)
    if end:
        h.on_chain_end({}, run_id=root)


def test_memory_stays_flat_over_many_short_runs() -> None:
    # Live objects are counted after a warm-up and again 10,000 runs later: a per-run leak of
    # even one object would show. benchmarks/memory.py shows the same for 100,000 runs in RSS.
    h = LoopGuardCallbackHandler(policy=Policy(), telemetry=False)
    for _ in range(2_000):
        drive_short_run(h)
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(10_000):
        drive_short_run(h)
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert h.guard.active_runs == 0 and not h._nodes
    assert grown < 500, f"{grown} more live objects after 10,000 runs"


def test_runs_that_never_end_are_evicted() -> None:
    h = LoopGuardCallbackHandler(Guard(Policy(), max_runs=100), telemetry=False)
    for _ in range(1_000):
        drive_short_run(h, end=False)
    assert h.guard.active_runs <= 100


def test_cache_writes_reported_per_ttl_are_counted_as_writes() -> None:
    # langchain-aws sets cache_creation to 0 and reports ephemeral_5m/1h tokens instead when
    # Bedrock breaks cache writes down by TTL; they must still bill at the cache-write price.
    usage = {
        "input_tokens": 1200,
        "output_tokens": 10,
        "total_tokens": 1210,
        "input_token_details": {
            "cache_read": 100,
            "cache_creation": 0,
            "ephemeral_5m_input_tokens": 700,
            "ephemeral_1h_input_tokens": 300,
        },
    }
    model = ScriptedChatModel(replies=[AIMessage("ok", usage_metadata=usage)])
    h, sink = guarded()
    model.invoke("hi", config={"callbacks": [h]})
    end = next(e for e in sink.events if isinstance(e, ModelEnd))
    assert (end.usage.input_tokens, end.usage.cache_read_tokens, end.usage.cache_write_tokens) == (
        1200,
        100,
        1000,
    )


def test_a_stream_cut_mid_answer_is_charged_its_estimated_usage() -> None:
    # The provider never reports usage for a stream loopguard cut off, but the prompt and the
    # streamed part were billed: the guard counts an estimate (docs: loopguard/tokens.py).
    from langchain_core.messages import HumanMessage

    from loopguard.events import ModelFailed
    from loopguard.integrations._convert import messages_of
    from loopguard.tokens import estimate_input_tokens, tokens_for_chars

    words = " ".join(["la"] * 10 + ["STOP"] + ["la"] * 50)
    model = ScriptedChatModel(
        replies=[AIMessage(words)], model="anthropic.claude-3-5-haiku-20241022-v1:0"
    )
    sink = Collect()
    guard = Guard(Policy(), detectors=[StopOnToken("STOP")], sinks=[sink])
    prompt = [HumanMessage("sing me a song " * 20)]
    with pytest.raises(LoopGuardAbort):
        for _ in model.stream(prompt, config={"callbacks": [LoopGuardCallbackHandler(guard)]}):
            pass
    error = next(e for e in sink.events if isinstance(e, ModelFailed))
    streamed = len("la" + " la" * 9 + " STOP")
    assert error.usage is not None
    assert error.usage.output_tokens == tokens_for_chars(streamed)
    assert error.usage.input_tokens == estimate_input_tokens(messages_of(prompt))
    # charged at the model's prices: $0.80 / $4 per million tokens
    expected = error.usage.input_tokens * 0.8e-6 + error.usage.output_tokens * 4e-6
    assert sink.ended and abs(sink.last_cost - expected) < 1e-9


def test_a_bug_in_the_adapter_itself_fails_open(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import loopguard.integrations.langchain as adapter

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("adapter bug")

    monkeypatch.setattr(adapter, "tool_calls_of", broken)
    model = ScriptedChatModel(replies=[tool_call("search", query="a"), AIMessage("done")])
    tools = ToolCounter()
    h = LoopGuardCallbackHandler(policy=Policy(), telemetry=False)
    out = create_agent(model, [tools.tool]).invoke(USER, config={"callbacks": [h]})
    assert out["messages"][-1].content == "done"
    assert "internal error in the callback handler (fail open)" in caplog.text
    assert h.guard.active_runs == 0  # the run still ended and was freed


class AbortOnAnswer:
    name: ClassVar[str] = "answer"
    events: ClassVar[tuple[type[Event], ...]] = (ModelEnd,)

    def __call__(self, state: RunState, event: Event) -> Verdict | None:
        return abort(self.name, "bad answer")


def test_an_abort_on_the_answer_of_a_lone_model_call_frees_its_run() -> None:
    # The call is the whole run: its end is the run's end, even when its answer is refused.
    model = ScriptedChatModel(replies=[AIMessage("x")])
    h = LoopGuardCallbackHandler(Guard(Policy(), detectors=[AbortOnAnswer()]))
    with pytest.raises(LoopGuardAbort):
        model.invoke("hi", config={"callbacks": [h]})
    assert h.guard.active_runs == 0 and not h._nodes


def test_both_adapters_take_the_same_options_and_refuse_unknown_ones(tmp_path) -> None:
    from loopguard import LoopGuardMiddleware
    from loopguard.integrations import AdapterOptions

    options: AdapterOptions = {
        "policy": Policy(max_model_calls=1),
        "agent": "a",
        "record_to": tmp_path / "run.jsonl",
        "telemetry": False,
    }
    handler = LoopGuardCallbackHandler(**options)
    middleware = LoopGuardMiddleware(**options)
    for adapter in (handler, middleware):
        assert adapter.agent == "a" and len(adapter.guard.sinks) == 1
        assert adapter.guard.policies.default.limits.max_model_calls == 1
        adapter.guard.sinks[0].close()  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match=r"LoopGuardCallbackHandler.*recordto"):
        LoopGuardCallbackHandler(recordto="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"LoopGuardMiddleware.*polcy"):
        LoopGuardMiddleware(polcy=Policy())  # type: ignore[call-arg]


def test_concurrent_runs_over_max_runs_keep_their_caps() -> None:
    # Twelve live agent runs through one handler whose guard keeps ten: runs are evicted and
    # brought back all the time, and each still makes exactly its five model calls.
    import itertools

    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.runnables import RunnableLambda

    from loopguard.detectors import RUNAWAY

    # Only the plain limits: the same answer again and again would be a loop to the others.
    off = {section: {"enabled": False} for section in RUNAWAY}
    policy = Policy.model_validate({**off, "max_model_calls": 5, "max_tool_calls": None})
    guard = Guard(policy, max_runs=10)
    handler = LoopGuardCallbackHandler(guard, telemetry=False)
    model = GenericFakeChatModel(messages=itertools.repeat(AIMessage("ok")))
    barrier = threading.Barrier(12)
    made = [0] * 12

    def agent(i: int, config: Any) -> None:
        barrier.wait(timeout=30)  # all twelve runs are live before any model call
        for step in range(30):
            model.invoke(f"step {step}", config)
            made[i] += 1

    def run(i: int) -> None:
        with pytest.raises(LoopGuardAbort):
            RunnableLambda(agent).invoke(i, config={"callbacks": [handler]})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [5] * 12


def test_the_node_table_is_bounded_by_the_guards_run_cap_and_keeps_no_prompt() -> None:
    # Streams that are started and never finished (a client that went away while the server
    # keeps the generator): their LangChain runs never end.
    import itertools

    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    guard = Guard(Policy(), max_runs=5)
    handler = LoopGuardCallbackHandler(guard, telemetry=False)
    model = GenericFakeChatModel(messages=itertools.repeat(AIMessage("one two three")))
    secret = "PROMPT-SECRET"
    open_streams = []
    for i in range(60):
        stream = model.stream(f"{secret} {i} " + "x" * 2000, config={"callbacks": [handler]})
        next(stream)
        open_streams.append(stream)
    nodes = list(handler._nodes.values())
    # The runs the guard remembers (max_runs live, as many evicted), a quarter more between
    # purges: not one per stream ever started.
    assert len({n.root for n in nodes}) <= 2 * guard.max_runs * 5 // 4
    for node in nodes:
        for name in type(node).__slots__:
            assert secret not in repr(getattr(node, name, None))
