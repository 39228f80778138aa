"""`loopguard budget show|reset` against real ledgers."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from loopguard.cli import main
from loopguard.ledger import Claim, open_ledger
from loopguard.ledger.spec import PREFIX
from tests.ledger.conftest import free_port, redis_url  # noqa: F401 - the redis-server fixture


@pytest.fixture(params=["sqlite", "redis"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/cli.db"
    return request.getfixturevalue("redis_url")


def test_show_and_reset(uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    tag = uuid.uuid4().hex[:8]
    ledger = open_ledger(uri)
    ledger.settle("r1", [Claim(f"{PREFIX}tenant={tag}:day=2026-11-29", 1_500_000_000, 1234)])
    ledger.reserve("r2", [Claim(f"{PREFIX}tenant={tag}:day=2026-11-29", 250_000_000, 10)], 60)
    ledger.close()

    assert main(["budget", "show", "--ledger", uri, f"tenant={tag}", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["budgets"]
    assert row == {
        "key": f"{PREFIX}tenant={tag}:day=2026-11-29",
        "spent_usd": 1.5,
        "reserved_usd": 0.25,
        "spent_tokens": 1234,
        "reserved_tokens": 10,
        "reservations": 1,
    }

    assert main(["budget", "show", "--ledger", uri, f"tenant={tag}"]) == 0
    assert "1.500000" in capsys.readouterr().out

    assert main(["budget", "reset", "--ledger", uri, f"tenant={tag}"]) == 0
    assert "reset 1 budget key" in capsys.readouterr().out
    assert main(["budget", "show", "--ledger", uri, f"tenant={tag}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["budgets"] == []


def test_reset_everything_needs_yes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    open_ledger(f"sqlite:///{tmp_path}/x.db").close()
    assert main(["budget", "reset", "--ledger", f"sqlite:///{tmp_path}/x.db"]) == 2
    assert "--yes" in capsys.readouterr().err


def test_memory_ledger_is_refused_with_advice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["budget", "show", "--ledger", "memory://"]) == 2
    assert "lives inside one process" in capsys.readouterr().err


def test_unreachable_ledger(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["budget", "show", "--ledger", f"redis://127.0.0.1:{free_port()}/0"]) == 1
    assert "unreachable" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["show", "reset", "trip", "untrip"])
def test_a_ledger_file_that_does_not_exist_is_reported_not_created(
    action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "typo.db"
    extra = {"show": [], "reset": ["--yes"], "trip": ["--agent", "a"], "untrip": ["--agent", "a"]}
    assert main(["budget", action, "--ledger", f"sqlite:///{path}", *extra[action]]) == 2
    assert "no such ledger file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing created, not even a journal


def test_trip_show_and_untrip(uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    open_ledger(uri).close()
    agent = f"agent-{uuid.uuid4().hex[:6]}"
    assert main(["budget", "trip", "--ledger", uri, "--agent", agent, "--reason", "runaway"]) == 0
    assert f"tripped agent={agent}" in capsys.readouterr().out
    assert main(["budget", "show", "--ledger", uri, "--json"]) == 0
    trips = json.loads(capsys.readouterr().out)["trips"]
    (mine,) = [t for t in trips if t["key"] == f"loopguard:trip:agent={agent}"]
    assert (mine["reason"], mine["auto"], mine["until"]) == ("runaway", False, None)
    assert main(["budget", "show", "--ledger", uri]) == 0
    assert "runaway" in capsys.readouterr().out
    assert main(["budget", "untrip", "--ledger", uri, "--agent", agent]) == 0
    assert main(["budget", "untrip", "--ledger", uri, "--agent", agent]) == 1  # nothing left


def test_a_tenant_trip_takes_its_label_from_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "b.db"
    open_ledger(f"sqlite:///{db}").close()
    policy = tmp_path / "loopguard.toml"
    policy.write_text(
        f'ledger = "sqlite:///{db}"\n[[budgets]]\nscope = "tenant"\nkey = "org"\nmax_usd = 1\n'
    )
    assert main(["budget", "trip", "--policy", str(policy), "--tenant", "acme", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["key"] == "loopguard:trip:tenant:org=acme"
    # without a policy naming the label, the command asks for it
    assert main(["budget", "trip", "--ledger", f"sqlite:///{db}", "--tenant", "acme"]) == 2
    assert "--label" in capsys.readouterr().err
