"""benchmarks/loop_block.py --quick runs and prints its table (its timings are not asserted:
they are the benchmark's to report, and a loaded test machine moves them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import require

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "loop_block.py"
ROWS = ("no loopguard", "redis healthy", "redis paused", "redis killed", "sqlite locked")


def test_loop_block_quick_prints_every_row_and_counts_spend_once() -> None:
    require("redis", binary="redis-server")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=SCRIPT.parents[1],
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: a lag out of bounds, reported
    lines = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines()}
    for row in ROWS:
        assert row in lines, done.stdout
    # spend ok (the last column) is about counting, not time: exact in every ledger row
    assert all(lines[row].split()[-1] == "yes" for row in ROWS[1:]), done.stdout
    assert "The claim" in done.stdout
