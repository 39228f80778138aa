"""Who&When Hand-Crafted runs (29 real Magentic-One runs) as loopguard events.

    python benchmarks/who_and_when.py [DATA] [-o runs.jsonl] [--label loop|no-loop]

DATA is the data set's folder (default ../shared/data/who-and-when beside the repository; read
its README). Each file is one guarded run of agent `magentic-one`, seen from its orchestrator:

- the orchestrator's initial plan is a model call answering the plan;
- each delegation ("Orchestrator (-> WebSurfer)") is a model call (the ledger call that chose
  it) asking for one tool call named for the sub-agent, whose arguments are the instruction and
  whose result is the sub-agent's reply (empty when the log has none);
- "Request satisfied." and the final answer are model calls answering that text.

The label (`loop` when any of the orchestrator's "Updated Ledger" messages says
`is_in_loop: true`, else `no-loop`) is read from the ledgers and kept beside the events, never
in them: the ledgers, the "Stalled.... Replanning..." and "Replan counter exceeded" lines, the
"New plan:" texts that follow them, and the calls that wrote them are dropped, so no detector
can see what the orchestrator thought of its own progress. The ledger's own length would tell
something too: each delegating call is billed a constant ledger answer (the data set's median,
LEDGER_OUTPUT_TOKENS) instead of its real length.

Estimated (the logs have neither): tokens from the text (the orchestrator's prompt is the task,
the plan, every instruction and reply so far, plus its ledger prompt), time at gpt-4o's pace,
and a sub-agent's turn (WebSurfer browses, takes a screenshot and describes it) as in
`AGENT_SECONDS`. Only the orchestrator's calls are priced: the sub-agents' own model calls are
not in the logs.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _realdata import T0, RealRun, Transcript, convert_main, data_path

from loopguard.tokens import estimate_text_tokens

NAME = "who-and-when"
AGENT = "magentic-one"
MODEL = "gpt-4o-2024-08-06"  # what the runs' own warnings name
LEDGER_PROMPT_TOKENS = 600  # Magentic-One's ledger prompt template, sent with each ledger call
LEDGER_OUTPUT_TOKENS = 330  # the median ledger answer in this data set (1,160 characters)
AGENT_SECONDS = {"WebSurfer": 12.0, "FileSurfer": 4.0, "Assistant": 6.0, "ComputerTerminal": 3.0}
LABELS = ("loop", "no-loop")

_DELEGATION = re.compile(r"^Orchestrator \(-> (.+)\)$")
_LOOP = re.compile(r'"is_in_loop"\s*:\s*\{[^{}]*"answer"\s*:\s*true', re.S)
# Orchestrator thoughts that carry the loop label, or are written because of it.
_HIDDEN = ("Updated Ledger", "Stalled.... Replanning", "Replan counter exceeded", "New plan:")


def load(path: str | Path | None = None) -> list[RealRun]:
    """Every run of the data set, in the order of the files' numbers."""
    folder = data_path(None if path is None else str(path), NAME)
    if (folder / "Hand-Crafted").is_dir():
        folder = folder / "Hand-Crafted"
    files = sorted(folder.glob("*.json"), key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise ValueError(f"{folder}: no *.json runs")
    runs = []
    for i, file in enumerate(files):
        with open(file, encoding="utf-8") as f:
            data = json.load(f)
        runs.append(convert(i, file.stem, data, file))
    return runs


def is_loop(history: list[dict]) -> bool:
    """The silver label: did any of the orchestrator's ledgers say it was in a loop?"""
    return any(
        m.get("content", "").startswith("Updated Ledger") and _LOOP.search(m["content"])
        for m in history
    )


def convert(index: int, stem: str, data: dict, source: Path | str = "") -> RealRun:
    """One run's history as events (without anything that carries the label)."""
    try:
        history = data["history"]
    except (KeyError, TypeError):
        raise ValueError(f"{source}: no 'history' list") from None
    label = "loop" if is_loop(history) else "no-loop"
    t = Transcript(f"ww-{stem}", AGENT, MODEL, ts=T0 + index * 3600)
    # The sub-agent the last delegation waits for, and the instruction it was given.
    awaiting: tuple[str, dict] | None = None
    for m in history:
        role, content = m.get("role", ""), m.get("content") or ""
        delegation = _DELEGATION.match(role)
        if role == "human":
            t.say("user", content)
        elif delegation:
            _close(t, awaiting)
            awaiting = (delegation.group(1), {"instruction": content})
            t.model_call(
                "",
                [awaiting],
                extra_input_tokens=LEDGER_PROMPT_TOKENS,
                extra_output_tokens=LEDGER_OUTPUT_TOKENS,
            )
        elif role == "Orchestrator (thought)":
            if content.startswith(_HIDDEN) or content.startswith("Next speaker"):
                continue  # "Next speaker X" is the log line of the delegation just made
            _close(t, awaiting)
            awaiting = None
            if content.startswith("Request satisfied"):
                t.model_call(
                    "Request satisfied.",
                    extra_input_tokens=LEDGER_PROMPT_TOKENS,
                    extra_output_tokens=LEDGER_OUTPUT_TOKENS,
                )
            else:  # the initial plan
                t.model_call(content)
        elif role == "Orchestrator (termination condition)":
            _close(t, awaiting)
            awaiting = None
            answer = _final_answer(content)
            if answer:
                t.model_call(answer)
        elif awaiting is not None and role == awaiting[0]:
            t.tool_call(role, awaiting[1], content, _agent_seconds(role, content))
            awaiting = None
        # Anything else is a sub-agent speaking out of turn: not in the orchestrator's loop.
    _close(t, awaiting)
    return RealRun(f"{NAME}/{stem}", label, t.end("ok"))


def _close(t: Transcript, awaiting: tuple[str, dict] | None) -> None:
    """A delegation whose sub-agent never answered in the log: the tool returns nothing."""
    if awaiting is not None:
        t.tool_call(awaiting[0], awaiting[1], "", _agent_seconds(awaiting[0], ""))


def _agent_seconds(agent: str, reply: str) -> float:
    return AGENT_SECONDS.get(agent, 5.0) + estimate_text_tokens(reply) / 60


def _final_answer(text: str) -> str:
    """The FINAL ANSWER line of a termination message (the rest is the harness's log)."""
    found = re.search(r"^FINAL ANSWER:.*$", text, re.M)
    return found.group(0).strip() if found else ""


def main(argv: Sequence[str] | None = None) -> int:
    return convert_main(argv, NAME, __doc__, load, LABELS)


if __name__ == "__main__":
    sys.exit(main())
