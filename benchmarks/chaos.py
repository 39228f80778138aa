"""Chaos benchmark: is spend counted exactly once when Redis stalls, dies and comes back?

Run:  python benchmarks/chaos.py [--procs 4] [--threads 4] [--seconds 8]

Starts a redis-server on a free loopback port (append-only file, fsync on every write, so a
killed server keeps what it acknowledged) and runs `procs` processes x `threads` threads of
guarded model calls against one shared tenant budget, through the real money check
(`loopguard.Guard`, the Redis ledger with a 0.2 s socket timeout). Meanwhile the server is
paused (SIGSTOP, then SIGCONT: calls time out on the client and run on the server later),
killed (SIGKILL) and restarted on the same port. At the end every worker flushes what its
resilient ledger kept, and the table compares the ledger's total with the true spend: the sum
of what the calls that went out cost. Both on_ledger_error modes are run.

The baseline, measured under the same chaos in the same run: a client that adds each call's
cost with INCRBY and retries after an error (at least once), as a hand-written ledger would.

Bounded: every phase stops by itself after `seconds` plus the flush; loopback only.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from loopguard import Guard, LoopGuardAbort, Policy
from loopguard.events import Message, ModelEnd, ModelStart, Usage
from loopguard.ledger import open_ledger, usd_to_nano
from loopguard.ledger.spec import PREFIX
from loopguard.testing import redis_server
from loopguard.testing.policies import money_policy
from loopguard.testing.redis_server import free_port

ctx = mp.get_context("fork")
MODEL = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
CALL_SECONDS = 0.005  # the model call between reserve and settle
TIMEOUT = 0.2  # the ledger's socket timeout
NANO = 1_000_000_000


class Server:
    """A redis-server that can be paused, killed and restarted on the same port and data."""

    def __init__(self, workdir: str) -> None:
        self.dir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.events: list[str] = []

    def start(self) -> None:
        self.proc, _ = redis_server.start_redis(
            "--dir", self.dir, "--appendonly", "yes", "--appendfsync", "always", port=self.port
        )

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            redis_server.stop(self.proc)


def chaos(server: Server, seconds: float, done: threading.Event) -> None:
    """Pauses, a kill and a restart, spread over the phase (times scale with `seconds`)."""
    t0 = time.monotonic()

    def at(fraction: float) -> bool:
        left = t0 + seconds * fraction - time.monotonic()
        return not done.wait(max(left, 0))

    plan: list[tuple[float, str]] = [
        (0.10, "STOP"),
        (0.22, "CONT"),
        (0.35, "STOP"),
        (0.38, "CONT"),
        (0.50, "KILL"),
        (0.60, "START"),
        (0.75, "STOP"),
        (0.90, "CONT"),
    ]
    for fraction, what in plan:
        if not at(fraction):
            break
        if what == "STOP":
            server.signal(signal.SIGSTOP)
        elif what == "CONT":
            server.signal(signal.SIGCONT)
        elif what == "KILL":
            server.kill()
        else:
            server.start()
        server.events.append(what)


def _policy(uri: str, mode: str) -> Policy:
    return money_policy(
        ledger=uri,
        on_ledger_error=mode,
        budgets=[{"scope": "tenant", "key": "tenant", "max_usd": 1000}],
    )


def _in_threads(calls: Callable[[int], tuple[int, int, int]], threads: int) -> tuple[int, ...]:
    """`calls(0)` ... `calls(threads - 1)` at once, one thread each; the sums of their
    (went, refused, nano-dollars)."""
    with ThreadPoolExecutor(threads) as pool:
        return tuple(map(sum, zip(*pool.map(calls, range(threads)), strict=True)))


def guarded_worker(uri: str, mode: str, tenant: str, threads: int, until: float, out) -> None:
    """`threads` threads make guarded calls until `until`; report (went, refused, true nano)."""
    from loopguard.detectors.budget import LEDGERS

    guard = Guard(_policy(uri, mode))

    def calls(t: int) -> tuple[int, int, int]:
        went = refused = nano = 0
        i = 0
        while time.time() < until:
            run = f"{os.getpid()}-{t}-{i}"
            i += 1
            try:
                guard.process(
                    ModelStart(
                        run=run,
                        model=MODEL,
                        messages=[Message("user", f"question {i}")],
                        max_tokens=200,
                        id=run,
                        meta={"tenant": tenant},
                    )
                )
            except LoopGuardAbort:
                refused += 1
                guard.end_run(run, "aborted")
                continue
            time.sleep(CALL_SECONDS)
            guard.process(ModelEnd(run=run, model=MODEL, usage=Usage(10, 20 + i % 50), id=run))
            nano += usd_to_nano(guard.get_run(run).last_call_cost or 0.0)
            went += 1
            guard.end_run(run)
        return went, refused, nano

    totals = _in_threads(calls, threads)
    # What the outage kept is written once the server answers (bounded wait).
    ledger = LEDGERS.remote(uri)
    deadline = time.time() + 30
    while not ledger.flush() and time.time() < deadline:
        time.sleep(0.1)
    out.put((*totals, ledger.backlog))


def naive_worker(url: str, key: str, threads: int, until: float, out) -> None:
    """The baseline: INCRBY each call's cost, retried after any error until it succeeds."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)

    def calls(t: int) -> tuple[int, int, int]:
        went = nano = 0
        i = 0
        while time.time() < until:
            i += 1
            cost = 1000 + i % 50
            time.sleep(CALL_SECONDS)
            while True:
                try:
                    client.incrby(key, cost)
                    break
                except redis.RedisError:
                    time.sleep(0.05)
            went += 1
            nano += cost
        return went, 0, nano

    out.put((*_in_threads(calls, threads), 0))


def phase(server: Server, name: str, args: argparse.Namespace) -> dict[str, Any]:
    tenant = f"chaos-{uuid.uuid4().hex[:8]}"
    key = f"chaos:naive:{tenant}"
    uri = f"{server.url}?socket_timeout={TIMEOUT}&socket_connect_timeout={TIMEOUT}"
    until = time.time() + args.seconds
    out = ctx.Queue()
    if name == "naive":
        target: Any = naive_worker
        wargs: tuple = (server.url, key, args.threads, until, out)
    else:
        target = guarded_worker
        wargs = (uri, name, tenant, args.threads, until, out)
    procs = [ctx.Process(target=target, args=wargs) for _ in range(args.procs)]
    for p in procs:
        p.start()
    server.events = []
    done = threading.Event()
    controller = threading.Thread(target=chaos, args=(server, args.seconds, done))
    controller.start()
    results = [out.get(timeout=args.seconds + 90) for _ in procs]
    done.set()
    controller.join()
    for p in procs:
        p.join(timeout=30)
    if server.proc is None or server.proc.poll() is not None:
        server.start()
    server.signal(signal.SIGCONT)
    went = sum(r[0] for r in results)
    refused = sum(r[1] for r in results)
    true_n = sum(r[2] for r in results)
    left = sum(r[3] for r in results)
    if name == "naive":
        import redis

        counted_n = int(redis.Redis.from_url(server.url).get(key) or 0)
        held_n = 0
    else:
        ledger = open_ledger(server.url)
        rows = ledger.usage(prefix=f"{PREFIX}tenant:tenant={tenant}:")
        ledger.close()
        counted_n = sum(r.spent_usd_n for r in rows)
        held_n = sum(r.reserved_usd_n for r in rows)
    return {
        "name": name,
        "went": went,
        "refused": refused,
        "true": true_n,
        "counted": counted_n,
        "held": held_n,
        "left": left,
        "events": " ".join(server.events),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=4, help="worker processes")
    ap.add_argument("--threads", type=int, default=4, help="threads per process")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    args = ap.parse_args()
    # the outages are deliberate: the guard's warnings about them would drown the table
    logging.getLogger("loopguard").setLevel(logging.CRITICAL)
    if shutil.which("redis-server") is None:
        print("chaos: needs redis-server on PATH (apt-get install redis-server)")
        return 2
    workdir = tempfile.mkdtemp(prefix="loopguard-chaos-")
    server = Server(workdir)
    server.start()
    rows = []
    try:
        for name in ("naive", "closed", "open"):
            rows.append(phase(server, name, args))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"loopguard chaos benchmark: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{args.procs} processes x {args.threads} threads, {args.seconds:g} s per row, "
        f"socket timeout {TIMEOUT:g} s"
    )
    print(f"chaos in each row: {rows[-1]['events']} (STOP/CONT = SIGSTOP/SIGCONT)")
    print()
    print(
        f"{'ledger':24}  {'calls out':>9}  {'refused':>7}  {'true spend $':>13}  "
        f"{'ledger says $':>13}  {'difference $':>12}  {'held $':>8}"
    )
    labels = {
        "naive": "naive INCRBY + retry",
        "closed": "loopguard, closed",
        "open": "loopguard, open",
    }
    for r in rows:
        diff = (r["counted"] - r["true"]) / NANO
        print(
            f"{labels[r['name']]:24}  {r['went']:>9,}  {r['refused']:>7,}  "
            f"{r['true'] / NANO:>13.6f}  {r['counted'] / NANO:>13.6f}  {diff:>+12.6f}  "
            f"{r['held'] / NANO:>8.6f}"
        )
    bad = [r for r in rows[1:] if r["counted"] != r["true"] or r["held"] or r["left"]]
    print()
    print(
        "loopguard: ledger spend equals the true spend in both modes"
        if not bad
        else "loopguard: MISMATCH in " + ", ".join(r["name"] for r in bad)
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
