"""`loopguard export FILE.jsonl... --format jaeger -o traces.json`: recordings as Jaeger traces.

The recorded events go through a guard with the given policy, as they went through the live one,
and the span tree the OpenTelemetry sink builds is written in Jaeger's JSON format, which the
Jaeger UI's "Upload" tab opens. An abort under the policy shows as it would have live: the
refused call, ERROR status and the verdict's evidence, once. Span times are the recorded ones.
The service name is --service-name, else $OTEL_SERVICE_NAME, else "loopguard".

A corrupt line is reported on stderr as FILE:LINE: reason and skipped. Exit status: 0, or 1 when
corrupt lines were seen (the traces are still written), 2 for usage and input errors (a missing
file, an output that cannot be written, a policy that does not load).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

from loopguard.cli._common import (
    EXIT_FINDINGS,
    EXIT_OK,
    STDIO,
    add_policy_option,
    check_output,
    quiet_logs,
    write_output,
)
from loopguard.events import Event, RunEnd

FORMATS = ("jaeger",)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="write recordings (JSONL events) as Jaeger JSON traces",
        description="Turn flight recordings into traces the Jaeger UI opens (Search, then the "
        '"Upload" tab).',
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="JSONL recordings ('-' reads stdin)")
    p.add_argument(
        "--format", choices=FORMATS, default="jaeger", help="output format (default: jaeger)"
    )
    p.add_argument("-o", "--output", default=STDIO, help="output file (default: '-', stdout)")
    add_policy_option(p, "policy to judge the runs with")
    p.add_argument(
        "--service-name",
        default=None,
        help="the service name Jaeger shows (default: $OTEL_SERVICE_NAME, else loopguard)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also log every warning and stop as the guard gives it",
    )
    p.set_defaults(func=run)


def export_jaeger(
    events: Iterable[Event], policy: Any = None, service_name: str = "loopguard"
) -> dict[str, Any]:
    """The Jaeger JSON document for the recorded runs in `events`."""
    from loopguard.guard import Guard
    from loopguard.telemetry.jaeger import JaegerBackend, to_jaeger
    from loopguard.telemetry.tree import SpanTree, TreeSink
    from loopguard.verdict import LoopGuardAbort

    backend = JaegerBackend(max_traces=None)
    guard = Guard(policy, sinks=[TreeSink(SpanTree(backend))])
    # As in `loopguard replay`, a stopped run's later events are skipped (after a stop under
    # this policy they would not have happened, and the detectors would stop it again on each),
    # all but its recorded end, whose time ends the spans.
    unended: dict[str, float] = {}
    stopped: set[str] = set()
    for event in events:
        if type(event) is RunEnd:
            unended.pop(event.run, None)
        elif event.run in stopped:
            continue
        else:
            unended[event.run] = event.ts
        try:
            guard.process(event)
        except LoopGuardAbort:
            stopped.add(event.run)
    for run_id, ts in unended.items():  # a recording cut off mid-run (a crash, a kill)
        guard.end_run(run_id, "error", ts=ts)
    return to_jaeger(backend.finished(), service_name)


def run(args: argparse.Namespace) -> int:
    from loopguard.cli._recordings import events_of, line_errors, load_policies

    check_output(args.output, "-o")
    policies = load_policies(args, "export")
    errors, on_error = line_errors()
    service = args.service_name or os.environ.get("OTEL_SERVICE_NAME") or "loopguard"
    # The traces are the output; the guard's own log of its verdicts would bury the summary.
    with quiet_logs(verbose=args.verbose):
        doc = export_jaeger(events_of(args.files, on_error), policies, service)
    errors.report_repeats()
    write_output(args.output, json.dumps(doc, ensure_ascii=False) + "\n")
    if args.output != STDIO:
        spans = sum(len(t["spans"]) for t in doc["data"])
        print(
            f"wrote {spans} spans in {len(doc['data'])} trace(s) to {args.output}", file=sys.stderr
        )
    return EXIT_FINDINGS if errors else EXIT_OK
