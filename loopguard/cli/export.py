"""`loopguard export FILE.jsonl --format jaeger -o traces.json`: a recording as Jaeger traces.

The recorded events go through a guard with the given policy, exactly as they went through the
live one, and the same span tree the OpenTelemetry sink builds is written in Jaeger's JSON
format, which the Jaeger UI's "JSON File" upload opens. An abort under the policy shows as it
would have live: the refused call, ERROR status and the verdict's evidence.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loopguard.events import Event, EventFormatError, RunEnd, from_dict

FORMATS = ("jaeger",)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "export", help="write a recording (JSONL events) as Jaeger JSON traces",
        description="Turn a flight recording into traces the Jaeger UI opens (Search > Upload "
                    "> JSON File).")
    p.add_argument("file", help="a recording: JSON Lines events, version 1")
    p.add_argument("--format", choices=FORMATS, default="jaeger",
                   help="output format (default: jaeger)")
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    p.add_argument("--policy", default=None,
                   help="policy file to judge the run with (default: $LOOPGUARD_CONFIG, "
                        "./loopguard.toml, ... as for a live guard)")
    p.add_argument("--service-name", default="loopguard",
                   help="the service name Jaeger shows (default: loopguard)")
    p.set_defaults(func=run)


def read_events(path: Path) -> Iterator[Event]:
    """Events of a recording; a bad line raises EventFormatError naming FILE:LINE."""
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield from_dict(json.loads(line))
            except json.JSONDecodeError as exc:
                raise EventFormatError(f"{path}:{n}: not JSON: {exc.msg}") from None
            except EventFormatError as exc:
                raise EventFormatError(f"{path}:{n}: {exc}") from None


def export_jaeger(path: Path, policy: str | None, service_name: str) -> dict[str, Any]:
    """The Jaeger JSON document for the runs recorded in `path`."""
    from loopguard.guard import Guard
    from loopguard.telemetry.jaeger import JaegerBackend, to_jaeger
    from loopguard.telemetry.tree import SpanTree, TreeSink
    from loopguard.verdict import LoopGuardAbort

    backend = JaegerBackend(max_traces=None)
    guard = Guard(policy, sinks=[TreeSink(SpanTree(backend))])
    unended: dict[str, float] = {}
    for event in read_events(path):
        if type(event) is RunEnd:
            unended.pop(event.run, None)
        else:
            unended[event.run] = event.ts
        try:
            guard.process(event)
        except LoopGuardAbort:
            pass  # the sinks saw it; the recording goes on as it did live
    for run_id, ts in unended.items():  # a recording cut off mid-run (a crash, a kill)
        guard.end_run(run_id, "error", ts=ts)
    return to_jaeger(backend.finished(), service_name)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"loopguard export: {path}: no such file", file=sys.stderr)
        return 2
    try:
        doc = export_jaeger(path, args.policy, args.service_name)
    except EventFormatError as exc:
        print(f"loopguard export: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(doc, ensure_ascii=False)
    if args.output == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {sum(len(t['spans']) for t in doc['data'])} spans in "
              f"{len(doc['data'])} trace(s) to {args.output}", file=sys.stderr)
    return 0
