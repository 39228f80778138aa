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
    pytest.skip(why)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    """In CI no test may be skipped, whatever the reason: a skip there hides a missing piece."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI (CI=true), which counts as a failure: {reason}"
