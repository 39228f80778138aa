"""A budget that cannot work must not pass for one: rejected when the policy loads, and at run
time a budget that cannot be checked follows on_ledger_error (closed refuses), never skipped."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from loopguard import ConfigError, Guard, LoopGuardAbort, Policy
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


def _check_fails(path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`loopguard policy check` on `text` written to `path`: exit 1, and its error output."""
    path.write_text(text)
    assert main(["policy", "check", str(path)]) == 1
    return capsys.readouterr().err


@pytest.mark.parametrize(("uri", "why"), BAD_LEDGERS, ids=IDS)
def test_policy_check_rejects_a_ledger_that_cannot_open(
    uri: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "loopguard.toml"
    err = _check_fails(path, f'ledger = "{uri}"\n[[budgets]]\nmax_usd = 1\n', capsys)
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
    text = f'ledger = "memory://"\n[[budgets]]\nscope = "global"\n{value}\n'
    err = _check_fails(tmp_path / "loopguard.toml", text, capsys)
    key = value.split(" ")[0]
    assert f"budgets.0.{key}" in err and why in err


def test_huge_integers_from_yaml_are_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "budgets:\n  - max_usd: 1\n    max_tokens: " + "9" * 40 + "\n"
    assert "budgets.0.max_tokens" in _check_fails(tmp_path / "loopguard.yaml", text, capsys)


# The policy's own money numbers, as TOML (which has inf and nan): (text, line, key path).
NON_FINITE = [
    ("max_cost_usd = inf\n", 1, "max_cost_usd"),
    ("max_cost_usd = 2\nwarn_cost_usd = nan\n", 2, "warn_cost_usd"),
    ("reservation_ttl = inf\n", 1, "reservation_ttl"),
    ('[prices."my-model"]\ninput = 1.0\noutput = inf\n', 3, "prices.my-model.output"),
    ("[fallback_price]\ninput = nan\noutput = 1.0\n", 2, "fallback_price.input"),
    (
        "[fallback_price]\ninput = 1.0\noutput = 1.0\nregional_multiplier = inf\n",
        4,
        "fallback_price.regional_multiplier",
    ),
    (
        "[fallback_price]\ninput = 1.0\noutput = 1.0\n"
        "[fallback_price.long_context]\nabove_input_tokens = 200000\ninput = 2.0\noutput = -inf\n",
        7,
        "fallback_price.long_context.output",
    ),
]


@pytest.mark.parametrize(("text", "line", "key"), NON_FINITE, ids=[k for _, _, k in NON_FINITE])
def test_policy_check_rejects_a_money_number_that_is_not_finite(
    text: str, line: int, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "loopguard.toml"
    err = _check_fails(path, text, capsys)
    assert f"{path}:{line}: {key}: input should be a finite number" in err


def test_yaml_infinities_are_rejected_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "loopguard.yaml"
    text = "max_cost_usd: .inf\nreservation_ttl: 1.0e+999\n"  # the second overflows to inf
    err = _check_fails(path, text, capsys)
    assert f"{path}:1: max_cost_usd: input should be a finite number" in err
    assert f"{path}:2: reservation_ttl: input should be a finite number" in err


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"max_cost_usd": float("inf")}, "max_cost_usd"),
        ({"warn_cost_usd": float("nan")}, "warn_cost_usd"),
        ({"reservation_ttl": float("inf")}, "reservation_ttl"),
        ({"prices": {"m": {"input": float("inf"), "output": 1.0}}}, "prices.m.input"),
        ({"fallback_price": {"input": 1.0, "output": float("nan")}}, "fallback_price.output"),
    ],
)
def test_policy_rejects_a_money_number_that_is_not_finite(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"Policy\(\.\.\.\): {re.escape(key)}: .*finite"):
        Policy(**kwargs)


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
