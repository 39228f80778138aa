"""Bytes per model call of a flight recording as the run grows: format 2 against format 1.

Records one healthy run of N model calls (benchmarks/_scenarios.py's `long_run`: the prompt grows
by a tool call and its result every step, as an agent's does) through the FlightRecorder, which
writes format 2 (each model_start carries only the messages after those it shares with its run's
previous call), and writes the same events in format 1 (every model_start with the whole
history) beside it, as the 0.1 recorder did: the baseline, measured in the same run. Both files
are read back and must give the same events.

    python benchmarks/recording.py [--calls 10,100,1000]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _scenarios import long_run

from loopguard import Guard, Policy
from loopguard.events import ModelStart
from loopguard.recorder import FlightRecorder, redact
from loopguard.replay import read_events


def sizes(calls: int, folder: Path, record_content: bool) -> tuple[int, int]:
    events = long_run(calls)
    kind = "text" if record_content else "digests"
    new, old = folder / f"v2-{kind}-{calls}.jsonl", folder / f"v1-{kind}-{calls}.jsonl"
    with FlightRecorder(new, record_content=record_content) as recorder:
        guard = Guard(Policy(mode="shadow"), sinks=[recorder])
        for event in events:
            guard.process(event)
    with old.open("w", encoding="utf-8") as f:  # as the 0.1 recorder wrote them
        for event in events:
            data = {**event.to_dict(), "v": 1}
            data = data if record_content else redact(data)
            f.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")

    def back(path: Path) -> list[dict]:
        return [e.to_dict() for e in read_events(path, on_error=print)]

    assert back(new) == back(old), "the two formats must read back as the same events"
    assert sum(type(e) is ModelStart for e in events) == calls
    return new.stat().st_size, old.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="10,100,1000", help="run lengths (model calls)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the guard's verdicts on the run are not the point here
    lengths = [int(n) for n in args.calls.split(",")]
    print(
        f"{'content':<9} {'calls':>6} {'format 1 B/call':>16} {'format 2 B/call':>16} "
        f"{'format 1 file':>14} {'format 2 file':>14} {'ratio':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for record_content in (True, False):
            for calls in lengths:
                new, old = sizes(calls, Path(tmp), record_content)
                print(
                    f"{'text' if record_content else 'digests':<9} {calls:>6} "
                    f"{old / calls:>16,.0f} {new / calls:>16,.0f} {old / 1e6:>11.2f} MB "
                    f"{new / 1e6:>11.2f} MB {old / new:>6.1f}x"
                )
    print("\nB/call: the file's bytes over the run's model calls (every event of the run counted).")


if __name__ == "__main__":
    main()
