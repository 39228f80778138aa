"""`loopguard export FILE.jsonl... --format jaeger -o traces.json`: recordings as Jaeger traces.

The recorded events go through a guard with the given policy, as they went through the live one,
and the span tree the OpenTelemetry sink builds is written in Jaeger's JSON format, which the
Jaeger UI's "JSON File" upload opens. An abort under the policy shows as it would have live: the
refused call, ERROR status and the verdict's evidence. Span times are the recorded ones.

A corrupt line is reported on stderr as FILE:LINE: reason and skipped. Exit status: 0, or 1 when
corrupt lines were seen (the traces are still written), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loopguard.events import Event, RunEnd

FORMATS = ("jaeger",)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="write recordings (JSONL events) as Jaeger JSON traces",
        description="Turn flight recordings into traces the Jaeger UI opens (Search, then "
        '"JSON File").',
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="JSONL recordings (format v1)")
    p.add_argument(
        "--format", choices=FORMATS, default="jaeger", help="output format (default: jaeger)"
    )
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    p.add_argument(
        "--policy",
        metavar="PATH",
        help="policy to judge the runs with (default: $LOOPGUARD_CONFIG, "
        "./loopguard.toml, ... as for a live guard)",
    )
    p.add_argument(
        "--service-name",
        default="loopguard",
        help="the service name Jaeger shows (default: loopguard)",
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
    # Unlike `loopguard replay`, a stopped run's later events are still fed: the guard keeps
    # them from the sinks where the live guard refused them, and its recorded end (with its
    # time) still ends the spans.
    unended: dict[str, float] = {}
    for event in events:
        if type(event) is RunEnd:
            unended.pop(event.run, None)
        else:
            unended[event.run] = event.ts
        try:
            guard.process(event)
        except LoopGuardAbort:
            pass
    for run_id, ts in unended.items():  # a recording cut off mid-run (a crash, a kill)
        guard.end_run(run_id, "error", ts=ts)
    return to_jaeger(backend.finished(), service_name)


def run(args: argparse.Namespace) -> int:
    from loopguard.cli._recordings import line_errors, load_policies
    from loopguard.replay import read_events

    policies = load_policies(args, "export")
    if policies is None:
        return 2
    errors, on_error = line_errors()
    events = (e for path in args.files for e in read_events(path, on_error=on_error))
    doc = export_jaeger(events, policies, args.service_name)
    text = json.dumps(doc, ensure_ascii=False)
    if args.output == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        spans = sum(len(t["spans"]) for t in doc["data"])
        print(
            f"wrote {spans} spans in {len(doc['data'])} trace(s) to {args.output}", file=sys.stderr
        )
    return 1 if errors else 0
