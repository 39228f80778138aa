"""The fleet-wide kill switch on a real redis-server and a SQLite file: `loopguard budget trip`
in one process refuses the agent's next call in every worker process; `untrip` lets them go
on."""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from pathlib import Path

import pytest

from loopguard import Guard, LoopGuardAbort
from loopguard.cli import main
from loopguard.ledger import open_ledger
from tests.ledger import _workers

ctx = mp.get_context("fork")
WORKERS = 3


@pytest.fixture(params=["redis", "sqlite"])
def shared_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        return request.getfixturevalue("redis_url")
    uri = f"sqlite:///{tmp_path}/trip.db"
    open_ledger(uri).close()
    return uri


def test_a_trip_stops_every_worker_and_untrip_lets_them_go_on(shared_uri: str) -> None:
    agent = f"fleet-{uuid.uuid4().hex[:6]}"
    started = ctx.Semaphore(0)
    resume = ctx.Event()
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_workers.until_tripped, args=(shared_uri, agent, started, resume, out))
        for _ in range(WORKERS)
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:  # every worker has made a call that went out
            assert started.acquire(timeout=30)
        args = ["budget", "trip", "--ledger", shared_uri, "--agent", agent]
        assert main([*args, "--reason", "runaway bill"]) == 0
        refused = [out.get(timeout=30) for _ in procs]
        assert refused == [("refused", ("trip", "runaway bill"))] * WORKERS
        assert main(["budget", "untrip", "--ledger", shared_uri, "--agent", agent]) == 0
        resume.set()
        assert [out.get(timeout=30) for _ in procs] == [("after", "went")] * WORKERS
    finally:
        resume.set()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)


def test_an_exhausted_budget_stays_shut_for_its_window(shared_uri: str) -> None:
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    budget = {"scope": "tenant", "key": "tenant", "period": "day", "max_usd": 0.001, "trip": True}
    workers = [Guard(_workers.money_policy(ledger=shared_uri, budgets=[budget])) for _ in "ab"]
    _workers.call(workers[0], "a1", {"tenant": tenant})  # about $0.0002
    with pytest.raises(LoopGuardAbort) as big:
        _workers.call(
            workers[0], "a2", {"tenant": tenant}, max_tokens=4000
        )  # $0.016 would not fit: refused, and trips
    assert big.value.verdict.evidence["limit"] == "budget.max_usd"
    with pytest.raises(LoopGuardAbort) as small:
        # would fit, but the budget is tripped
        _workers.call(workers[1], "b1", {"tenant": tenant})
    v = small.value.verdict
    assert v.evidence["limit"] == "trip" and "budget exhausted" in v.reason
    trips = [t for t in open_ledger(shared_uri).trips() if tenant in t.key]
    assert len(trips) == 1 and trips[0].auto and trips[0].until > time.time()
    # resettable: untrip (or reset the budget) and a call that fits goes out again
    assert main(["budget", "untrip", "--ledger", shared_uri, "--key", trips[0].key]) == 0
    _workers.call(workers[1], "b2", {"tenant": tenant})
