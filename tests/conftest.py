"""Shared test helpers.

In CI (CI=true) a missing optional dependency or service is a failure, not a skip: the Redis and
OpenTelemetry tests must really run there.
"""

from __future__ import annotations

import importlib
import os
import shutil
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(
    module: str | None = None,
    *,
    binary: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Import `module` (and/or find `binary` on PATH, and/or see that `path` exists), skipping
    locally and failing in CI."""
    if binary is not None and shutil.which(binary) is None:
        _missing(f"the {binary!r} program is not on PATH")
    if path is not None and not os.path.exists(path):
        _missing(f"{path} does not exist")
    if module is None:
        return None
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        _missing(f"cannot import {module!r}: {exc}")


def _missing(why: str) -> None:
    if IN_CI:
        pytest.fail(f"required in CI: {why}", pytrace=False)
    # Module level too: a test module that needs an optional dependency calls require() at its
    # top, and skips (locally) or fails (in CI) as a whole.
    pytest.skip(why, allow_module_level=True)


def _skip_fails_in_ci(report: pytest.CollectReport | pytest.TestReport) -> None:
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true), which counts as a failure: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    """In CI no test may be skipped, whatever the reason: a skip there hides a missing piece."""
    outcome = yield
    _skip_fails_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """The same for a whole module skipped while it is collected (`pytest.importorskip` or
    `pytest.skip(allow_module_level=True)` at its top), which no test report ever shows."""
    outcome = yield
    _skip_fails_in_ci(outcome.get_result())
