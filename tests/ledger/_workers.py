"""Worker processes for the shared-budget tests (module-level so any start method can run them)."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from collections.abc import Sequence
from typing import Any

from loopguard import Guard, LoopGuardAbort, Policy
from loopguard.events import Message, ModelEnd, ModelStart, Usage
from loopguard.testing.policies import money_policy
from loopguard.tokens import estimate_input_tokens

MODEL = "us.anthropic.claude-3-5-haiku-20241022-v1:0"


def budget_policy(
    uri: str, cap_usd: float, tenant_key: str = "tenant", ttl: float = 60.0
) -> Policy:
    return money_policy(
        ledger=uri,
        reservation_ttl=ttl,
        budgets=[{"scope": "tenant", "key": tenant_key, "period": "day", "max_usd": cap_usd}],
    )


def spend(uri: str, cap_usd: float, tenant: str, calls: int, seed: int, out: Any) -> None:
    """Make `calls` small model calls against the shared daily tenant budget; report
    (calls that went out, calls refused, dollars spent as the guard priced them)."""
    rng = random.Random(seed)
    guard = Guard(budget_policy(uri, cap_usd))
    went = refused = 0
    spent = 0.0
    run_no = 0
    for i in range(calls):
        run = f"w{seed}-r{run_no}"
        messages = [Message("user", f"question {seed}/{i} " + "x" * rng.randint(20, 200))]
        try:
            guard.process(
                ModelStart(
                    run=run,
                    model=MODEL,
                    messages=messages,
                    max_tokens=200,
                    id=f"{run}-{i}",
                    meta={"tenant": tenant},
                )
            )
        except LoopGuardAbort:
            refused += 1
            guard.end_run(run, "aborted")
            run_no += 1
            continue
        # the provider's count is at most the documented estimate, the output at most max_tokens
        usage = Usage(
            input_tokens=estimate_input_tokens(messages) - rng.randint(0, 5),
            output_tokens=rng.randint(20, 200),
        )
        guard.process(ModelEnd(run=run, model=MODEL, usage=usage, id=f"{run}-{i}"))
        spent += guard.get_run(run).last_call_cost or 0.0
        went += 1
        if i % 4 == 3:
            guard.end_run(run)
            run_no += 1
    out.put((went, refused, spent))


def spend_in_processes(
    uri: str, cap_usd: float, tenants: Sequence[str], calls: int
) -> list[tuple[int, int, float]]:
    """`spend` in one forked process per entry of `tenants` (its index the seed), at once;
    their reports, once every process has exited cleanly."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=spend, args=(uri, cap_usd, tenant, calls, seed, out))
        for seed, tenant in enumerate(tenants)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return results


def call(guard: Guard, run: str, meta: dict[str, Any], max_tokens: int = 50) -> None:
    """One model call through `guard` (run and call id `run`), settled at 5 + 50 tokens."""
    guard.process(
        ModelStart(
            run=run,
            model=MODEL,
            messages=[Message("user", "hi")],
            max_tokens=max_tokens,
            id=run,
            meta=meta,
        )
    )
    guard.process(ModelEnd(run=run, model=MODEL, usage=Usage(5, 50), id=run))


def hold_and_wait(uri: str, cap_usd: float, tenant: str, ttl: float, ready: Any) -> None:
    """Reserve through the guard (a model call starts) and never finish: killed mid-call."""
    guard = Guard(budget_policy(uri, cap_usd, ttl=ttl))
    guard.process(
        ModelStart(
            run="doomed",
            model=MODEL,
            messages=[Message("user", "hi")],
            max_tokens=4000,
            id="call-1",
            meta={"tenant": tenant},
        )
    )
    ready.set()
    while True:
        time.sleep(1)


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def until_tripped(uri: str, agent: str, started: Any, resume: Any, out: Any) -> None:
    """Guarded calls for `agent` until one is refused by a trip; report its reason, then wait
    for `resume` and report whether the next call goes out."""
    guard = Guard(budget_policy(uri, 100.0))
    i = 0

    def call() -> None:
        nonlocal i
        i += 1
        run = f"{agent}-{os.getpid()}-{i}"
        guard.process(
            ModelStart(
                run=run,
                agent=agent,
                model=MODEL,
                messages=[Message("user", "hi")],
                max_tokens=50,
                id=run,
                meta={"tenant": "fleet"},
            )
        )
        guard.process(ModelEnd(run=run, agent=agent, model=MODEL, usage=Usage(5, 5), id=run))
        guard.end_run(run)

    deadline = time.monotonic() + 30
    reason = None
    while reason is None and time.monotonic() < deadline:
        try:
            call()
            started.release()
        except LoopGuardAbort as stop:
            reason = (stop.verdict.evidence.get("limit"), stop.verdict.evidence.get("trip_reason"))
        time.sleep(0.01)
    out.put(("refused", reason))
    resume.wait(30)
    try:
        call()
        out.put(("after", "went"))
    except LoopGuardAbort as stop:
        out.put(("after", stop.verdict.reason))
