"""`loopguard calibrate FILE... [--agent NAME] [--false-stop-rate 0.05] [--limits ...]
[--policy PATH] [-o policy.toml] [--json]`: hard limits from recordings of your own good runs.

Prints the proposed policy (TOML, with the bound it guarantees in comments) or, with --json,
one JSON object per agent: {agent, runs, false_stop_rate, bound, rank, limits, skipped}. With
-o the policy is written to that file, which `loopguard replay --policy` and the handler load
as they are.

Exit status: 0 when limits were proposed; 2 for usage and input errors, among them a corrupt
line (a calibration must see every run) and too few good runs for the rate asked for.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from loopguard.cli._common import (
    STDIO,
    UserError,
    add_json_option,
    add_policy_option,
    write_output,
)


def register(subparsers: Any) -> None:
    from loopguard.calibrate import LIMITS

    parser = subparsers.add_parser(
        "calibrate",
        help="propose hard limits from recordings of good runs",
        description="Propose per-agent hard limits (model calls, tool calls, tokens, dollars, "
        "seconds) from flight recordings of good runs, with a bound on the rate at which they "
        "would stop a new good run (conformal, the limits counted jointly; needs at least "
        "limits/rate - 1 runs).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="JSONL recordings ('-': stdin)")
    parser.add_argument("--agent", help="calibrate only this agent (default: every agent)")
    parser.add_argument(
        "--false-stop-rate",
        type=float,
        default=0.05,
        metavar="RATE",
        help="the most a new good run may be stopped by the limits, all of them together "
        "(default 0.05)",
    )
    parser.add_argument(
        "--limits",
        default=",".join(LIMITS),
        metavar="NAMES",
        help=f"comma-separated limits to set (default: {','.join(LIMITS)}); fewer limits "
        "need fewer runs",
    )
    add_policy_option(parser, "policy whose prices and output estimate the dollar limit uses")
    parser.add_argument(
        "-o", "--output", metavar="PATH", help="write the policy file here ('-': stdout)"
    )
    add_json_option(parser, "one JSON object per agent")
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
    from loopguard.cli._recordings import events_of, line_errors, load_policies

    names = [n.strip() for n in args.limits.split(",") if n.strip()]
    unknown = [n for n in names if n not in LIMITS]
    if unknown or not names:
        raise UserError(
            f"unknown limit {', '.join(unknown) or '(none)'}; accepted: {', '.join(LIMITS)}"
        )
    if not 0 < args.false_stop_rate < 1:
        raise UserError(f"--false-stop-rate must be between 0 and 1, got {args.false_stop_rate:g}")
    policies = load_policies(args, "calibrate")
    errors, on_error = line_errors()
    measures = measure(events_of(args.files, on_error), policies)
    if errors:
        errors.report_repeats()
        raise UserError(
            f"{len(errors)} corrupt line{'s' if len(errors) > 1 else ''}; a calibration must "
            "see every run, so nothing was proposed"
        )
    wanted = [args.agent] if args.agent is not None else agents(measures)
    if not wanted:
        raise UserError("no recorded run ended ok; nothing to calibrate from")
    try:
        results = [calibrate(measures, args.false_stop_rate, agent=a, limits=names) for a in wanted]
    except CalibrationError as exc:
        raise UserError(str(exc)) from None
    text = policy_toml(results, ["stdin" if p == STDIO else p for p in args.files])
    if args.output:
        write_output(args.output, text)
    if args.json:
        for result in results:
            print(json.dumps(result.to_dict(), ensure_ascii=False))
    elif args.output and args.output != STDIO:
        for result in results:
            who = "(no agent)" if result.agent is None else result.agent
            print(
                f"{who}: {result.runs} runs, false stop rate <= {result.bound:.3g} (these runs "
                f"support down to {result.supported_text}): "
                + ", ".join(f"{k} = {v!r}" for k, v in result.limits.items())
            )
        print(f"wrote {args.output}")
    elif not args.output:
        print(text, end="")
    return 0
