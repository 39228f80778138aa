"""SQLite opens a file it cannot write read-only, and such a connection stays read-only: the
ledger must reconnect once the file is writable again, in both on_ledger_error modes.

Tests run as root, who ignores permission bits, so the file is made read-only for real with the
immutable attribute (`chattr +i`), which binds root too."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopguard import Guard, LoopGuardAbort
from loopguard.events import Message, ModelEnd, ModelStart, Usage
from loopguard.ledger import Claim, open_ledger
from loopguard.ledger.spec import PREFIX
from tests.conftest import require
from tests.ledger._workers import MODEL, money_policy


class Immutable:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        subprocess.run(["chattr", "+i", str(self.path)], check=True, capture_output=True)

    def __exit__(self, *_: object) -> None:
        subprocess.run(["chattr", "-i", str(self.path)], check=True, capture_output=True)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    require(binary="chattr")
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    open_ledger(f"sqlite:///{path}").settle("init", [Claim(f"{PREFIX}init", 0, 0)])
    probe = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if probe.returncode != 0:
        require(binary=f"chattr +i working here ({probe.stderr.strip()})")
    subprocess.run(["chattr", "-i", str(path)], check=True)
    yield path
    subprocess.run(["chattr", "-i", str(path)], capture_output=True)


def _call(guard: Guard, run: str) -> None:
    guard.process(
        ModelStart(run=run, model=MODEL, messages=[Message("user", "hi")], max_tokens=100, id=run)
    )
    guard.process(ModelEnd(run=run, model=MODEL, usage=Usage(10, 50), id=run))


def _spent_n(path: Path) -> int:
    ledger = open_ledger(f"sqlite:///{path}")
    try:
        return sum(u.spent_usd_n for u in ledger.usage(prefix=f"{PREFIX}global"))
    finally:
        ledger.close()


def test_closed_refuses_while_read_only_then_recovers(db: Path) -> None:
    guard = Guard(money_policy(ledger=f"sqlite:///{db}", budgets=[{"max_usd": 1}]))
    with Immutable(db):  # the guard's first connection is opened now: read-only
        with pytest.raises(LoopGuardAbort, match="readonly"):
            _call(guard, "during")
    _call(guard, "after")  # writable again: the ledger reconnects
    assert _spent_n(db) > 0


def test_open_counts_locally_while_read_only_then_writes_the_spend(db: Path) -> None:
    policy = money_policy(
        ledger=f"sqlite:///{db}", on_ledger_error="open", budgets=[{"max_usd": 1}]
    )
    guard = Guard(policy)
    with Immutable(db):
        _call(guard, "during")  # counted locally, kept to replay
    assert _spent_n(db) == 0
    _call(guard, "after")  # replays the outage's spend, then adds its own
    one = guard.get_run("after").cost_usd
    assert _spent_n(db) == round(2 * one * 1e9)
