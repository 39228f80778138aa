"""How much work loopguard does per model call, counted in bytecodes: a measure that does not
move between runs, where timings do (see overhead.py).

    python benchmarks/bytecodes.py [--runs 20]

Counts the Python bytecodes executed in loopguard's code and in the OpenTelemetry SDK (with
`sys.settrace` opcode events, on every thread) while a `create_agent` agent and a bare model
call run under each configuration, and prints them per model call by part. The baseline in the
same run is `SdkFloor` (overhead.py's handler that makes only the spans loopguard's contract
needs): its SDK column is the SDK work those spans cost. overhead.py's rows turn bytecodes into
time: inside LangChain's callbacks, on the development machine, a bytecode of loopguard's costs
20-40 ns (2,174 bytecodes for a bare call with detectors only, 45-48 µs there).
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import (
    FakeChat,
    Otel,
    SdkFloor,
    ToolChat,
    Unjudged,
    create_agent,
    lookup,
)

from loopguard import LoopGuardCallbackHandler, Policy

# (where the code lives, the column's name, what it holds)
_PARTS = (
    ("loopguard/integrations/", "adapter", "the LangChain adapter"),
    ("loopguard/telemetry/", "telemetry", "loopguard's telemetry sink"),
    ("loopguard/detectors/", "detectors", "the detectors"),
    ("loopguard/", "engine", "the rest of loopguard: guard, state, pricing, normalize"),
    ("opentelemetry/", "OTel SDK", "the OpenTelemetry SDK and API"),
)


def _part(filename: str) -> str | None:
    path = filename.replace("\\", "/")
    if "/benchmarks/" in path or "/loopguard/testing/" in path:
        return None  # the fakes' own work (their texts) is not the handler's
    for marker, part, _ in _PARTS:
        if marker in path:
            return part
    return None


def count(call: Callable[[], Any], runs: int) -> collections.Counter[str]:
    """Bytecodes executed per part in `runs` calls of `call`, on every thread."""
    counts: collections.Counter[str] = collections.Counter()

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        part = _part(frame.f_code.co_filename)
        if part is None:
            return None
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False

        def local(frame: Any, event: str, arg: Any) -> Any:
            if event == "opcode":
                counts[part] += 1
            return local

        return local

    for _ in range(3):  # warm up: first-use work (plans, caches, instruments) is not per call
        call()
    threading.settrace(tracer)
    sys.settrace(tracer)
    try:
        for _ in range(runs):
            call()
    finally:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args(argv)
    otel = Otel()
    policy = Policy()
    configs: list[tuple[str, Any]] = [
        (
            "loopguard adapter only (events, no guard)",
            LoopGuardCallbackHandler(guard=Unjudged(policy), telemetry=False),
        ),
        ("loopguard, detectors only", LoopGuardCallbackHandler(policy=policy, telemetry=False)),
        (
            "loopguard + spans + metrics",
            LoopGuardCallbackHandler(
                policy=policy,
                tracer_provider=otel.tracer_provider,
                meter_provider=otel.meter_provider,
            ),
        ),
        ("SDK floor (contract spans + histogram)", SdkFloor(otel)),
    ]
    agent = create_agent(ToolChat(), [lookup])
    steps = ToolChat().steps
    model = FakeChat()
    questions = iter(range(10**9))
    parts = [part for _, part, _ in _PARTS]
    print("bytecodes per model call, by part of the code that ran them\n")
    for title, per_run, make in (
        (
            f"a model call of a create_agent agent ({steps} model calls, {steps - 1} tool calls a "
            "run)",
            steps,
            lambda h: (
                lambda: agent.invoke(
                    {"messages": [("user", f"question {next(questions)}")]},
                    config={"callbacks": [h]},
                )
            ),
        ),
        (
            "a model call that is its own run",
            1,
            lambda h: lambda: model.invoke("what is 2+2?", config={"callbacks": [h]}),
        ),
    ):
        print(title)
        print(f"{'configuration':42}" + "".join(f"{p:>11}" for p in parts) + f"{'loopguard':>11}")
        for label, handler in configs:
            counts = count(make(handler), args.runs)
            otel.exporter.clear()
            per = {p: counts[p] / args.runs / per_run for p in parts}
            ours = sum(v for p, v in per.items() if p != "OTel SDK")
            print(f"{label:42}" + "".join(f"{per[p]:11,.0f}" for p in parts) + f"{ours:11,.0f}")
        print()
    for _, part, what in _PARTS:
        print(f"{part}: {what}")
    print("loopguard: all of loopguard's columns (all but the SDK)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
