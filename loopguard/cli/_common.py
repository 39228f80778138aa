"""What every `loopguard` command shares: the exit codes, the user-error exception the entry point
turns into one line on stderr, `-` for stdin and stdout, `--json` output, and `--policy`.

A command raises `UserError` for anything the user can fix (a missing or unreadable file, a
directory where a file was expected, a policy that does not load, flags that contradict each
other); `loopguard.cli.main` prints `loopguard COMMAND: message` and exits with its code, so no
user mistake ends in a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

EXIT_OK = 0
"""Success: the command did what was asked and found nothing it was asked to fail on."""
EXIT_FINDINGS = 1
"""Findings: corrupt lines in a recording, a run stopped under `--fail-on`, a bad policy for
`policy check`, an unknown model for `pricing MODEL`, an unreachable ledger."""
EXIT_USAGE = 2
"""Usage or input error: a bad flag, a missing or unreadable file, a policy that does not load."""

STDIO = "-"
"""The file argument that means stdin (for inputs) or stdout (for outputs)."""


class UserError(Exception):
    """A mistake in what the user gave the command: reported as `loopguard COMMAND: message`
    on stderr, then the command exits with `code` (2 unless said otherwise)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def add_json_option(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout")


def add_policy_option(parser: argparse.ArgumentParser, what: str = "policy file") -> None:
    """`--policy PATH` (`--config` is kept as an alias of the old spelling)."""
    parser.add_argument(
        "--policy",
        "--config",
        dest="policy",
        metavar="PATH",
        help=f"{what} ('-' reads it from stdin; default: $LOOPGUARD_CONFIG, else the nearest "
        "loopguard.toml, "
        "loopguard.yaml or pyproject.toml with [tool.loopguard] from here up to the "
        "repository root)",
    )


def load_policies(path: str | None) -> Any:
    """The PolicySet at `path` (None: discovered as a live guard does; `-`: TOML, or YAML,
    read from stdin); a `UserError` when it does not load."""
    from loopguard.errors import ConfigError

    try:
        return read_policies(path)
    except ConfigError as exc:
        raise UserError(str(exc)) from None


def read_policies(path: str | None) -> Any:
    """The PolicySet at `path` (`-`: stdin, TOML unless it only parses as YAML); raises
    ConfigError."""
    from loopguard.config import load_text
    from loopguard.errors import ConfigError
    from loopguard.policy import PolicySet

    if path != STDIO:
        return PolicySet.load(path)
    text = sys.stdin.read()
    try:
        return load_text(text, "<stdin>", "stdin.toml")
    except ConfigError as toml_error:
        if not (toml_error.reason or "").startswith("invalid TOML"):
            raise
        try:
            return load_text(text, "<stdin>", "stdin.yaml")
        except ConfigError as yaml_error:
            if (yaml_error.reason or "").startswith(("invalid YAML", "YAML policies need")):
                raise toml_error from None
            raise


def check_input(path: str) -> None:
    """Raise a `UserError` now, before any work, when `path` cannot be read as a file."""
    if path == STDIO:
        return
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory")
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: permission denied")


@contextmanager
def open_input(path: str) -> Iterator[IO[bytes]]:
    """`path` opened for reading bytes; `-` is stdin."""
    if path == STDIO:
        yield sys.stdin.buffer
        return
    check_input(path)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc}") from None
    with f:
        yield f


def check_output(path: str, what: str = "") -> None:
    """Raise a `UserError` now, before any work, when `path` cannot be written as a file
    (`what` names the option in the message, e.g. "-o")."""
    if path == STDIO:
        return
    name = f"{what} {path}".strip()
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserError(f"{name}: is a directory")
    if not os.path.isdir(folder):
        raise UserError(f"{name}: no such folder {folder}")
    writable = os.access(path, os.W_OK) if os.path.exists(path) else os.access(folder, os.W_OK)
    if not writable:
        raise UserError(f"{name}: permission denied")


def write_output(path: str, text: str) -> None:
    """Write `text` to `path` (`-`: stdout); a `UserError` when it cannot be written."""
    if path == STDIO:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


@contextmanager
def quiet_logs(levels: dict[str, int] | None = None, *, verbose: bool = False) -> Iterator[None]:
    """Raise these loggers' levels meanwhile, unless `verbose` (default: silence the guard's
    log of every verdict, for commands whose output already says what it decided)."""
    if verbose:
        levels = {}
    elif levels is None:
        levels = {"loopguard": logging.CRITICAL}
    saved = {name: logging.getLogger(name).level for name in levels}
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def print_json(data: Any, *, indent: int | None = 2) -> None:
    """`data` as JSON on stdout (one line with indent=None: JSON Lines output)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=indent) + "\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """`rows` under `headers` as plain text on stdout, each column as wide as its widest cell
    (the last one is not padded: it may hold a long sentence)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    widths[-1] = 0
    for row in (headers, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


__all__ = [
    "EXIT_FINDINGS",
    "EXIT_OK",
    "EXIT_USAGE",
    "STDIO",
    "UserError",
    "add_json_option",
    "add_policy_option",
    "check_input",
    "check_output",
    "load_policies",
    "open_input",
    "print_json",
    "print_table",
    "quiet_logs",
    "read_policies",
    "write_output",
]
