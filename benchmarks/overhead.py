"""What loopguard adds to a model call, against baselines measured in the same run.

    python benchmarks/overhead.py [--calls 3000] [--repeats 5] [--tokens 200]

Rows: a fake chat model's `invoke` with no handler, with a no-op callback handler, with
loopguard's handler (detectors only), with loopguard and its spans and metrics (SDK providers,
in-memory exporter), and with OpenLLMetry's and OpenInference's LangChain instrumentation
exporting to the same in-memory exporter. Then the per-token cost on a streamed call.

Each row is the median over `--repeats` batches of the mean time per call; the fake model does
no I/O, so the differences are the handlers' own work. Targets (issue 5): loopguard with spans
adds at most a quarter of OpenLLMetry's overhead; the detectors alone add under 20 µs per
model call beyond the no-op handler.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from loopguard import LoopGuardCallbackHandler, Policy

USAGE = {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150}


class FakeChat(BaseChatModel):
    """Answers at once; streams `tokens` one-word chunks."""

    model: str = "anthropic.claude-3-5-haiku-20241022-v1:0"
    tokens: int = 200

    @property
    def _llm_type(self) -> str:
        return "bench"

    def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"], params["ls_model_name"] = "amazon_bedrock", self.model
        return params

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        message = AIMessage("The answer is 4.", usage_metadata=USAGE)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for i in range(self.tokens):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=f"w{i} "))
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=USAGE))


class NoOpHandler(BaseCallbackHandler):
    run_inline = True

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_llm_new_token(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
        pass


class Otel:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])


def measure(call: Callable[[], Any], n: int, repeats: int, reset: Callable[[], None]) -> float:
    """Median over batches of the mean µs per call."""
    for _ in range(min(n, 300)):
        call()
    reset()
    results = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter_ns()
        for _ in range(n):
            call()
        results.append((time.perf_counter_ns() - start) / n / 1000)
        reset()  # keep the in-memory exporter from growing across batches
    return statistics.median(results)


@contextmanager
def instrumented(name: str, otel: Otel) -> Iterator[bool]:
    """OpenLLMetry's or OpenInference's LangChain instrumentation, on `otel`'s provider."""
    try:
        if name == "openllmetry":
            from opentelemetry.instrumentation.langchain import LangchainInstrumentor as Inst
        else:
            from openinference.instrumentation.langchain import LangChainInstrumentor as Inst
    except ImportError:
        yield False
        return
    original = BaseCallbackManager.__dict__["__init__"]
    instrumentor = Inst()
    instrumentor.instrument(tracer_provider=otel.tracer_provider,
                            meter_provider=otel.meter_provider)
    try:
        yield True
    finally:
        instrumentor.uninstrument()
        BaseCallbackManager.__init__ = original  # OpenLLMetry's uninstrument leaves its hook


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=200)
    args = ap.parse_args(argv)
    n, reps = args.calls, args.repeats
    model = FakeChat(tokens=args.tokens)
    otel = Otel()
    reset = otel.exporter.clear
    policy = Policy()

    def invoke(handler: Any = None) -> Callable[[], Any]:
        config = {"callbacks": [handler]} if handler is not None else None
        return lambda: model.invoke("what is 2+2?", config=config)

    detectors = LoopGuardCallbackHandler(policy=policy, telemetry=False)
    spans = LoopGuardCallbackHandler(policy=policy, tracer_provider=otel.tracer_provider,
                                     meter_provider=otel.meter_provider)
    rows: list[tuple[str, float | None]] = [
        ("no handler", measure(invoke(), n, reps, reset)),
        ("no-op handler", measure(invoke(NoOpHandler()), n, reps, reset)),
        ("loopguard, detectors only", measure(invoke(detectors), n, reps, reset)),
        ("loopguard + spans + metrics", measure(invoke(spans), n, reps, reset)),
    ]
    span_count = {"loopguard": _spans_per_call(invoke(spans), otel)}
    for name, label in (("openllmetry", "OpenLLMetry LangChain instrumentation"),
                        ("openinference", "OpenInference LangChain instrumentation")):
        with instrumented(name, otel) as ok:
            rows.append((label, measure(invoke(), n, reps, reset) if ok else None))
            if ok:
                span_count[name] = _spans_per_call(invoke(), otel)

    base, noop = rows[0][1], rows[1][1]
    print(f"model call ({n} calls x {reps} batches, median of batch means; "
          f"Python {sys.version.split()[0]})")
    print(f"{'configuration':40} {'µs/call':>9} {'+µs vs none':>12} {'+µs vs no-op':>13}")
    for label, us in rows:
        if us is None:
            print(f"{label:40} {'(not installed)':>9}")
            continue
        print(f"{label:40} {us:9.1f} {us - base:12.1f} {us - noop:13.1f}")
    print("spans per call: " + ", ".join(f"{k} {v}" for k, v in span_count.items()))

    values = dict(rows)
    ol = values.get("OpenLLMetry LangChain instrumentation")
    ours = values["loopguard + spans + metrics"] - base
    det = values["loopguard, detectors only"] - noop
    print()
    if ol is not None:
        share = ours / (ol - base) if ol > base else float("inf")
        print(f"target: loopguard + spans <= 1/4 of OpenLLMetry's overhead: {ours:.1f} vs "
              f"{ol - base:.1f} µs = {share:.2f} -> {'met' if share <= 0.25 else 'NOT met'}")
    print(f"target: detectors < 20 µs beyond the no-op handler: {det:.1f} µs -> "
          f"{'met' if det < 20 else 'NOT met'}")

    # Streaming: the per-token cost, from a call of --tokens chunks.
    print()
    m = max(20, n // 20)

    def stream(handler: Any = None) -> Callable[[], Any]:
        config = {"callbacks": [handler]} if handler is not None else None
        return lambda: sum(1 for _ in model.stream("what is 2+2?", config=config))

    srows = [("no handler", measure(stream(), m, reps, reset)),
             ("no-op handler", measure(stream(NoOpHandler()), m, reps, reset)),
             ("loopguard, detectors only", measure(stream(detectors), m, reps, reset)),
             ("loopguard + spans + metrics", measure(stream(spans), m, reps, reset))]
    with instrumented("openllmetry", otel) as ok:
        if ok:
            srows.append(("OpenLLMetry LangChain instrumentation",
                          measure(stream(), m, reps, reset)))
    sbase, snoop = srows[0][1], srows[1][1]
    print(f"streamed call of {args.tokens} tokens ({m} calls x {reps} batches)")
    print(f"{'configuration':40} {'µs/call':>9} {'+µs/token':>10} {'+µs/token vs no-op':>19}")
    for label, us in srows:
        print(f"{label:40} {us:9.1f} {(us - sbase) / args.tokens:10.2f} "
              f"{(us - snoop) / args.tokens:19.2f}")
    return 0


def _spans_per_call(call: Callable[[], Any], otel: Otel) -> int:
    otel.exporter.clear()
    call()
    count = len(otel.exporter.get_finished_spans())
    otel.exporter.clear()
    return count


if __name__ == "__main__":
    sys.exit(main())
