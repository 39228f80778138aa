"""How soon `loopguard demo` shows something, beside what any Python program needs to start.

    python benchmarks/cli_startup.py [--runs 7]

Starts each command in a fresh interpreter and times, from the spawn, its first line on stdout
(the demo prints one before it imports LangChain and boto3). Baselines in the same run: an
interpreter that prints and exits, and one that imports `loopguard` (the engine) and prints.
Medians and the slowest run, in milliseconds; the machine's load changes them, so compare rows
of one run, not runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

PRINT = "print('x', flush=True)"
ROWS = (
    ("python: print a line (floor)", [sys.executable, "-c", PRINT]),
    ("python: import loopguard, print", [sys.executable, "-c", "import loopguard; " + PRINT]),
    (
        "loopguard demo: first line",
        [sys.executable, "-m", "loopguard", "demo", "--no-live", "--traces", "t.json"],
    ),
)


def first_line(cmd: list[str], cwd: str) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd)
    assert proc.stdout is not None
    proc.stdout.readline()
    took = time.perf_counter() - started
    proc.kill()
    proc.wait()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        times = {label: [first_line(cmd, cwd) for _ in range(args.runs)] for label, cmd in ROWS}
    print(f"{'command':<36} {'median ms':>10} {'slowest ms':>11}")
    for label, runs in times.items():
        print(f"{label:<36} {statistics.median(runs) * 1000:>10.0f} {max(runs) * 1000:>11.0f}")
    with open("/proc/loadavg") as f:
        print(f"(load average at the end: {f.read().split()[0]}, {args.runs} runs each)")


if __name__ == "__main__":
    main()
