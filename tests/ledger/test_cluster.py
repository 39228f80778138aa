"""Redis Cluster (a real 3-master cluster started on loopback): one reservation's keys share a
hash slot, different tenants spread over the masters, and no budget is overshot by several
processes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from loopguard import Guard, LoopGuardAbort
from loopguard.cli import main
from loopguard.ledger import open_ledger
from loopguard.ledger.spec import PREFIX
from tests.ledger import _workers

WORKERS = 6
CALLS = 25
CAP = 0.02  # about 25 of each tenant's 75 attempted calls fit


def _sharded(cluster_url: str) -> str:
    return cluster_url + "?shard=tenant"


def _spread_tenants(uri: str) -> list[str]:
    """Two tenant names whose keys live on different masters."""
    ledger = open_ledger(uri)
    client = ledger._client
    by_node: dict[str, str] = {}
    while len(by_node) < 2:
        tenant = f"c-{uuid.uuid4().hex[:8]}"
        node = client.get_node_from_key("{tenant=" + tenant + "}x").name
        by_node.setdefault(node, tenant)
    ledger.close()
    return list(by_node.values())


def test_tenants_spread_and_no_budget_is_overshot(cluster_url: str) -> None:
    uri = _sharded(cluster_url)
    tenants = _spread_tenants(uri)
    spread = [tenants[seed % 2] for seed in range(WORKERS)]
    results = _workers.spend_in_processes(uri, CAP, spread, CALLS)
    assert sum(r[1] for r in results) > 0, "the caps were never reached"
    assert sum(r[0] + r[1] for r in results) == WORKERS * CALLS
    ledger = open_ledger(uri)
    try:
        for tenant in tenants:
            (u,) = ledger.usage(prefix=f"{PREFIX}tenant:tenant={tenant}:")
            assert CAP * 0.9 < u.spent_usd <= CAP  # refused only when nearly full
            assert u.reserved_usd_n == 0
        spent = sum(u.spent_usd for u in ledger.usage(prefix=f"{PREFIX}tenant:tenant="))
        assert spent == pytest.approx(sum(r[2] for r in results), abs=1e-8 * WORKERS * CALLS)
        # the tenants' keys are on different masters: the cluster spreads them
        client = ledger._client
        stored = [
            k.decode()
            for t in tenants
            for k in client.scan_iter(match="{*}" + f"{PREFIX}tenant:tenant={t}:*")
        ]
        assert len({client.get_node_from_key(k).name for k in stored}) == 2
    finally:
        ledger.close()


def test_one_reservation_spans_tenant_conversation_and_trip_keys(cluster_url: str) -> None:
    uri = _sharded(cluster_url)
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    budgets = [
        {"scope": "tenant", "key": "tenant", "max_usd": 1, "trip": True},
        {"scope": "conversation", "period": "total", "max_usd": 0.001},
    ]
    guard = Guard(_workers.money_policy(ledger=uri, budgets=budgets))
    meta = {"tenant": tenant, "thread_id": f"th-{tenant}"}
    _workers.call(
        guard, "a", meta
    )  # tenant, conversation and their trip keys: one slot, one script
    with pytest.raises(LoopGuardAbort) as over:
        # the conversation's $0.001 cannot take it
        _workers.call(guard, "b", meta, max_tokens=4000)
    assert over.value.verdict.evidence["key"].startswith(f"{PREFIX}conversation:")
    ledger = open_ledger(uri)
    try:
        keys = sorted(u.key for u in ledger.usage(prefix=PREFIX) if tenant in u.key)
    finally:
        ledger.close()
    assert keys[0] == f"{PREFIX}conversation:thread_id=th-{tenant}:total"
    assert keys[1].startswith(f"{PREFIX}tenant:tenant={tenant}:day=")
    # a tenant trip set from the command line refuses the tenant's next call
    args = ["budget", "trip", "--ledger", uri, "--tenant", tenant, "--label", "tenant"]
    assert main([*args, "--reason", "fraud"]) == 0
    with pytest.raises(LoopGuardAbort, match="fraud"):
        _workers.call(guard, "c", {"tenant": tenant})
    assert main(["budget", "untrip", "--ledger", uri, "--tenant", tenant, "--label", "tenant"]) == 0
    _workers.call(guard, "d", {"tenant": tenant})


def test_a_sharded_cluster_refuses_what_it_cannot_keep(
    cluster_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "loopguard.toml"
    policy.write_text(
        f'ledger = "{_sharded(cluster_url)}"\n[[budgets]]\nscope = "global"\nmax_usd = 1\n'
    )
    assert main(["policy", "check", str(policy)]) == 1
    assert "sharded by 'tenant'" in capsys.readouterr().err
    # agent trips need every tenant's slot: refused, with the way out
    assert main(["budget", "trip", "--ledger", _sharded(cluster_url), "--agent", "a"]) == 2
    assert "drop ?shard=" in capsys.readouterr().err


def test_an_unsharded_cluster_keeps_every_budget_in_one_slot(cluster_url: str) -> None:
    budgets = [{"scope": "global", "max_usd": 1}, {"scope": "agent", "max_usd": 1}]
    guard = Guard(_workers.money_policy(ledger=cluster_url, budgets=budgets))
    _workers.call(guard, "r", {})
    assert main(["budget", "trip", "--ledger", cluster_url, "--agent", "x", "--reason", "r"]) == 0
    assert main(["budget", "untrip", "--ledger", cluster_url, "--agent", "x"]) == 0


def test_a_cluster_that_cannot_be_reached_follows_on_ledger_error() -> None:
    from tests.ledger.conftest import free_port

    uri = f"redis+cluster://127.0.0.1:{free_port()}/0"  # nothing listens there
    budgets = [{"scope": "global", "max_usd": 1}]
    closed = Guard(_workers.money_policy(ledger=uri, budgets=budgets))
    with pytest.raises(LoopGuardAbort) as info:
        _workers.call(closed, "r", {})
    assert info.value.verdict.evidence["limit"] == "ledger"
    opened = Guard(_workers.money_policy(ledger=uri, on_ledger_error="open", budgets=budgets))
    _workers.call(opened, "r", {})  # counted in this process; the spend is kept to replay
