"""`loopguard replay FILE... [--policy PATH] [--json] [--fail-on stop|warn] [--strict]`:
recorded runs, offline (`-` reads stdin).

Prints one line per run and a summary (with --json, one JSON object per run: run, agent, action,
detector, reason, step, cost_usd). A corrupt line is reported on stderr as FILE:LINE: reason and
skipped (each distinct reason once per file, then counted); the other events still replay (with
--strict the replay stops there instead).

Exit status: 0 when every line was read (and, with --fail-on, no run was stopped or warned);
1 when corrupt lines were seen or a run met --fail-on; 2 for usage and input errors (a missing
file, a directory, a policy that does not load).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from loopguard.cli._common import (
    EXIT_FINDINGS,
    EXIT_OK,
    add_json_option,
    add_policy_option,
    print_table,
    quiet_logs,
)
from loopguard.cli._recordings import LineErrors, events_of, line_errors, load_policies
from loopguard.replay import LineError, Replayer, RunResult, total_bytes

FAIL_ON = {"stop": ("abort",), "warn": ("abort", "warn")}
"""--fail-on: which run outcomes make the exit status 1."""


class _Strict(Exception):
    pass


def _stop() -> None:
    raise _Strict


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="run recorded events (JSONL) through the guard offline",
        description="Replay flight-recorder files (JSON Lines, format v1 or v2) through the guard "
        "under a policy and report what it would do to each run.",
    )
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="JSONL recordings ('-' reads stdin)"
    )
    add_policy_option(parser)
    add_json_option(parser, "one JSON object per run")
    parser.add_argument(
        "--fail-on",
        choices=sorted(FAIL_ON),
        help="exit with status 1 when a run would be stopped (stop), or stopped or warned "
        "(warn): for CI",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first corrupt line instead of skipping it",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also log every warning and stop as the guard gives it",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    policies = load_policies(args, "replay")
    errors, on_error = line_errors(_stop if args.strict else None)

    # The verdicts are the output; the guard's own log of them would bury it (and the bar).
    with quiet_logs(verbose=args.verbose):
        return _replay(args, policies, errors, on_error)


def _replay(
    args: argparse.Namespace,
    policies: Any,
    errors: LineErrors,
    on_error: Callable[[LineError], None],
) -> int:
    from loopguard.guard import Guard

    guard = Guard(policies)
    replayer = Replayer(guard)
    with _progress(total_bytes(args.files)) as advance:
        try:
            for event in events_of(args.files, on_error, advance):
                replayer.feed(event)
        except _Strict:
            print("loopguard replay: stopped at the first corrupt line (--strict)", file=sys.stderr)
            return EXIT_FINDINGS
    results = replayer.finish()
    if args.json:
        for result in results:
            print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        _print_results(results, replayer, errors)
    errors.report_repeats()
    if guard.internal_errors and not args.verbose:
        print(
            f"loopguard replay: {guard.internal_errors} internal errors in the guard were "
            "skipped (fail open); --verbose shows them",
            file=sys.stderr,
        )
    failing = FAIL_ON.get(args.fail_on or "", ())
    failed = [r for r in results if r.action in failing]
    if failed:
        print(
            f"loopguard replay: {len(failed)} of {len(results)} runs would be "
            f"{'stopped' if args.fail_on == 'stop' else 'stopped or warned'} (--fail-on "
            f"{args.fail_on})",
            file=sys.stderr,
        )
    return EXIT_FINDINGS if errors or failed else EXIT_OK


def _print_results(results: list[RunResult], replayer: Replayer, errors: list[LineError]) -> None:
    rows = [
        (
            r.run,
            r.agent or "-",
            r.action,
            r.detector or "-",
            str(r.step),
            f"{r.cost_usd:.4f}",
            r.reason or "",
        )
        for r in results
    ]
    print_table(("run", "agent", "action", "detector", "step", "cost_usd", "reason"), rows)
    counts = {a: sum(1 for r in results if r.action == a) for a in ("abort", "warn", "ok")}
    print(
        f"\n{len(results):,} run{'' if len(results) == 1 else 's'}, {replayer.events:,} events: "
        f"{counts['abort']} stopped, "
        f"{counts['warn']} warned, {counts['ok']} ok"
        + (
            f"; {replayer.skipped:,} events after a stop skipped (they would not have happened)"
            if replayer.skipped
            else ""
        )
        + (f"; {len(errors):,} corrupt lines skipped" if errors else "")
    )


class _progress:
    """A rich progress bar over the bytes read, only when stderr is a terminal."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None] | None:
        if not sys.stderr.isatty():
            return None
        try:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TimeRemainingColumn
        except ImportError:
            return None
        # On stderr: stdout carries the results (--json output stays clean when piped).
        self._bar = Progress(
            "replaying",
            BarColumn(),
            "{task.percentage:>3.0f}%",
            TimeRemainingColumn(),
            transient=True,
            console=Console(stderr=True),
        )
        self._bar.start()
        task = self._bar.add_task("replay", total=self.total)
        pending = [0]

        def advance(n: int) -> None:
            pending[0] += n
            if pending[0] >= 1 << 16:  # redraw per 64 KiB, not per line
                self._bar.advance(task, pending[0])
                pending[0] = 0

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
