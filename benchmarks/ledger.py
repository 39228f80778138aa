"""Ledger benchmark: reservations per second per backend, and overshoot under contention.

Run:  python benchmarks/ledger.py [--calls 2000] [--workers 8]

Part 1 measures loopguard's ledgers (memory://, sqlite://, redis:// on a redis-server this
script starts on a free loopback port, redis+cluster:// on a 3-master cluster it starts):
reservations per second, alone and with reserve+settle
(what one model call costs the ledger), from one process and from several.

Part 2 is the baseline measured in the same run: `workers` processes share one budget and make
small calls, each taking a millisecond between the check and the write (the model call). A naive
read-check-write ledger (read the total, compare with the cap, add the cost after the call)
overshoots the cap; loopguard's reservations do not.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from loopguard.ledger import Claim, open_ledger
from loopguard.testing import redis_server

ctx = mp.get_context("fork")
NANO = 1_000_000_000
CAP_N = 1 * NANO  # $1.00
CALL_N = 2_000_000  # $0.002 per call: 500 calls fit
CALL_SECONDS = 0.01  # a (very fast) model call between the check and the write


# --- part 1: throughput -------------------------------------------------------------------


def _throughput(uri: str, calls: int, out) -> None:
    """One model call's ledger work, `calls` times: reserve, then settle. Reports the time
    spent in reserve alone and in both."""
    ledger = open_ledger(uri)
    key = f"bench:{uuid.uuid4().hex}"
    claim = Claim(key, 1000, 10, max_usd_n=10**15, max_tokens=10**12)
    in_reserve = 0.0
    t0 = time.perf_counter()
    for _ in range(calls):
        rid = uuid.uuid4().hex
        t1 = time.perf_counter()
        ledger.reserve(rid, [claim], ttl=60)
        in_reserve += time.perf_counter() - t1
        ledger.settle(rid, [claim])
    out.put((in_reserve, time.perf_counter() - t0))
    ledger.close()


def throughput(uri: str, calls: int, procs: int) -> tuple[float, float]:
    """(reservations/s, reserve+settle cycles/s); with procs > 1, aggregate cycles/s."""
    out = ctx.Queue()
    ps = [ctx.Process(target=_throughput, args=(uri, calls, out)) for _ in range(procs)]
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    results = [out.get() for _ in ps]
    for p in ps:
        p.join()
    wall = time.perf_counter() - t0
    if procs > 1:
        return float("nan"), procs * calls / wall
    in_reserve, total = results[0]
    return calls / in_reserve, calls / total


# --- part 2: overshoot --------------------------------------------------------------------


def _redis_client(uri: str):
    import redis
    from redis.cluster import RedisCluster

    if uri.startswith("redis+cluster://"):
        return RedisCluster.from_url(uri.replace("redis+cluster://", "redis://", 1))
    return redis.Redis.from_url(uri)


def _naive_redis(url: str, key: str, attempts: int) -> None:
    r = _redis_client(url)
    for _ in range(attempts):
        spent = int(r.get(key) or 0)  # read
        if spent + CALL_N <= CAP_N:  # check
            time.sleep(CALL_SECONDS)  # the model call
            r.incrby(key, CALL_N)  # write


def _naive_sqlite(path: str, key: str, attempts: int) -> None:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    for _ in range(attempts):
        (spent,) = db.execute("SELECT spent FROM naive WHERE key = ?", (key,)).fetchone()
        if spent + CALL_N <= CAP_N:
            time.sleep(CALL_SECONDS)
            db.execute("UPDATE naive SET spent = spent + ? WHERE key = ?", (CALL_N, key))


def _naive_memory_threads(key: str, attempts: int, workers: int) -> int:
    import threading

    spent = {key: 0}

    def work() -> None:
        for _ in range(attempts):
            if spent[key] + CALL_N <= CAP_N:
                time.sleep(CALL_SECONDS)
                spent[key] += CALL_N

    ts = [threading.Thread(target=work) for _ in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return spent[key]


def _loopguard_worker(uri: str, key: str, attempts: int) -> None:
    ledger = open_ledger(uri)
    _loopguard_calls(ledger, key, attempts)
    ledger.close()


def _loopguard_calls(ledger, key: str, attempts: int) -> None:
    claim = Claim(key, CALL_N, 0, max_usd_n=CAP_N)
    for _ in range(attempts):
        rid = uuid.uuid4().hex
        if ledger.reserve(rid, [claim], ttl=60).ok:
            time.sleep(CALL_SECONDS)  # the model call
            ledger.settle(rid, [claim])


def _run_procs(target, args_list) -> None:
    ps = [ctx.Process(target=target, args=a) for a in args_list]
    for p in ps:
        p.start()
    for p in ps:
        p.join()


def overshoot(backend: str, uri: str, workers: int, attempts: int) -> tuple[float, float]:
    """(naive spend, loopguard spend) in USD against a $1.00 cap."""
    key = f"bench:budget:{uuid.uuid4().hex}"
    if backend == "memory":
        import threading

        naive = _naive_memory_threads(key, attempts, workers) / NANO
        ledger = open_ledger(uri)
        threads = [
            threading.Thread(target=_loopguard_calls, args=(ledger, key, attempts))
            for _ in range(workers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        (u,) = ledger.usage([key])
        return naive, u.spent_usd
    if backend in ("redis", "cluster"):
        r = _redis_client(uri)
        r.set(key + ":naive", 0)
        _run_procs(_naive_redis, [(uri, key + ":naive", attempts)] * workers)
        naive = int(r.get(key + ":naive")) / NANO
    else:
        path = uri.removeprefix("sqlite:///")
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("CREATE TABLE IF NOT EXISTS naive (key TEXT PRIMARY KEY, spent INTEGER)")
        db.execute("INSERT INTO naive VALUES (?, 0)", (key,))
        _run_procs(_naive_sqlite, [(path, key, attempts)] * workers)
        (spent,) = db.execute("SELECT spent FROM naive WHERE key = ?", (key,)).fetchone()
        naive = spent / NANO
    _run_procs(_loopguard_worker, [(uri, key, attempts)] * workers)
    (u,) = open_ledger(uri).usage([key])
    return naive, u.spent_usd


# --- setup --------------------------------------------------------------------------------


def start_redis() -> tuple[subprocess.Popen | None, str | None]:
    """A private redis-server, or (None, None) without one."""
    if shutil.which("redis-server") is None:
        return None, None
    try:
        return redis_server.start_redis()
    except (ImportError, RuntimeError):
        return None, None


def start_cluster(workdir: str) -> tuple[list[subprocess.Popen], str | None]:
    """A 3-master Redis Cluster on loopback (redis+cluster:// URI), or ([], None)."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        return [], None
    try:
        procs, url = redis_server.start_cluster(workdir, timeout=60)
    except (ImportError, RuntimeError):
        return [], None
    return list(procs), url


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=2000, help="reservations per process (part 1)")
    ap.add_argument("--workers", type=int, default=8, help="processes sharing a budget (part 2)")
    ap.add_argument("--procs", type=int, default=4, help="processes for the parallel column")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="loopguard-bench-")
    redis_proc, redis_url = start_redis()
    backends = [
        ("memory", f"memory://bench-{uuid.uuid4().hex}"),
        ("sqlite", f"sqlite:///{tmp}/ledger.db"),
    ]
    if redis_url:
        backends.append(("redis", redis_url))
    cluster_procs, cluster_url = start_cluster(tmp)
    if cluster_url:
        backends.append(("cluster", cluster_url))
    try:
        print(
            f"loopguard ledger benchmark: python {sys.version.split()[0]}, "
            f"{os.cpu_count()} CPUs, {args.calls} reservations per process"
        )
        print()
        print(
            f"{'backend':8}  {'reservations/s':>14}  {'reserve+settle/s':>16}  "
            f"{f'reserve+settle/s, {args.procs} procs':>28}"
        )
        for name, uri in backends:
            reserve, cycle = throughput(uri, args.calls, 1)
            if name == "memory":
                par = "n/a (one process)"
            else:
                par = f"{throughput(uri, args.calls // args.procs or 1, args.procs)[1]:,.0f}"
            print(f"{name:8}  {reserve:>14,.0f}  {cycle:>16,.0f}  {par:>28}")
        if not redis_url:
            print("(redis: skipped, redis-server or redis-py not available)")
        if not cluster_url:
            print("(cluster: skipped, the 3-master cluster did not form within 60 s)")
        print()
        attempts = 1000 // args.workers + 50
        print(
            f"Overshoot: {args.workers} workers (threads for memory://, processes otherwise) "
            f"share a $1.00 budget; calls of $0.002 taking {CALL_SECONDS * 1000:g} ms; "
            f"{attempts} attempts each"
        )
        print(f"{'backend':8}  {'naive read-check-write':>24}  {'loopguard':>12}")
        for name, uri in backends:
            naive, lg = overshoot(name, uri, args.workers, attempts)
            print(
                f"{name:8}  {f'${naive:.3f} (+${max(naive - 1, 0):.3f})':>24}  "
                f"{f'${lg:.3f} (+${max(lg - 1, 0):.3f})':>12}"
            )
    finally:
        for proc in [redis_proc, *cluster_procs]:
            if proc is not None:
                proc.terminate()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
