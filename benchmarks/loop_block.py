"""Event-loop lag benchmark: how long can a stalled ledger hold up an async agent?

Run:  python benchmarks/loop_block.py [--quick]

docs/money.md says a ledger operation (a reserve at model start, a settle at model end, the
backlog replayed first) waits at most one ledger timeout, and that in async code, where the
callback handler runs inline, that is also how long the event loop can wait. This measures it.

One asyncio event loop runs a `create_agent` agent (a fake async chat model that answers after
a 10 ms non-blocking wait, one async tool, four model calls a run) again and again through
`agent.ainvoke` with `LoopGuardCallbackHandler`, under a policy whose only check is money: a
tenant budget with a dollar cap on the ledger, so every model call reserves and settles on
it (`on_ledger_error` left at its default, "closed"). Beside it a ticker coroutine sleeps 5 ms
at a time and records how late it wakes up (the event loop's lag). Rows, in one run:

- no loopguard: the same agent without the handler (the baseline lag of the loop itself);
- healthy: a redis-server on a free loopback port (`?socket_timeout=0.2`);
- paused: that server SIGSTOPped for a while mid-row, then SIGCONT (every call times out);
- killed: that server SIGKILLed mid-row (connection refused), restarted after the row;
- sqlite locked: `sqlite:///...?timeout=0.2`, its file write-locked by another process for
  a while mid-row (`BEGIN IMMEDIATE`, held).

After each row the ledger is reachable again, the backlog is replayed, and the row's ledger
spend is compared with the true spend (calls that went out x their price) and the cap.
Bounded: every row stops by itself; loopback and a temporary directory only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from chaos import Server  # the pausable, killable, restartable redis-server
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from pydantic import Field

from loopguard import Guard, LoopGuardAbort, LoopGuardCallbackHandler
from loopguard.events import Usage
from loopguard.ledger import open_ledger, usd_to_nano
from loopguard.ledger.spec import PREFIX
from loopguard.pricing.pricer import default_pricer
from loopguard.testing.policies import money_policy

MODEL = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
USAGE = {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150}
CALL_SECONDS = 0.01  # the provider's answer: a non-blocking wait
STEPS = 4  # model calls per agent run
TICK = 0.005  # the ticker's sleep
TIMEOUT = 0.2  # the ledger timeout: Redis socket_timeout, SQLite busy timeout
SLACK = 0.05  # what the loop may lag beyond one ledger timeout and still count as "within"
CAP_USD = 1000.0  # the tenant budget: far above what a row spends, so no call is refused by it
NANO = 1_000_000_000


class BenchChat(BaseChatModel):
    """Asks for the `lookup` tool until it has `STEPS - 1` results, then answers; counts the
    calls that reached it (the calls that went out)."""

    model: str = MODEL
    calls: list[int] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "bench"

    def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"], params["ls_model_name"] = "amazon_bedrock", self.model
        params["ls_max_tokens"] = 200
        return params

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _reply(self, messages: Any) -> ChatResult:
        self.calls.append(1)
        done = sum(1 for m in messages if m.type == "tool")
        if done < STEPS - 1:
            call = {"name": "lookup", "args": {"item": f"part {done}"}, "id": f"c{done}"}
            message = AIMessage("", usage_metadata=USAGE, tool_calls=[call])
        else:
            message = AIMessage("done", usage_metadata=USAGE)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(self, messages: Any, stop: Any = None, **kwargs: Any) -> ChatResult:
        time.sleep(CALL_SECONDS)
        return self._reply(messages)

    async def _agenerate(self, messages: Any, stop: Any = None, **kwargs: Any) -> ChatResult:
        await asyncio.sleep(CALL_SECONDS)
        return self._reply(messages)


@tool
async def lookup(item: str) -> str:
    """Look an item up."""
    return f"{item}: found"


class CallTimer(AgentMiddleware):
    """The wall time of each model call as the agent sees it: the model and every callback
    of it, loopguard's reserve and settle included."""

    def __init__(self) -> None:
        super().__init__()
        self.longest = 0.0

    async def awrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return await handler(request)
        finally:
            self.longest = max(self.longest, time.perf_counter() - t0)


@dataclass
class Row:
    name: str
    timeout: float | None
    seconds: float
    calls: int = 0
    refused: int = 0
    lags: list[float] = field(default_factory=list)
    longest_call: float = 0.0
    true_n: int = 0
    counted_n: int = 0
    held_n: int = 0
    left: int = 0
    events: list[str] = field(default_factory=list)
    gc_worst: float = 0.0

    @property
    def worst(self) -> float:
        return max(self.lags, default=0.0)

    @property
    def stalled(self) -> float:
        """Seconds the ticker lost in waits longer than SLACK: how much of the row the loop
        spent blocked in stalls."""
        return sum(lag for lag in self.lags if lag > SLACK)

    @property
    def p99(self) -> float:
        if len(self.lags) < 2:
            return self.worst
        return statistics.quantiles(self.lags, n=100)[98]

    @property
    def within(self) -> str:
        if self.timeout is None:
            return "-"
        return "yes" if self.worst <= self.timeout + SLACK else "NO"

    @property
    def money_ok(self) -> str:
        if self.timeout is None:
            return "-"
        ok = self.counted_n == self.true_n and not self.held_n and not self.left
        return "yes" if ok and self.counted_n <= usd_to_nano(CAP_USD) else "NO"


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t0 = loop.time()
        await asyncio.sleep(TICK)
        lags.append(loop.time() - t0 - TICK)


async def _agent_loop(
    row: Row, uri: str | None, seconds: float, tenant: str, model: BenchChat
) -> None:
    timer = CallTimer()
    agent: Any = create_agent(model, tools=[lookup], middleware=[timer])
    config: dict[str, Any] = {"metadata": {"tenant": tenant}}
    if uri is not None:
        policy = money_policy(
            ledger=uri, budgets=[{"scope": "tenant", "key": "tenant", "max_usd": CAP_USD}]
        )
        config["callbacks"] = [LoopGuardCallbackHandler(Guard(policy))]
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(row.lags, stop))
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            await agent.ainvoke({"messages": [("user", "look it up")]}, config)
        except LoopGuardAbort as exc:
            assert exc.verdict.evidence.get("limit") == "ledger", exc.verdict
            row.refused += 1
    stop.set()
    await ticker
    row.longest_call = timer.longest


def _at(times: list[tuple[float, Callable[[], None], str]], row: Row) -> threading.Thread:
    """Run each action at its time (seconds from now) on a thread of its own: a blocked event
    loop must not delay them."""
    t0 = time.monotonic()

    def run() -> None:
        for when, action, label in times:
            time.sleep(max(0.0, t0 + when - time.monotonic()))
            action()
            row.events.append(f"{label} at {time.monotonic() - t0:.1f} s")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _settle_row(row: Row, uri: str, tenant: str, calls: int) -> None:
    """Replay what the row's outage kept, then read its spend from the ledger."""
    from loopguard.detectors.budget import LEDGERS

    per_call = default_pricer()(money_policy(), MODEL, Usage(120, 30))
    row.true_n = calls * usd_to_nano(per_call or 0.0)
    resilient = LEDGERS.remote(uri)
    deadline = time.monotonic() + 10
    while not resilient.flush() and time.monotonic() < deadline:
        time.sleep(0.1)
    row.left = resilient.backlog
    ledger = open_ledger(uri)
    try:
        rows = ledger.usage(prefix=f"{PREFIX}tenant:tenant={tenant}:")
    finally:
        ledger.close()
    row.counted_n = sum(r.spent_usd_n for r in rows)
    row.held_n = sum(r.reserved_usd_n for r in rows)


class GcPauses:
    """The longest garbage collection while installed: a pause of the loop that is not the
    ledger's."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.worst = max(self.worst, time.perf_counter() - self._t0)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def run_row(
    name: str,
    uri: str | None,
    seconds: float,
    chaos: Sequence[tuple[float, Callable[[], None], str]] = (),
    after: Callable[[], None] | None = None,
) -> Row:
    row = Row(name, TIMEOUT if uri is not None else None, seconds=seconds)
    tenant = f"lag-{uuid.uuid4().hex[:8]}"
    model = BenchChat()
    thread = _at(list(chaos), row)
    with GcPauses() as pauses:
        asyncio.run(_agent_loop(row, uri, seconds, tenant, model))
    row.gc_worst = pauses.worst
    thread.join()
    if after is not None:
        after()
    row.calls = len(model.calls)
    if uri is not None:
        _settle_row(row, uri, tenant, row.calls)
    return row


class Locker:
    """Another process holding a SQLite file's write lock (BEGIN IMMEDIATE) until released."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.proc: subprocess.Popen[str] | None = None

    def lock(self) -> None:
        code = (
            "import sqlite3, sys\n"
            f"db = sqlite3.connect({self.path!r}, isolation_level=None)\n"
            "db.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n"
            "db.execute('ROLLBACK')\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.proc.stdout.readline()  # the lock is held from here

    def unlock(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="rows of 1 s instead of 4 s")
    args = ap.parse_args()
    # the outages are deliberate: the guard's warnings about them would drown the table
    logging.getLogger("loopguard").setLevel(logging.CRITICAL)
    logging.getLogger("langchain_core.callbacks").setLevel(logging.CRITICAL)  # each refusal
    if shutil.which("redis-server") is None:
        print("loop_block: needs redis-server on PATH (apt-get install redis-server)")
        return 2
    seconds = 1.0 if args.quick else 4.0
    # the outage covers the middle of the row: from a fifth to four fifths of it
    start, end = seconds * 0.2, seconds * 0.8
    workdir = tempfile.mkdtemp(prefix="loopguard-lag-")
    server = Server(workdir)
    server.start()
    redis_uri = f"{server.url}?socket_timeout={TIMEOUT:g}"
    db = os.path.join(workdir, "budgets.db")
    sqlite_uri = f"sqlite:///{db}?timeout={TIMEOUT:g}"
    locker = Locker(db)
    rows = []
    try:
        rows.append(run_row("no loopguard", None, seconds))
        rows.append(run_row("redis healthy", redis_uri, seconds))
        rows.append(
            run_row(
                "redis paused",
                redis_uri,
                seconds,
                [
                    (start, lambda: server.signal(signal.SIGSTOP), "SIGSTOP"),
                    (end, lambda: server.signal(signal.SIGCONT), "SIGCONT"),
                ],
            )
        )
        rows.append(
            run_row(
                "redis killed",
                redis_uri,
                seconds,
                [(start, server.kill, "SIGKILL")],
                after=server.start,
            )
        )
        open_ledger(sqlite_uri).close()  # the file and its schema, before anyone locks it
        rows.append(
            run_row(
                "sqlite locked",
                sqlite_uri,
                seconds,
                [(start, locker.lock, "locked"), (end, locker.unlock, "unlocked")],
            )
        )
    finally:
        locker.unlock()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"loopguard event-loop lag benchmark: python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, {seconds:g} s per row, "
        f"{STEPS} model calls per run ({CALL_SECONDS * 1000:g} ms each), ticker every "
        f"{TICK * 1000:g} ms, ledger timeout {TIMEOUT:g} s, on_ledger_error closed (default)"
    )
    for r in rows:
        if r.events:
            print(f"  {r.name}: {', '.join(r.events)}")
    print()
    print(
        f"{'row':14}  {'calls out':>9}  {'refused':>7}  {'worst lag ms':>12}  "
        f"{'p99 lag ms':>10}  {'stalled %':>9}  {'longest call ms':>15}  {'worst gc ms':>11}  "
        f"{'timeout ms':>10}  {'within':>6}  {'spend ok':>8}"
    )
    for r in rows:
        timeout = f"{r.timeout * 1000:.0f}" if r.timeout is not None else "-"
        print(
            f"{r.name:14}  {r.calls:>9,}  {r.refused:>7,}  {r.worst * 1000:>12.1f}  "
            f"{r.p99 * 1000:>10.1f}  {100 * r.stalled / r.seconds:>9.0f}  "
            f"{r.longest_call * 1000:>15.1f}  {r.gc_worst * 1000:>11.1f}  {timeout:>10}  "
            f"{r.within:>6}  {r.money_ok:>8}"
        )
    print()
    print(
        f"lag: how late the ticker woke (worst, 99th percentile); stalled: the share of the row "
        f"lost in waits over {SLACK * 1000:.0f} ms; longest call: one model call's wall time "
        f"as the agent saw it (reserve and settle included); worst gc: the longest garbage "
        f"collection (a pause that is not the ledger's). within: worst lag <= one ledger "
        f"timeout + {SLACK * 1000:.0f} ms. spend ok: after the row (backlog replayed) the "
        f"ledger's spend equals the true spend, nothing is left reserved, the ${CAP_USD:g} cap "
        f"holds. refused: calls on_ledger_error = 'closed' refused (LoopGuardAbort, limit "
        f"'ledger')."
    )
    print()
    print(_interpretation(rows))
    bad = [r.name for r in rows if "NO" in (r.within, r.money_ok)]
    if bad:
        print("OUT OF BOUNDS: " + ", ".join(bad))
    return 1 if bad else 0


def _interpretation(rows: list[Row]) -> str:
    ledger_rows = [r for r in rows if r.timeout is not None]
    worst = max(ledger_rows, key=lambda r: r.worst)
    killed = next(r for r in rows if r.name == "redis killed")
    held = all(r.within == "yes" for r in ledger_rows)
    money = all(r.money_ok == "yes" for r in ledger_rows)
    stalls = ", ".join(
        f"{r.name} {100 * r.stalled / r.seconds:.0f}%"
        for r in ledger_rows
        if r.stalled > 0.1 * r.seconds
    )
    return (
        f"The claim {'holds' if held else 'does NOT hold'}: the event loop's worst wait with a "
        f"stalled ledger was {worst.worst * 1000:.0f} ms ({worst.name}), against a ledger "
        f"timeout of {TIMEOUT * 1000:.0f} ms: one operation timing out (a backlog replay stops "
        f"at its first timeout, and the operation behind it is then not tried). But an outage "
        f"is not one wait: every model call meets one (a refused reserve, or a settle kept to "
        f"replay), so while the ledger stalls the loop is blocked most of the time (stalled: "
        f"{stalls or 'none'}; the outage covers 60% of its row). A ledger that fails at once "
        f"(Redis killed: connection refused) holds nothing up: that row's worst lag, "
        f"{killed.worst * 1000:.0f} ms (longest call {killed.longest_call * 1000:.0f} ms), "
        f"sits beside its longest garbage collection, {killed.gc_worst * 1000:.0f} ms "
        f"({killed.refused:,} refused runs make garbage fast). "
        f"on_ledger_error = 'closed' refused the calls it could not reserve, and "
        + (
            "the spend of the calls that went out was counted exactly once, under the cap."
            if money
            else "the spend did NOT add up (see spend ok)."
        )
    )


if __name__ == "__main__":
    sys.exit(main())
