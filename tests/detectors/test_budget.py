"""The money check inside the guard: caps before the call, budgets by scope, releases."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import pytest

from loopguard import Guard, LoopGuardAbort
from loopguard.events import Message, ModelEnd, ModelFailed, ModelStart, Usage
from loopguard.ledger import SCHEMES, open_ledger, shared_ledger
from loopguard.ledger.base import LedgerUnavailable
from loopguard.ledger.memory import MemoryLedger
from loopguard.ledger.spec import PREFIX, BudgetSpec, expire_at, window
from tests.conftest import require
from tests.ledger._workers import money_policy as policy
from tests.ledger.conftest import (  # noqa: F401 - redis-server fixtures
    free_port,
    own_redis,
    redis_url,
)

HAIKU = "us.anthropic.claude-3-5-haiku-20241022-v1:0"  # 0.80 in / 4.00 out / 1.00 cache write


def mem() -> str:
    return f"memory://{uuid.uuid4().hex}"


def start(
    run: str,
    i: int,
    *,
    model: str = HAIKU,
    text: str = "x" * 347,
    max_tokens: int = 1000,
    meta: dict | None = None,
    agent: str | None = None,
) -> ModelStart:
    # 347 characters: estimate = 4 + ceil(347 / 3.5) = 104 input tokens
    return ModelStart(
        run=run,
        agent=agent,
        model=model,
        messages=[Message("user", text)],
        max_tokens=max_tokens,
        id=f"{run}-{i}",
        meta=meta,
    )


def end(
    run: str, i: int, usage: Usage, *, model: str = HAIKU, agent: str | None = None
) -> ModelEnd:
    return ModelEnd(run=run, agent=agent, model=model, usage=usage, id=f"{run}-{i}")


USAGE = Usage(input_tokens=100, output_tokens=500)  # 100*0.8 + 500*4 = 2,080 micro-USD


def test_max_cost_usd_refuses_the_call_that_could_cross_it() -> None:
    # projection per call: 104 * 1.00 (dearest input rate) + 1000 * 4.00 = 4,104 micro-USD
    guard = Guard(policy(max_cost_usd=0.01))
    calls = 0
    with pytest.raises(LoopGuardAbort) as info:
        for i in range(10):
            guard.process(start("r", i))
            calls += 1
            guard.process(end("r", i, USAGE))
    # after 2 calls (4,160 spent) a third could reach 8,264: allowed; after 3 (6,240) a fourth
    # could reach 10,344 > 10,000: refused before it goes out
    assert calls == 3
    v = info.value.verdict
    assert v.detector == "budget" and v.evidence["limit"] == "max_cost_usd"
    assert v.evidence["projected_usd"] == pytest.approx(0.004104)
    assert guard.get_run("r").cost_usd == pytest.approx(0.00624)


def test_concurrent_calls_of_one_run_count_each_others_reservations() -> None:
    guard = Guard(policy(max_cost_usd=0.01))
    guard.process(start("r", 1))
    guard.process(start("r", 2))  # 8,208 held
    with pytest.raises(LoopGuardAbort):
        guard.process(start("r", 3))  # 12,312 > 10,000


def test_warn_cost_usd() -> None:
    guard = Guard(policy(max_cost_usd=1.0, warn_cost_usd=0.005))
    assert guard.process(start("r", 0)) is None
    guard.process(end("r", 0, USAGE))
    verdict = guard.process(start("r", 1))  # 2,080 + 4,104 >= 5,000
    assert verdict is not None and verdict.evidence["limit"] == "cost_usd"


def _spent(uri: str, key_part: str) -> float:
    found = [u for u in shared_ledger(uri).usage(prefix=PREFIX) if key_part in u.key]
    assert len(found) == 1, found
    return found[0].spent_usd


def test_conversation_budget_spans_runs() -> None:
    uri = mem()
    guard = Guard(
        policy(ledger=uri, budgets=[{"scope": "conversation", "period": "total", "max_usd": 0.01}])
    )
    went = 0
    with pytest.raises(LoopGuardAbort) as info:
        for i in range(10):  # every turn of the conversation is its own run
            guard.process(start(f"turn{i}", 0, meta={"thread_id": "t-1"}))
            guard.process(end(f"turn{i}", 0, USAGE))
            guard.end_run(f"turn{i}")
            went += 1
    assert went == 3
    assert "conversation:thread_id=t-1:total" in info.value.verdict.evidence["key"]
    assert _spent(uri, "conversation:thread_id=t-1") == pytest.approx(0.00624)
    # another conversation has its own budget
    guard.process(start("other", 0, meta={"thread_id": "t-2"}))


def test_agent_and_global_budgets_and_tokens() -> None:
    uri = mem()
    guard = Guard(
        policy(
            ledger=uri,
            budgets=[
                {"scope": "agent", "period": "hour", "max_tokens": 2500},
                {"scope": "global", "period": "month", "max_usd": 100},
            ],
        )
    )
    # each call reserves 104 + 1000 tokens; settles to 600
    guard.process(start("a", 0, agent="writer"))
    guard.process(end("a", 0, USAGE, agent="writer"))
    guard.process(start("a", 1, agent="writer"))  # 600 + 1104 held = 1704
    with pytest.raises(LoopGuardAbort) as info:
        guard.process(start("a", 2, agent="writer"))  # 1704 + 1104 > 2500
    assert info.value.verdict.evidence["limit"] == "budget.max_tokens"
    guard.process(start("b", 0, agent="reader"))  # another agent: its own token budget


def test_tenant_budget_without_the_label_shares_one_bucket() -> None:
    uri = mem()
    guard = Guard(policy(ledger=uri, budgets=[{"scope": "tenant", "key": "org", "max_usd": 1}]))
    guard.process(start("r", 0))
    guard.process(end("r", 0, USAGE))
    assert _spent(uri, "tenant:org:") == pytest.approx(0.00208)


def _held(uri: str) -> int:
    return sum(u.reservations for u in shared_ledger(uri).usage(prefix=PREFIX))


def test_model_error_and_run_end_release() -> None:
    uri = mem()
    guard = Guard(policy(ledger=uri, budgets=[{"max_usd": 1}]))
    guard.process(start("r", 0))
    guard.process(start("r", 1))
    assert _held(uri) == 2
    guard.process(ModelFailed(run="r", model=HAIKU, error="throttled", id="r-0"))
    assert _held(uri) == 1
    guard.end_run("r", "error")
    assert _held(uri) == 0


def test_eviction_releases_the_reservation() -> None:
    uri = mem()
    guard = Guard(policy(ledger=uri, budgets=[{"max_usd": 1}]), max_runs=1)
    guard.process(start("old", 0))
    assert _held(uri) == 1
    guard.process(start("new", 0))  # "old" is evicted to make room
    assert guard.get_run("old") is None
    assert _held(uri) == 1  # only the new run's reservation is left


def test_unknown_model_block_refuses_before_the_call() -> None:
    guard = Guard(policy(unknown_model="block"))
    with pytest.raises(LoopGuardAbort, match="no price for model"):
        guard.process(start("r", 0, model="acme-llm-9"))


def test_unknown_model_warn_marks_the_run(caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(policy(max_cost_usd=1, unknown_model="warn"))
    with caplog.at_level(logging.WARNING, logger="loopguard"):
        guard.process(start("r", 0, model="acme-llm-8"))
        guard.process(end("r", 0, USAGE, model="acme-llm-8"))
    assert guard.get_run("r").attributes["loopguard.unpriced_model"] == "acme-llm-8"
    assert "acme-llm-8" in caplog.text


def test_default_guard_prices_calls_with_the_packaged_table() -> None:
    guard = Guard(policy())
    guard.process(start("r", 0))
    guard.process(
        end(
            "r",
            0,
            Usage(
                input_tokens=10_000,
                output_tokens=1_000,
                cache_read_tokens=4_000,
                cache_write_tokens=2_000,
            ),
        )
    )
    assert guard.get_run("r").cost_usd == pytest.approx(0.00952)


def test_shadow_mode_records_spend_without_stopping() -> None:
    uri = mem()
    guard = Guard(policy(mode="shadow", ledger=uri, budgets=[{"max_usd": 0.005}]))
    for i in range(4):
        guard.process(start("r", i))
        guard.process(end("r", i, USAGE))
    assert _spent(uri, "global") == pytest.approx(4 * 0.00208)
    assert _held(uri) == 0


def test_ledger_unreachable_fails_closed() -> None:
    uri = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    guard = Guard(policy(ledger=uri, budgets=[{"max_usd": 1}]))
    with pytest.raises(LoopGuardAbort, match="unreachable"):
        guard.process(start("r", 0))


def test_a_ledger_password_never_leaves_the_process(caplog: pytest.LogCaptureFixture) -> None:
    uri = f"redis://app:s3cr3t-pw@127.0.0.1:{free_port()}/0"  # nothing listens there
    guard = Guard(policy(ledger=uri, budgets=[{"max_usd": 1}]))
    with caplog.at_level(logging.DEBUG, logger="loopguard"):
        with pytest.raises(LoopGuardAbort) as info:
            guard.process(start("r", 0))
    shown = [str(info.value), repr(info.value.verdict.to_dict()), caplog.text]
    assert all("s3cr3t-pw" not in text for text in shown)
    assert "redis://app:***@127.0.0.1" in str(info.value)  # still says which ledger
    open_guard = Guard(policy(ledger=uri, on_ledger_error="open", budgets=[{"max_usd": 1}]))
    with caplog.at_level(logging.DEBUG, logger="loopguard"):
        open_guard.process(start("r", 0))
    attributes = repr(open_guard.get_run("r").attributes)
    assert "s3cr3t-pw" not in caplog.text + attributes and "app:***@" in attributes


class Flaky(MemoryLedger):
    """A ledger whose storage can be switched off."""

    down = False

    def _check(self) -> None:
        if Flaky.down:
            raise LedgerUnavailable(f"{self.uri}: switched off")

    def reserve(self, *a, **k):
        self._check()
        return super().reserve(*a, **k)

    def settle(self, *a, **k):
        self._check()
        return super().settle(*a, **k)


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(SCHEMES, "flaky", f"{__name__}:Flaky")
    monkeypatch.setattr(Flaky, "down", False)
    return f"flaky://{uuid.uuid4().hex}"


def test_fail_open_counts_locally_and_loses_no_spend(
    flaky: str, caplog: pytest.LogCaptureFixture
) -> None:
    guard = Guard(policy(ledger=flaky, on_ledger_error="open", budgets=[{"max_usd": 0.01}]))
    guard.process(start("r", 0))
    guard.process(end("r", 0, USAGE))
    Flaky.down = True
    with caplog.at_level(logging.WARNING, logger="loopguard"):
        guard.process(start("r", 1))  # allowed: counted in this process only
        guard.process(end("r", 1, USAGE))
        guard.process(start("r", 2))  # the local count holds the outage's 2,080 + 4,104: fits
        guard.process(end("r", 2, USAGE))
    assert guard.get_run("r").attributes["loopguard.ledger_degraded"] == flaky
    assert "unreachable" in caplog.text
    Flaky.down = False
    # the next reach replays what the outage kept (6,240 spent; 504 more fits, 4,104 not)
    with pytest.raises(LoopGuardAbort):
        guard.process(start("r2", 0))
    assert _spent(flaky, "global") == pytest.approx(3 * 0.00208)
    guard.process(start("r3", 0, max_tokens=100))


def test_windows_are_utc() -> None:
    ts = datetime(2026, 1, 31, 23, 30, tzinfo=UTC).timestamp()
    assert window("hour", ts, "r") == "hour=2026-01-31T23"
    assert window("day", ts, "r") == "day=2026-01-31"
    assert window("month", ts, "r") == "month=2026-01"
    assert window("run", ts, "run/1") == "run=run%2F1"
    assert expire_at("total", ts) is None
    # a month's key is kept 35 days past the month's end
    assert expire_at("month", ts) == datetime(2026, 3, 8, tzinfo=UTC).timestamp()


def test_budget_spec_errors_name_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="max_usd, max_tokens"):
        BudgetSpec(scope="global")
    with pytest.raises(ValueError, match="metadata key"):
        BudgetSpec(scope="tenant", max_usd=1)
    with pytest.raises(ValueError, match="unknown ledger URI"):
        policy(ledger="mongodb://x", budgets=[{"max_usd": 1}])


def test_sqlite_budget_survives_a_restart(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/b.db"
    Guard(policy(ledger=uri, budgets=[{"max_usd": 1}])).process(start("r", 0))
    first = Guard(policy(ledger=uri, budgets=[{"max_usd": 1}]))
    first.process(start("r", 0))
    first.process(end("r", 0, USAGE))
    reopened = open_ledger(uri)
    (u,) = reopened.usage(prefix=PREFIX)
    assert u.spent_usd == pytest.approx(0.00208)


def test_unopenable_sqlite_ledger_fails_closed(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/no/such/dir/b.db"
    guard = Guard(policy(ledger=uri, budgets=[{"max_usd": 1}]))
    with pytest.raises(LoopGuardAbort, match="unreachable"):
        guard.process(start("r", 0))


def test_the_documented_policy_loads(tmp_path) -> None:
    from pathlib import Path

    from loopguard import PolicySet

    doc = (Path(__file__).parents[2] / "docs" / "money.md").read_text(encoding="utf-8")
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    cfg = tmp_path / "loopguard.toml"
    cfg.write_text(example)
    p = PolicySet.load(str(cfg)).default
    assert p.max_cost_usd == 2.0 and p.unknown_model_action == "block"
    assert [b.scope for b in p.budgets] == ["tenant", "conversation"]
    assert p.prices["my-finetune"].output == 4.0


def test_bad_budget_in_a_file_names_the_key_path(tmp_path) -> None:
    from loopguard import ConfigError, PolicySet

    cfg = tmp_path / "loopguard.toml"
    cfg.write_text('[[budgets]]\nscope = "team"\nmax_usd = 5\n')
    with pytest.raises(ConfigError, match=r"budgets\.0\.scope.*'global'.*'agent'") as info:
        PolicySet.load(str(cfg))
    assert info.value.line == 2


def test_redis_window_keys_expire(redis_url: str) -> None:  # noqa: F811 - the fixture
    import redis as redis_py

    guard = Guard(
        policy(
            ledger=redis_url,
            budgets=[{"period": "hour", "max_usd": 1}, {"period": "total", "max_usd": 1}],
        )
    )
    run = uuid.uuid4().hex
    guard.process(start(run, 0))
    guard.process(end(run, 0, USAGE))
    client = redis_py.Redis.from_url(redis_url)
    hour_key = f"{PREFIX}global:{window('hour', datetime.now(UTC).timestamp(), run)}"
    assert 0 < client.ttl(hour_key) <= 2 * 3600 + 86_400  # a day after the hour ends
    assert client.ttl(f"{PREFIX}global:total") == -1  # a total never expires
    client.delete(hour_key, f"{PREFIX}global:total")


def test_real_bedrock_client_is_stopped_before_the_call_that_would_cross_a_budget(tmp_path) -> None:
    """ChatBedrockConverse on FakeBedrock, through the callback handler: each invoke is its own
    run; a tenant's daily budget in SQLite stops the first call that could cross it, before it
    reaches the server, and the spend is the cache-aware cost of what was really used."""
    require("langchain_aws")
    from loopguard import LoopGuardCallbackHandler
    from loopguard.testing import FakeBedrock, Reply

    uri = f"sqlite:///{tmp_path}/tenants.db"
    # 3.5 Haiku, in-region: 40*0.80 + 1200*0.08 + 300*1.00 + 100*4.00 = 828 micro-USD per call
    reply = Reply(
        text="Sunny.",
        input_tokens=40,
        output_tokens=100,
        cache_read_tokens=1200,
        cache_write_tokens=300,
    )
    # the projection of "weather?": 4 + ceil(8/3.5) = 7 tokens * 1.00 + 500 * 4.00 = 2,007
    handler = LoopGuardCallbackHandler(
        Guard(policy(ledger=uri, budgets=[{"scope": "tenant", "key": "tenant", "max_usd": 0.005}]))
    )
    config = {"callbacks": [handler], "metadata": {"tenant": "acme"}}
    went = 0
    with FakeBedrock([reply] * 10) as fake:
        model = fake.chat_model(max_tokens=500)
        with pytest.raises(LoopGuardAbort) as info:
            for _ in range(10):
                model.invoke("weather?", config=config)
                went += 1
        served = len(fake.requests)
    # after 4 calls (3,312 spent) a fifth could reach 5,319 > 5,000: refused before it goes out
    assert went == 4 and served == 4
    assert info.value.verdict.evidence["key"].startswith(f"{PREFIX}tenant:tenant=acme:day=")
    (u,) = open_ledger(uri).usage(prefix=f"{PREFIX}tenant:tenant=acme:")
    assert u.spent_usd == pytest.approx(4 * 0.000828)
    assert u.reserved_usd_n == 0


def test_a_budget_near_its_limit_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    uri = mem()
    guard = Guard(policy(ledger=uri, budgets=[{"scope": "global", "max_usd": 0.01}]))
    verdicts = []
    for i in range(2):
        verdicts.append(guard.process(start("r", i)))
        guard.process(end("r", i, USAGE))
    # first call holds 4,104 (< 8,000 = warn_ratio 0.8 of 10,000); the second 2,080 + 4,104
    assert verdicts[0] is None and verdicts[1] is None
    v = guard.process(start("r", 2))  # 4,160 + 4,104 = 8,264 >= 8,000
    assert v is not None and v.evidence["limit"] == "budget.max_usd"
    assert "global" in v.evidence["key"]
    guard.process(end("r", 2, USAGE))
    guard.end_run("r")
    assert guard.process(start("r2", 0, max_tokens=10)) is None  # warned once per key


def test_a_run_period_budget_is_per_run_and_per_scope() -> None:
    uri = mem()
    guard = Guard(
        policy(
            ledger=uri,
            budgets=[{"scope": "tenant", "key": "org", "period": "run", "max_usd": 0.005}],
        )
    )
    guard.process(start("a", 0, meta={"org": "acme"}))  # 4,104 held
    with pytest.raises(LoopGuardAbort):
        guard.process(start("a", 1))  # the run's label came with its first call
    guard.process(start("b", 0, meta={"org": "acme"}))  # another run: its own window
    keys = sorted(u.key for u in shared_ledger(uri).usage(prefix=PREFIX))
    assert keys == [f"{PREFIX}tenant:org=acme:run=a", f"{PREFIX}tenant:org=acme:run=b"]


def test_no_ledger_io_under_the_guard_wide_lock(own_redis) -> None:  # noqa: F811
    # Redis stalls (SIGSTOP) while one run settles its call; that run waits for the ledger's
    # timeout, but new runs, and the eviction they cause, must not wait with it.
    import os
    import signal
    import threading

    from loopguard.events import RunStart

    proc, url = own_redis
    guard = Guard(policy(ledger=f"{url}?socket_timeout=3", budgets=[{"max_usd": 1}]), max_runs=2)
    guard.process(start("stuck", 0))
    guard.process(start("idle", 0))  # holds a reservation: its eviction gives it back
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        blocked = threading.Thread(target=guard.process, args=(end("stuck", 0, USAGE),))
        blocked.start()
        threading.Event().wait(0.2)  # "stuck" is inside its settle, its own lock held
        others = threading.Thread(
            target=lambda: [guard.process(RunStart(run=f"new-{i}")) for i in range(3)]
        )
        others.start()
        others.join(timeout=2.5)
        assert not others.is_alive(), "new runs waited for the stalled ledger"
        assert blocked.is_alive()  # still waiting for Redis: the two did not queue
        assert guard.get_run("idle") is None  # evicted, with no ledger I/O
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        blocked.join()
    # What waited is replayed with the ledger's next operation: the settle counted once, the
    # evicted run's reservation given back.
    guard.process(start("last", 0))
    guard.process(end("last", 0, USAGE))
    ledger = open_ledger(url)
    try:
        (usage,) = ledger.usage(prefix=PREFIX)
    finally:
        ledger.close()
    assert (usage.reservations, usage.reserved_usd_n, usage.spent_usd_n) == (0, 0, 2 * 2080_000)


@pytest.mark.timeout(15)  # without the URI's timeout the call waited SQLite's default 30 s
def test_a_locked_sqlite_ledger_holds_a_call_up_only_for_its_timeout(tmp_path) -> None:
    import sqlite3

    path = tmp_path / "budgets.db"
    guard = Guard(policy(ledger=f"sqlite:///{path}?timeout=0.2", budgets=[{"max_usd": 1}]))
    guard.process(start("warm", 0))  # creates the file and its tables
    guard.process(end("warm", 0, USAGE))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(LoopGuardAbort) as stop:
            guard.process(start("r", 0))
        assert stop.value.verdict.evidence["limit"] == "ledger"  # closed: refused, not skipped
    finally:
        other.execute("ROLLBACK")
        other.close()
