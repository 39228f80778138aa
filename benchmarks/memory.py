"""Memory of one handler guarding many short runs: flat, not growing with the run count.

Drives a LoopGuardCallbackHandler through N short runs (chain start, chat model start, model
end with usage, chain end: what a one-step agent invocation reports) and prints the process's
resident memory and Python's live-object count as it goes. A baseline run of the same loop with
a no-op callback handler, measured in the same process first, shows what LangChain-free callback
dispatch itself costs.

    python benchmarks/memory.py [--runs 100000]
"""

from __future__ import annotations

import argparse
import gc
import logging
import time
import uuid
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from loopguard import LoopGuardCallbackHandler, Policy

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
PROMPT = [[HumanMessage("What is the capital of France?")]]


class NoOp(BaseCallbackHandler):
    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        pass


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def one_run(h: Any, i: int) -> None:
    root, llm = uuid.uuid4(), uuid.uuid4()
    h.on_chain_start({"name": "agent"}, {}, run_id=root, metadata={"thread_id": f"t{i}"})
    h.on_chat_model_start(
        {"name": "chat"},
        PROMPT,
        run_id=llm,
        parent_run_id=root,
        metadata={"ls_model_name": MODEL, "ls_max_tokens": 256},
    )
    message = AIMessage(
        f"Paris ({i})", usage_metadata={"input_tokens": 20, "output_tokens": 5, "total_tokens": 25}
    )
    h.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]), run_id=llm)
    h.on_chain_end({}, run_id=root)


def measure(label: str, h: Any, runs: int) -> list[tuple[str, int, int, int, float]]:
    rows = []
    checkpoints = {runs // 10, runs // 4, runs // 2, runs}
    start = time.perf_counter()
    for i in range(1, runs + 1):
        one_run(h, i)
        if i in checkpoints:
            gc.collect()
            rows.append(
                (
                    label,
                    i,
                    rss_kib(),
                    len(gc.get_objects()),
                    (time.perf_counter() - start) / i * 1e6,
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    logging.getLogger("loopguard").setLevel(logging.ERROR)

    rows = measure("no-op handler", NoOp(), args.runs // 10)
    handler = LoopGuardCallbackHandler(policy=Policy(), telemetry=False)
    rows += measure("loopguard", handler, args.runs)

    print(f"{'handler':<15} {'runs':>8} {'RSS MiB':>9} {'live objects':>13} {'us/run':>8}")
    for label, n, rss, objects, per_run in rows:
        print(f"{label:<15} {n:>8,} {rss / 1024:>9.1f} {objects:>13,} {per_run:>8.1f}")
    guarded = [r for r in rows if r[0] == "loopguard"]
    first, last = guarded[0], guarded[-1]
    print(
        f"\nloopguard from {first[1]:,} to {last[1]:,} runs: RSS {last[2] - first[2]:+,} KiB, "
        f"live objects {last[3] - first[3]:+,}; runs still held: "
        f"{handler.guard.active_runs}, LangChain runs tracked: {len(handler._nodes)}"
    )


if __name__ == "__main__":
    main()
