"""Policies for tests and benchmarks that measure one part of the guard alone."""

from __future__ import annotations

from typing import Any

from loopguard.detectors import RUNAWAY
from loopguard.policy import Policy


def money_policy(**money: Any) -> Policy:
    """Only the money check: the runaway detectors are off and there is no call cap, so every
    refusal is the budget's. `money` are top-level policy keys (`ledger`, `budgets`, ...)."""
    off = {name: {"enabled": False} for name in RUNAWAY}
    return Policy.model_validate({**off, "max_model_calls": None, **money})
