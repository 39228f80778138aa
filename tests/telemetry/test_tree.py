"""The span tree on a deferring backend: spans started late, with everything, and the same tree
as an eager backend makes."""

from __future__ import annotations

from typing import Any

from loopguard.telemetry.jaeger import JaegerBackend
from loopguard.telemetry.tree import SpanTree, TreeSink
from loopguard.verdict import abort, warn
from tests.telemetry.conftest import Driver


class Calls(JaegerBackend):
    """Jaeger's records, started late, and a log of the calls the tree made."""

    defers = True

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str]] = []

    def start(self, name, kind, parent, ts, attrs, key):  # type: ignore[no-untyped-def]
        self.log.append(("start", name))
        return super().start(name, kind, parent, ts, attrs, key)

    def set(self, span, attrs):  # type: ignore[no-untyped-def]
        self.log.append(("set", span.name))
        super().set(span, attrs)

    def add_event(self, span, name, ts, attrs):  # type: ignore[no-untyped-def]
        self.log.append(("add_event", span.name))
        super().add_event(span, name, ts, attrs)

    def set_error(self, span, description):  # type: ignore[no-untyped-def]
        self.log.append(("set_error", span.name))
        super().set_error(span, description)

    def end(self, span, ts):  # type: ignore[no-untyped-def]
        self.log.append(("end", span.name))
        super().end(span, ts)


CHAT = "chat anthropic.claude-3-5-haiku-20241022-v1:0"


def test_a_model_call_is_one_start_with_all_attributes_and_one_end(script):
    s = script
    backend = Calls()
    d = Driver(TreeSink(SpanTree(backend)))
    m = s.new_id()
    d.send(s.run_start())
    d.send(s.model_start(m))
    d.send(s.token(m, "4"))
    assert [c for c in backend.log if c[1] == CHAT] == []  # nothing yet: it may get a verdict
    d.send(s.model_end(m))
    d.send(s.run_end())
    assert [c for c in backend.log if c[1] == CHAT] == [("start", CHAT), ("end", CHAT)]
    [[root, chat]] = backend.finished()
    assert chat.attrs["gen_ai.usage.input_tokens"] == 120
    assert chat.attrs["gen_ai.request.max_tokens"] == 256
    assert "gen_ai.response.time_to_first_chunk" in chat.attrs
    # The root is started with the run's first event; it is told the run name only once.
    assert backend.log.count(("set", root.name)) == 1  # the run's totals at its end


def _rich_run(s: Any, d: Driver) -> None:
    m1, t1, m2, m3, t2, m4, m5 = (s.new_id() for _ in range(7))
    d.send(s.run_start(meta={"thread_id": "conv-1"}))
    d.send(s.model_start(m1), warn("velocity", "fast", tokens_per_minute=9000.0))
    d.send(s.token(m1, "a"))
    d.send(s.model_end(m1), warn("repeat", "the answer repeats", similarity=0.9))
    d.send(s.tool_start(t1))
    d.send(s.model_start(m2, parent=t1))  # inside the tool: the tool's span is its parent
    d.send(s.model_end(m2, parent=t1))
    d.send(s.model_start(m3, parent=t1))
    d.send(s.model_error(m3, "ThrottlingException: slow down"))
    d.send(s.tool_end(t1), warn("cycle", "again"))
    d.send(s.tool_start(t2))
    d.send(s.tool_error(t2, error="TimeoutError: slow"))
    d.send(s.model_start(m4))  # cut off by the run's end
    d.send(s.model_start(m5), abort("limits", "too many calls", max=3))  # refused
    d.send(s.run_end("aborted"))


def _shape(records: list[Any]) -> list[tuple[Any, ...]]:
    names = {r.span_id: r.name for r in records}
    return sorted(
        (r.name, names.get(r.parent_id), r.kind, r.start, r.end, r.attrs, r.events, r.error)
        for r in records
    )


def test_deferred_spans_are_the_tree_eager_spans_are(script):
    from tests.telemetry.conftest import Script

    eager, deferred = JaegerBackend(), Calls()
    for backend in (eager, deferred):
        _rich_run(Script(), Driver(TreeSink(SpanTree(backend))))
    [eager_trace], [deferred_trace] = eager.finished(), deferred.finished()
    assert len(eager_trace) == 12  # 8 calls and the root, and a guardrail span per verdict
    assert _shape(deferred_trace) == _shape(eager_trace)
    # Started with all their attributes: no set() on a chat span (events and an error status
    # have no place in start() and follow it).
    assert ("set", CHAT) not in deferred.log
