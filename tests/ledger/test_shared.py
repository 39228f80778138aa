"""Budgets shared by processes: never overshot, and a killed worker's hold comes back.

8 worker processes draw on one daily tenant budget with many small calls; whatever the
interleaving, the ledger's total spend ends at or under the cap, and it equals what the workers
themselves were charged (no spend lost). Runs over Redis and over SQLite.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from pathlib import Path

import pytest

from loopguard.ledger import open_ledger
from loopguard.ledger.spec import PREFIX
from tests.ledger import _workers

WORKERS = 8
CALLS = 40
CAP = 0.04  # about 50 of the 320 attempted calls fit
ctx = mp.get_context("fork")


@pytest.fixture(params=["redis", "sqlite"])
def shared_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        return request.getfixturevalue("redis_url")
    return f"sqlite:///{tmp_path}/shared.db"


def _tenant_usage(uri: str, tenant: str):
    ledger = open_ledger(uri)
    try:
        (found,) = ledger.usage(prefix=f"{PREFIX}tenant:tenant={tenant}:")
        return found
    finally:
        ledger.close()


@pytest.mark.parametrize("round_", range(3))
def test_many_workers_never_overshoot_a_shared_budget(shared_uri: str, round_: int) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    results = _workers.spend_in_processes(shared_uri, CAP, [tenant] * WORKERS, CALLS)
    went = sum(r[0] for r in results)
    refused = sum(r[1] for r in results)
    charged = sum(r[2] for r in results)
    usage = _tenant_usage(shared_uri, tenant)
    assert refused > 0, "the cap was never reached; the test proves nothing"
    assert went + refused == WORKERS * CALLS
    assert usage.spent_usd <= CAP
    assert usage.reserved_usd_n == 0  # every reservation was settled or released
    assert usage.spent_usd == pytest.approx(charged, abs=1e-8 * went)
    assert usage.spent_usd > CAP * 0.9  # refusals came from a nearly full budget


def test_killed_worker_gives_its_reservation_back_after_the_ttl(shared_uri: str) -> None:
    tenant = f"k-{uuid.uuid4().hex[:8]}"
    ttl = 1.0
    ready = ctx.Event()
    child = ctx.Process(target=_workers.hold_and_wait, args=(shared_uri, CAP, tenant, ttl, ready))
    child.start()
    assert ready.wait(30), "the worker never reserved"
    _workers.kill(child.pid)
    child.join(timeout=10)
    killed_at = time.monotonic()
    held = _tenant_usage(shared_uri, tenant)
    assert held.reserved_usd_n > 0 and held.reservations == 1

    # The whole budget is usable again once the TTL has passed (reclaimed on the next look).
    while True:
        usage = _tenant_usage(shared_uri, tenant)
        if usage.reservations == 0:
            break
        assert time.monotonic() - killed_at < ttl + 5, "the reservation was never reclaimed"
        time.sleep(0.1)
    assert usage.reserved_usd_n == 0 and usage.spent_usd_n == 0
