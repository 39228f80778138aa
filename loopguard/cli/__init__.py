"""The `loopguard` command. Each subcommand lives in its own module with `register(sub)`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand modules, in the order `loopguard --help` lists them.
COMMANDS = ("demo", "policy", "replay", "calibrate", "export", "pricing", "budget")


def build_parser() -> argparse.ArgumentParser:
    from loopguard import __version__

    parser = argparse.ArgumentParser(
        prog="loopguard", description="A circuit breaker for runaway LLM agents."
    )
    parser.add_argument("--version", action="version", version=f"loopguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        # Each module imports what it needs when its command runs, so a core-only install
        # still gets every command's help, and a clear error for a missing extra.
        importlib.import_module(f"loopguard.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status (see loopguard.cli._common and docs/cli.md)."""
    from loopguard.cli._common import EXIT_USAGE, UserError
    from loopguard.errors import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"loopguard {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except ConfigError as exc:  # a policy loaded by a command that did not wrap it
        print(f"loopguard {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
