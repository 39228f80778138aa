"""What the commands that read recordings share: checking the files, loading the policy, and
reporting corrupt lines as FILE:LINE: reason."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopguard.replay import LineError


def load_policies(args: argparse.Namespace, command: str) -> Any | None:
    """The PolicySet for `args.policy`, after checking that `args.files` exist; None (after
    saying why on stderr) when the command must exit with status 2."""
    from loopguard.config import ConfigError
    from loopguard.policy import PolicySet

    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        print(f"loopguard {command}: no such file: {', '.join(missing)}", file=sys.stderr)
        return None
    try:
        return PolicySet.load(args.policy)
    except ConfigError as exc:
        print(f"loopguard {command}: {exc}", file=sys.stderr)
        return None


def line_errors(
    stop: Callable[[], None] | None = None,
) -> tuple[list[LineError], Callable[[LineError], None]]:
    """A list that collects corrupt lines, and the `on_error` callback that reports each one
    on stderr (and then calls `stop`, e.g. to raise for --strict)."""
    errors: list[LineError] = []

    def on_error(error: LineError) -> None:
        errors.append(error)
        print(str(error), file=sys.stderr)
        if stop is not None:
            stop()

    return errors, on_error
