"""A real redis-server paused (SIGSTOP) while the ledger talks to it: the client times out, the
server runs the command when it resumes (SIGCONT), and the resilient ledger replays what it
thinks failed. Spend must still be counted exactly once, and a reserve that timed out must not
hold budget until its TTL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest

from loopguard.ledger import Claim, open_ledger
from loopguard.ledger.base import KeyUsage, LedgerUnavailable
from loopguard.ledger.resilient import Resilient

TIMEOUT = 0.3  # the client's socket timeout, seconds


def _usage(url: str, key: str) -> KeyUsage:
    ledger = open_ledger(url)
    try:
        (found,) = ledger.usage([key])
        return found
    finally:
        ledger.close()


def _until(check, what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _paused(proc: subprocess.Popen, action) -> None:
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        action()
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def test_a_settle_that_timed_out_but_ran_is_counted_once(own_redis) -> None:
    proc, url = own_redis
    ledger = Resilient(f"{url}?socket_timeout={TIMEOUT}")
    key = f"fault:{uuid.uuid4().hex}"
    claim = Claim(key, 1_000_000, 10, max_usd_n=10**9)
    warm = uuid.uuid4().hex  # loads the scripts, so the paused call is the EVALSHA itself
    ledger.reserve(warm, [claim], ttl=600)
    ledger.settle(warm, [claim])
    r = uuid.uuid4().hex
    assert ledger.reserve(r, [claim], ttl=600).ok

    _paused(proc, lambda: ledger.settle(r, [claim]))
    assert ledger.backlog == 1  # the client saw a timeout and kept the settle to replay
    # ...but the server had the command and runs it when it resumes
    _until(lambda: _usage(url, key).spent_usd_n == 2_000_000, "the paused settle never ran")

    ledger.settle(uuid.uuid4().hex, [Claim(f"{key}:other", 1, 0)])  # replays the backlog
    assert ledger.backlog == 0
    u = _usage(url, key)
    assert (u.spent_usd_n, u.spent_tokens, u.reserved_usd_n) == (2_000_000, 20, 0)


def test_a_reserve_that_timed_out_but_ran_is_given_back_at_once(own_redis) -> None:
    proc, url = own_redis
    ledger = Resilient(f"{url}?socket_timeout={TIMEOUT}")
    key = f"fault:{uuid.uuid4().hex}"
    claim = Claim(key, 1_000_000, 10, max_usd_n=10**9)
    ledger.release(uuid.uuid4().hex, [claim])  # loads the scripts
    ledger.reserve(uuid.uuid4().hex, [Claim(f"{key}:warm", 1, 1)], ttl=600)

    def reserve() -> None:
        try:
            ledger.reserve(uuid.uuid4().hex, [claim], ttl=600)
        except Exception as exc:  # noqa: BLE001 - the timeout is what this test provokes
            assert type(exc).__name__ == "LedgerUnavailable"
        else:
            raise AssertionError("a paused server answered")

    _paused(proc, reserve)
    _until(lambda: _usage(url, key).reservations == 1, "the paused reserve never ran")
    ledger.settle(uuid.uuid4().hex, [Claim(f"{key}:other", 1, 0)])  # replays the backlog
    u = _usage(url, key)
    assert (u.reserved_usd_n, u.reservations, u.spent_usd_n) == (0, 0, 0)  # not held for 600 s


def test_an_outage_is_logged_once_not_once_per_call(caplog) -> None:
    from tests.ledger.conftest import free_port

    ledger = Resilient(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    with caplog.at_level("WARNING", logger="loopguard"):
        for _ in range(20):
            ledger.settle(uuid.uuid4().hex, [Claim("fault:quiet", 1, 1)])
    assert ledger.backlog == 20
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1


def test_an_outage_is_logged_without_the_uri_password(caplog) -> None:
    from loopguard.testing.redis_server import free_port
    from tests.conftest import require

    require("redis")
    # Nothing listens on the port: every operation fails, and the outage is logged.
    ledger = Resilient(f"redis://worker:s3cret-pw@127.0.0.1:{free_port()}/0?socket_timeout=0.2")
    with caplog.at_level("WARNING", logger="loopguard"):
        ledger.settle("r1", [Claim("loopguard:budget:global", usd_n=1)])
    assert ledger.backlog == 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "unreachable" in logged and "worker:***@" in logged
    assert "s3cret-pw" not in logged


def test_a_stalled_server_costs_one_attempt_per_operation_backlog_included() -> None:
    """What bounds an agent's wait (docs/money.md, benchmarks/loop_block.py) at one timeout per
    operation: the backlog replay stops at its first failure, the reserve behind it is not
    tried, and redis-py does not retry. Counted as connections to a listener that never
    answers (the kernel completes them; each timed-out try closes its own)."""
    import socket

    from tests.conftest import require

    require("redis")
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    listener.setblocking(False)
    accepted: list[socket.socket] = []

    def connections() -> int:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except BlockingIOError:
                return len(accepted)

    port = listener.getsockname()[1]
    ledger = Resilient(f"redis://127.0.0.1:{port}/0?socket_timeout=0.1")
    claims = [Claim("loopguard:budget:stall", 1, 1)]
    try:
        for i in range(3):
            ledger.release_later(f"kept{i}", claims)  # a backlog waits to be replayed
        with pytest.raises(LedgerUnavailable):
            ledger.reserve("r", claims, 60)
        assert connections() == 1
        assert ledger.backlog == 4  # nothing replayed; the reserve's release kept as well
        ledger.settle("s", claims)
        assert connections() == 2  # the next operation: one more try, no more
        assert ledger.backlog == 5
    finally:
        listener.close()
        for conn in accepted:
            conn.close()


@pytest.mark.parametrize(
    ("query", "timeouts"),
    [
        ("", (2.0, 2.0)),
        ("?socket_timeout=0.2", (0.2, 0.2)),  # the connect timeout follows a stalled read's
        ("?socket_timeout=0.2&socket_connect_timeout=1.5", (0.2, 1.5)),
        ("?socket_connect_timeout=0.5", (2.0, 0.5)),
    ],
)
def test_a_uri_socket_timeout_bounds_connecting_too(
    query: str, timeouts: tuple[float, float]
) -> None:
    """A host that drops packets is given up on as soon as a stalled one: the URI's
    socket_timeout is also the connect timeout unless the URI sets that itself."""
    from tests.conftest import require

    require("redis")
    from loopguard.ledger.redis import RedisLedger
    from tests.ledger.conftest import free_port

    ledger = RedisLedger(f"redis://127.0.0.1:{free_port()}/0{query}")  # connects lazily
    kwargs = ledger._client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == timeouts
