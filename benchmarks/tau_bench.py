"""tau-bench airline runs (200 real gpt-4o runs) as loopguard events.

    python benchmarks/tau_bench.py [DATA] [-o runs.jsonl] [--label healthy|failed]

DATA is the data set's folder (default ../shared/data/tau-bench beside the repository; read
its README). Each run is one guarded run of agent `tau-airline`: every assistant message is a
model call on the conversation before it (the policy prompt, the simulated customer's turns,
earlier answers and tool results), its tool calls are tool calls with their real arguments and
results. The 84 runs with reward 1.0 are labelled `healthy`, the rest `failed` (a failure is
not a loop: they are unlabelled for detection).

Estimated (the file has neither): token usage from the text plus the airline tools' schemas
sent with every call, and time at gpt-4o's pace (`_realdata.model_seconds`), a customer's turn
taking 3 s and a tool call 0.3 s.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _realdata import T0, RealRun, Transcript, convert_main, data_path

NAME = "tau-bench"
FILE = "gpt-4o-airline.json"
AGENT = "tau-airline"
MODEL = "gpt-4o"
# The 14 airline tools' JSON schemas, sent with every call (tau-bench's tools/*.py): about
# 7,000 characters of name, description and parameters.
TOOL_SCHEMA_TOKENS = 2000
USER_SECONDS = 3.0  # the simulated customer (itself a gpt-4o call) answering
TOOL_SECONDS = 0.3  # the airline tools are local database lookups
LABELS = ("healthy", "failed")


def load(path: str | Path | None = None) -> list[RealRun]:
    """Every run of the data set, in file order."""
    folder = data_path(None if path is None else str(path), NAME)
    file = folder / FILE if folder.is_dir() else folder
    with open(file, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, list):
        raise ValueError(f"{file}: expected a list of runs, got {type(data).__name__}")
    return [convert(i, run, file) for i, run in enumerate(data)]


def convert(index: int, data: dict, source: Path | str = FILE) -> RealRun:
    """One run of the file as events."""
    try:
        task, trial, traj = data["task_id"], data["trial"], data["traj"]
        reward = float(data["reward"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source}: run {index}: missing or bad field {exc}") from None
    t = Transcript(
        f"tau-{task}-{trial}",
        AGENT,
        MODEL,
        ts=T0 + index * 3600,
        prompt_tokens=TOOL_SCHEMA_TOKENS,
    )
    pending: dict[str, tuple[str, dict | str]] = {}  # tool_call_id -> the call the model asked for
    for m in traj:
        role, content = m.get("role"), m.get("content") or ""
        if role == "system":
            t.say("system", content)
        elif role == "user":
            t.say("user", content, USER_SECONDS if t.calls else 0.0)
        elif role == "assistant":
            calls = [
                (c["id"], c["function"]["name"], _args(c["function"].get("arguments")))
                for c in m.get("tool_calls") or []
            ]
            t.model_call(content, [(name, args) for _, name, args in calls])
            pending.update({cid: (name, args) for cid, name, args in calls})
        elif role == "tool":
            name, args = pending.pop(m.get("tool_call_id"), (m.get("name") or "?", {}))
            t.tool_call(name, args, content, TOOL_SECONDS)
        else:
            raise ValueError(f"{source}: run {index}: unknown role {role!r}")
    events = t.end("ok")
    return RealRun(f"{NAME}/{task}.{trial}", "healthy" if reward == 1.0 else "failed", events)


def _args(raw: str | None) -> dict | str:
    """Arguments as the model sent them: a JSON object, or the raw string if it is not one."""
    try:
        parsed = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return raw or ""
    return parsed if isinstance(parsed, dict) else (raw or "")


def main(argv: Sequence[str] | None = None) -> int:
    return convert_main(argv, NAME, __doc__, load, LABELS)


if __name__ == "__main__":
    sys.exit(main())
