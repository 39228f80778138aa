"""Replay recorded events through a real Guard, offline, under any policy.

`Replayer` is the engine both `loopguard replay` and the detection benchmark use: it feeds
events to a `Guard` and keeps one `RunResult` per run. Once a run is stopped, its later events
are skipped (in real life they would never have happened). A shadow-mode policy reports the
first would-be abort the same way, so a policy can be tried on recordings before enforcing it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from loopguard.errors import EventFormatError
from loopguard.events import Decoder, Event, ModelStart, RunEnd
from loopguard.guard import Guard
from loopguard.verdict import Action, LoopGuardAbort, Verdict


@dataclass(slots=True)
class RunResult:
    """What happened to one run. `step` is the 1-based model call at or before which it was
    stopped (abort), the call of its first warning (warn), or its number of model calls (ok)."""

    run: str
    agent: str | None
    action: str = "ok"  # ok | warn | abort
    detector: str | None = None
    reason: str | None = None
    step: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0
    verdict: Verdict | None = None
    ended: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "agent": self.agent,
            "action": self.action,
            "detector": self.detector,
            "reason": self.reason,
            "step": self.step,
            "cost_usd": round(self.cost_usd, 6),
        }


class Replayer:
    """Feeds events to `guard` and records each run's outcome."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.results: dict[str, RunResult] = {}
        self.events = 0
        self.skipped = 0  # events of runs already stopped

    def feed(self, event: Event) -> None:
        result = self.results.get(event.run)
        if result is None:
            result = self.results[event.run] = RunResult(event.run, event.agent)
        if result.action == "abort":
            self.skipped += 1
            return
        self.events += 1
        if type(event) is RunEnd:
            self._snapshot(result)
            result.ended = True
        elif type(event) is ModelStart:
            result.model_calls += 1
        try:
            verdict = self.guard.process(event)
        except LoopGuardAbort as stop:
            self._stopped(result, stop.verdict)
            return
        if verdict is None:
            return
        if verdict.action is Action.ABORT:  # shadow mode: what would have stopped it
            self._stopped(result, verdict)
        elif result.action == "ok":
            result.action, result.verdict = "warn", verdict
            result.detector, result.reason, result.step = (
                verdict.detector,
                verdict.reason,
                verdict.step,
            )

    def finish(self) -> list[RunResult]:
        """End runs the recording left open, and return every run's result, in first-seen order."""
        for result in self.results.values():
            if result.action != "abort" and not result.ended:
                self._snapshot(result)
                self._end(result.run, "error")  # a recording cut off mid-run (crash, kill)
                result.ended = True
        for result in self.results.values():
            if result.action == "ok":
                result.step = result.model_calls
        return list(self.results.values())

    def _snapshot(self, result: RunResult) -> None:
        state = self.guard.get_run(result.run)
        if state is not None:
            result.cost_usd = state.cost_usd

    def _stopped(self, result: RunResult, verdict: Verdict) -> None:
        self._snapshot(result)
        result.action, result.verdict = "abort", verdict
        result.detector, result.reason, result.step = verdict.detector, verdict.reason, verdict.step
        self._end(result.run, "aborted")  # frees the run's state
        result.ended = True

    def _end(self, run: str, status: str) -> None:
        # At the run's last recorded moment, not now: sinks (spans) keep the recorded times.
        state = self.guard.get_run(run)
        if state is not None:
            self.guard.end_run(run, status, ts=state.last_seen)


@dataclass(frozen=True, slots=True)
class LineError:
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def read_events(
    path: str | os.PathLike[str] | BinaryIO,
    *,
    on_error: Callable[[LineError], None],
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[Event]:
    """Events of a JSONL recording (a path, or a binary file such as stdin's buffer), any
    format version; a bad line is reported to `on_error` and skipped."""
    decoder = Decoder()
    with ExitStack() as stack:
        f: BinaryIO
        if isinstance(path, (str, os.PathLike)):
            name, f = str(path), stack.enter_context(open(path, "rb"))
        else:
            name, f = str(getattr(path, "name", "<stdin>")), path
        for number, raw in enumerate(f, 1):
            if on_bytes is not None:
                on_bytes(len(raw))
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                on_error(LineError(name, number, f"invalid JSON: {exc.msg} (column {exc.colno})"))
                continue
            except UnicodeDecodeError as exc:
                on_error(LineError(name, number, f"not UTF-8: {exc.reason}"))
                continue
            except ValueError as exc:  # an integer of more digits than Python converts
                on_error(LineError(name, number, f"invalid JSON: {exc}"))
                continue
            except RecursionError:
                on_error(LineError(name, number, "invalid JSON: nested too deeply"))
                continue
            try:
                yield decoder.decode(data)
            except EventFormatError as exc:
                on_error(LineError(name, number, str(exc)))


def replay_events(events: Iterable[Event], guard: Guard | None = None) -> list[RunResult]:
    """Replay `events` (any order of runs) and return each run's result."""
    replayer = Replayer(guard if guard is not None else Guard())
    for event in events:
        replayer.feed(event)
    return replayer.finish()


def total_bytes(paths: Iterable[str | os.PathLike[str]]) -> int:
    """The size of the files in `paths` (`-`, stdin, counts as 0: its size is unknown)."""
    return sum(Path(p).stat().st_size for p in paths if str(p) != "-")


__all__ = ["LineError", "Replayer", "RunResult", "read_events", "replay_events", "total_bytes"]
