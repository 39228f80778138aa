"""`loopguard calibrate FILE... [--agent NAME] [--false-stop-rate 0.05] [--limits ...]
[-o policy.toml] [--json]`: hard limits from recordings of your own good runs.

Prints the proposed policy (TOML, with the bound it guarantees in comments) or, with --json,
one JSON object per agent: {agent, runs, false_stop_rate, bound, rank, limits, skipped}. With
-o the policy is written to that file, which `loopguard replay --policy` and the handler load
as they are.

Exit status: 0 when limits were proposed; 2 for usage and input errors: a missing file, a
corrupt line (a calibration must see every run), too few good runs for the rate asked for.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

STDIN = "-"


def register(subparsers: Any) -> None:
    from loopguard.calibrate import LIMITS

    parser = subparsers.add_parser(
        "calibrate",
        help="propose hard limits from recordings of good runs",
        description="Propose per-agent hard limits (model calls, tool calls, tokens, dollars, "
        "seconds) from flight recordings of good runs, with a bound on the rate at which they "
        "would stop a new good run (split-conformal; needs at least limits/rate - 1 runs).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="JSONL recordings ('-': stdin)")
    parser.add_argument("--agent", help="calibrate only this agent (default: every agent)")
    parser.add_argument(
        "--false-stop-rate",
        type=float,
        default=0.05,
        metavar="RATE",
        help="the most a new good run may be stopped by the limits, over all of them "
        "(default 0.05)",
    )
    parser.add_argument(
        "--limits",
        default=",".join(LIMITS),
        metavar="NAMES",
        help=f"comma-separated limits to set (default: {','.join(LIMITS)}); fewer limits "
        "need fewer runs",
    )
    parser.add_argument("-o", "--output", metavar="PATH", help="write the policy file here")
    parser.add_argument("--json", action="store_true", help="one JSON object per agent on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from loopguard.calibrate import (
        LIMITS,
        CalibrationError,
        agents,
        calibrate,
        measure,
        policy_toml,
    )
    from loopguard.replay import LineError, read_events

    names = [n.strip() for n in args.limits.split(",") if n.strip()]
    unknown = [n for n in names if n not in LIMITS]
    if unknown or not names:
        return _fail(
            f"unknown limit {', '.join(unknown) or '(none)'}; accepted: {', '.join(LIMITS)}"
        )
    if not 0 < args.false_stop_rate < 1:
        return _fail(f"--false-stop-rate must be between 0 and 1, got {args.false_stop_rate:g}")
    if args.files.count(STDIN) > 1:
        return _fail("stdin ('-') can be read only once")
    for path in args.files:
        if path != STDIN and not Path(path).is_file():
            return _fail(f"{path}: no such file")
    errors: list[LineError] = []

    def events() -> Any:
        for path in args.files:
            # /dev/stdin: the reader takes a path, and stdin is one on every POSIX system.
            yield from read_events("/dev/stdin" if path == STDIN else path, on_error=errors.append)

    measures = measure(events())
    if errors:
        for error in errors[:10]:
            print(str(error), file=sys.stderr)
        more = f" ({len(errors) - 10} more)" if len(errors) > 10 else ""
        return _fail(
            f"{len(errors)} corrupt lines{more}; a calibration must see every run, so nothing "
            "was proposed"
        )
    wanted = [args.agent] if args.agent is not None else agents(measures)
    if not wanted:
        return _fail("no recorded run ended ok; nothing to calibrate from")
    try:
        results = [calibrate(measures, args.false_stop_rate, agent=a, limits=names) for a in wanted]
    except CalibrationError as exc:
        return _fail(str(exc))
    text = policy_toml(results, [Path(p).name if p != STDIN else "stdin" for p in args.files])
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            return _fail(f"cannot write {args.output}: {exc.strerror or exc}")
    if args.json:
        for result in results:
            print(json.dumps(result.to_dict(), ensure_ascii=False))
    elif args.output:
        for result in results:
            who = "(no agent)" if result.agent is None else result.agent
            print(
                f"{who}: {result.runs} runs, false stop rate <= {result.bound:.3g}: "
                + ", ".join(f"{k} = {v!r}" for k, v in result.limits.items())
            )
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _fail(message: str) -> int:
    print(f"loopguard calibrate: {message}", file=sys.stderr)
    return 2
