"""`loopguard demo`: a real LangChain agent on the real Bedrock client (against FakeBedrock,
offline) runs away, loopguard stops it, and the summary says what it would have cost.

Exit status: 0 when the demo ran and its traces were delivered (whether or not loopguard stopped
the run); 1 when an extra is missing or the traces could not be delivered (a file that cannot be
written, an OTLP endpoint that does not answer); 2 for usage errors.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import logging
import sys
from pathlib import Path

from loopguard.cli._common import add_json_option, quiet_logs

DEFAULT_SCENARIO = "search-loop"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from loopguard.testing.scenarios import SCENARIOS

    runaway = [n for n, s in SCENARIOS.items() if s.runaway]
    listing = "; ".join(f"{n}: {SCENARIOS[n].summary}" for n in runaway)
    parser = subparsers.add_parser(
        "demo",
        help="watch loopguard stop a runaway agent (offline, a few seconds)",
        description="Runs a create_agent agent with langchain-aws ChatBedrockConverse against "
        "a local fake Bedrock server, under loopguard's default policy. No AWS "
        "account or network needed.",
    )
    parser.add_argument(
        "--scenario",
        choices=runaway,
        default=None,
        help=f"how the agent runs away (default {DEFAULT_SCENARIO}). {listing}",
    )
    parser.add_argument(
        "--healthy",
        action="store_true",
        help="run an agent that finishes on its own; loopguard lets it be (not with --scenario)",
    )
    parser.add_argument(
        "--no-live",
        action="store_true",
        help="plain lines instead of the live view (the default when stdout is not a terminal)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="Bedrock model id the fake serves and prices are taken for "
        "(default: Claude Sonnet 4 via the us. inference profile)",
    )
    parser.add_argument(
        "--traces",
        type=Path,
        default=Path("loopguard-traces.json"),
        help="Jaeger JSON file for the traces when OTEL_EXPORTER_OTLP_ENDPOINT "
        "is not set ('-': stdout, the view and summary then go to stderr; default: "
        "./loopguard-traces.json; OTEL_SDK_DISABLED=true: no traces)",
    )
    add_json_option(parser, "the summary (no live view, no step lines)")
    parser.set_defaults(func=run)


# What the demo's agent runs on: LangChain v1 agents and the real Bedrock client.
_NEEDS = {
    "langchain": "agents",
    "langgraph": "agents",
    "langchain_aws": "aws",
    "boto3": "aws",
    "rich": "cli",
}


def run(args: argparse.Namespace) -> int:
    from loopguard.cli._common import EXIT_FINDINGS, EXIT_OK, STDIO, UserError, print_json

    if args.healthy and args.scenario is not None:
        raise UserError("--healthy runs the healthy scenario; leave out --scenario")
    scenario = "healthy" if args.healthy else args.scenario or DEFAULT_SCENARIO
    _check_traces_path(args.traces)
    missing = sorted(
        {extra for module, extra in _NEEDS.items() if importlib.util.find_spec(module) is None}
    )
    if missing:
        print(
            f"loopguard demo needs the {' and '.join(missing)} extra"
            f"{'s' if len(missing) > 1 else ''}: pip install 'langchain-loopguard[all]'",
            file=sys.stderr,
        )
        return EXIT_FINDINGS
    # With --json, stdout carries only the JSON document; with --traces -, only the traces.
    to_stdout = str(args.traces) == STDIO
    if args.json and to_stdout:
        raise UserError("--json and --traces - both write to stdout; give --traces a file")
    out = io.StringIO() if args.json else sys.stderr if to_stdout else sys.stdout
    # Say what is coming before the imports below, which take seconds (LangChain, boto3).
    print(
        f"loopguard demo: {scenario}: a LangChain create_agent agent on langchain-aws "
        "ChatBedrockConverse, against a fake Bedrock server on 127.0.0.1 (no AWS account, no "
        "network), guarded by loopguard's default policy. Starting...",
        file=sys.stderr if args.json or to_stdout else out,
        flush=True,
    )
    try:
        from loopguard.demo import run as demo_run
        from loopguard.demo.summary import summary_dict, write_summary
    except ImportError as exc:
        print(
            f"loopguard demo needs the agent, AWS and CLI extras: pip install "
            f"'langchain-loopguard[all]' ({exc})",
            file=sys.stderr,
        )
        return EXIT_FINDINGS
    # The live view needs a terminal; the plain lines tell it all elsewhere.
    live = out.isatty() and not args.no_live
    # The guard logs every verdict and LangChain logs every exception a callback raises (the
    # deliberate abort included); the demo shows both itself.
    with quiet_logs(
        {"loopguard": logging.CRITICAL, "langchain_core.callbacks.manager": logging.ERROR}
    ):
        result = demo_run.run(
            scenario,
            out=out,
            live=live,
            traces_path=args.traces,
            model=args.model or demo_run.DEMO_MODEL,
        )
    if args.json:
        print_json(summary_dict(result))
    else:
        write_summary(result, out)
    if result.traces_error is not None:
        print(f"loopguard demo: traces not delivered: {result.traces_error}", file=sys.stderr)
        return EXIT_FINDINGS
    return EXIT_OK


def _check_traces_path(path: Path) -> None:
    """A traces file that cannot be written is said before the demo runs, not after."""
    import os

    from loopguard.cli._common import check_output

    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        return  # no file is written
    check_output(str(path), "--traces")
