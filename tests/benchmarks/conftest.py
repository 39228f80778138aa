"""The real-data converters' tests read the public data sets from ../shared/data beside the
repository (CI has them there: a missing data set fails in CI, and is skipped elsewhere)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _realdata import DATA, RealRun

from tests.conftest import require


def _load(name: str, module: str) -> list[RealRun]:
    require(path=DATA / name)
    return __import__(module).load()


@pytest.fixture(scope="session")
def tau_runs() -> list[RealRun]:
    return _load("tau-bench", "tau_bench")


@pytest.fixture(scope="session")
def ww_runs() -> list[RealRun]:
    return _load("who-and-when", "who_and_when")
