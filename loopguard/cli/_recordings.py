"""What the commands that read recordings share: checking the files, loading the policy, and
reporting corrupt lines as FILE:LINE: reason (each distinct reason once per file)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from loopguard.cli._common import STDIO, UserError, check_input
from loopguard.cli._common import load_policies as _load
from loopguard.events import Event
from loopguard.replay import LineError, read_events


def load_policies(args: argparse.Namespace, command: str) -> Any:
    """The PolicySet for `args.policy`, after checking that every one of `args.files` can be
    read; a `UserError` (exit status 2) otherwise."""
    files = list(args.files)
    if files.count(STDIO) + (args.policy == STDIO) > 1:
        raise UserError("stdin ('-') can be read only once")
    for path in files:
        check_input(path)
    return _load(args.policy)


class LineErrors(list[LineError]):
    """The corrupt lines seen; the first line with each reason in a file is reported on stderr
    (a recording in an unsupported format has the same error on every line), the rest are
    counted and summed up by `report_repeats`."""

    def __init__(self, stop: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._stop = stop
        self._repeats: dict[tuple[str, str], int] = {}

    def __call__(self, error: LineError) -> None:
        self.append(error)
        key = (error.path, error.reason)
        if key in self._repeats:
            self._repeats[key] += 1
        else:
            self._repeats[key] = 0
            print(str(error), file=sys.stderr)
        if self._stop is not None:
            self._stop()

    def report_repeats(self) -> None:
        for (path, reason), more in self._repeats.items():
            if more:
                print(
                    f"{path}: {more:,} more line{'s' if more > 1 else ''} skipped with the same "
                    f"error: {reason}",
                    file=sys.stderr,
                )


def line_errors(
    stop: Callable[[], None] | None = None,
) -> tuple[LineErrors, Callable[[LineError], None]]:
    """The corrupt lines seen, and the `on_error` callback that reports them (and then calls
    `stop`, e.g. to raise for --strict)."""
    errors = LineErrors(stop)
    return errors, errors


def events_of(
    paths: Sequence[str],
    on_error: Callable[[LineError], None],
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[Event]:
    """The events of every recording in `paths`, in order (`-` is stdin)."""
    for path in paths:
        if path == STDIO:
            yield from read_events(sys.stdin.buffer, on_error=on_error, on_bytes=on_bytes)
        else:
            yield from read_events(path, on_error=on_error, on_bytes=on_bytes)
