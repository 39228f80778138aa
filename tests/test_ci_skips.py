"""The suite's own rules, checked on scratch test files run by a real pytest in a subprocess:
in CI (CI=true) every kind of skip fails the run, and warnings are errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SKIPS = {
    "test_module_importorskip.py": """
        import pytest
        pytest.importorskip("loopguard_no_such_module")

        def test_never_collected():
            pass
    """,
    "test_module_require.py": """
        from tests.conftest import require
        require("loopguard_no_such_module")

        def test_never_collected():
            pass
    """,
    "test_module_skip.py": """
        import pytest
        pytest.skip("not here", allow_module_level=True)
    """,
    "test_run_time.py": """
        import pytest
        from tests.conftest import require

        def test_skips_while_running():
            pytest.skip("not now")

        @pytest.mark.skip(reason="marked")
        def test_marked():
            pass

        def test_requires():
            require(binary="loopguard-no-such-program")

        @pytest.fixture
        def missing():
            pytest.skip("in a fixture")

        def test_fixture_skips(missing):
            pass

        @pytest.mark.xfail(reason="expected")
        def test_expected_failure():
            assert False

        def test_passes():
            pass
    """,
}


def run_pytest(tmp_path: Path, files: dict[str, str], *args: str, ci: bool) -> tuple[int, str]:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "true" if ci else ""}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def test_every_skip_fails_in_ci(tmp_path: Path) -> None:
    # The project's hooks as a plugin: the scratch files live outside tests/.
    code, out = run_pytest(
        tmp_path, SKIPS, "-p", "tests.conftest", "--continue-on-collection-errors", ci=True
    )
    assert code == 1, out
    summary = out.split("short test summary")[1]
    for name in ("test_module_importorskip.py", "test_module_require.py", "test_module_skip.py"):
        assert f"ERROR {name} - " in summary, out
    # A skip while setting up reads as an error, one while running as a failure: neither passes.
    for test in ("test_marked", "test_fixture_skips", "test_skips_while_running", "test_requires"):
        assert f"test_run_time.py::{test} - " in summary, out
    assert "2 failed, 1 passed, 1 xfailed, 5 errors" in summary, out
    assert "skipped in CI (CI=true), which counts as a failure: " in out, out
    assert "SKIPPED" not in summary, out


def test_skips_stay_skips_outside_ci(tmp_path: Path) -> None:
    code, out = run_pytest(tmp_path, SKIPS, "-p", "tests.conftest", ci=False)
    assert code == 0, out
    assert "1 passed, 7 skipped, 1 xfailed" in out, out


def test_warnings_are_errors(tmp_path: Path) -> None:
    files = {
        "test_warns.py": """
            import warnings

            def test_warns():
                warnings.warn("a warning nobody looked at", UserWarning)

            def test_quiet():
                pass
        """
    }
    code, out = run_pytest(tmp_path, files, "-c", str(ROOT / "pyproject.toml"), ci=False)
    assert code == 1, out
    assert "FAILED" in out and "test_warns.py::test_warns" in out, out
    assert "UserWarning: a warning nobody looked at" in out, out
    assert "1 failed, 1 passed" in out, out
