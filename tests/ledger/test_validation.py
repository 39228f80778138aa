"""A budget that cannot work must not pass for one: rejected when the policy loads, and at run
time a budget that cannot be checked follows on_ledger_error (closed refuses), never skipped."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from loopguard import Guard, LoopGuardAbort
from loopguard.cli import main
from loopguard.events import Message, ModelEnd, ModelStart, Usage
from tests.ledger._workers import MODEL, money_policy
from tests.ledger.conftest import free_port

PORT = free_port()  # nothing listens there: a URI that parsed wrongly must not reach a server
BAD_LEDGERS = [
    ("sqlite:///", "no database file"),
    ("sqlite://h/x.db", "has no host"),
    ("redis://127.0.0.1:99999/0", "port is not a number from 1 to 65535"),
    ("redis://127.0.0.1:six/0", "port is not a number from 1 to 65535"),
    (f"redis://127.0.0.1:{PORT}/zero", "database 'zero' is not a number"),
    (f"redis://127.0.0.1:{PORT}/0?socket_timeout=soon", "socket_timeout"),
]


IDS = ["no-file", "host", "port-range", "port-text", "db-text", "option"]


@pytest.mark.parametrize(("uri", "why"), BAD_LEDGERS, ids=IDS)
def test_policy_check_rejects_a_ledger_that_cannot_open(
    uri: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "loopguard.toml"
    path.write_text(f'ledger = "{uri}"\n[[budgets]]\nmax_usd = 1\n')
    assert main(["policy", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:1: ledger:" in err and why in err and "write " in err


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("max_usd = inf", "finite number"),
        ("max_usd = nan", "finite number"),
        ("max_usd = 100000000000000000000", "at most 9,000,000 dollars"),
        ("max_tokens = 9223372036854775807", "at most 1,000,000,000,000,000 tokens"),
        ("max_usd = true", "valid number"),
    ],
)
def test_policy_check_rejects_a_limit_no_ledger_can_hold(
    value: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "loopguard.toml"
    path.write_text(f'ledger = "memory://"\n[[budgets]]\nscope = "global"\n{value}\n')
    assert main(["policy", "check", str(path)]) == 1
    err = capsys.readouterr().err
    key = value.split(" ")[0]
    assert f"budgets.0.{key}" in err and why in err


def test_huge_integers_from_yaml_are_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "loopguard.yaml"
    path.write_text("budgets:\n  - max_usd: 1\n    max_tokens: " + "9" * 40 + "\n")
    assert main(["policy", "check", str(path)]) == 1
    assert "budgets.0.max_tokens" in capsys.readouterr().err


def _calls_through(guard: Guard, n: int, refused_by: str) -> int:
    went = 0
    for i in range(n):
        try:
            guard.process(
                ModelStart(
                    run=f"r{i}",
                    model=MODEL,
                    messages=[Message("user", "hi")],
                    max_tokens=100,
                    id=f"c{i}",
                )
            )
        except LoopGuardAbort as stop:
            assert stop.verdict.evidence["limit"] == refused_by
            continue
        guard.process(ModelEnd(run=f"r{i}", model=MODEL, usage=Usage(10, 50), id=f"c{i}"))
        went += 1
    return went


@pytest.mark.parametrize("uri", [u for u, _ in BAD_LEDGERS], ids=IDS)
def test_a_budget_that_cannot_be_checked_is_never_skipped(uri: str) -> None:
    # model_copy(update=...) skips validation, as any path around the loader might
    base = money_policy(budgets=[{"max_usd": 0.001}])  # fits about one call
    closed = base.model_copy(update={"ledger": uri})
    assert _calls_through(Guard(closed), 5, "ledger") == 0  # refused: the budget cannot be checked

    # "open" counts in this process only, so the budget still holds
    opened = base.model_copy(update={"ledger": uri + "#" + uuid.uuid4().hex})
    opened = opened.model_copy(update={"on_ledger_error": "open"})
    assert _calls_through(Guard(opened), 5, "budget.max_usd") < 5
