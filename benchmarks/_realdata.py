"""What the real-data converters share: a labelled run, the builder that turns a transcript
into loopguard events, the default data paths, and writing runs as a JSONL recording.

The public data sets carry no timings and no token counts. Both are estimated here, the same
way for every run, so that no label can leak through them: tokens from the text with
`loopguard.tokens` (the estimator the guard itself uses before a call), seconds from the
tokens at a gpt-4o-like pace (`model_seconds`). Everything else (messages, tool calls, tool
results, their order) is the data set's own.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from loopguard.events import (
    Event,
    Message,
    ModelEnd,
    ModelStart,
    RunEnd,
    RunStart,
    ToolCall,
    ToolEnd,
    ToolStart,
    Usage,
)
from loopguard.tokens import estimate_input_tokens, estimate_text_tokens

REPO = Path(__file__).resolve().parents[1]


def _checkouts(repo: Path) -> list[Path]:
    """The repository's folder, and for a git worktree also its main checkout's."""
    found = [repo]
    git = repo / ".git"
    if git.is_file():  # a worktree: "gitdir: <main>/.git/worktrees/<name>"
        gitdir = Path(git.read_text().partition(":")[2].strip())
        common = gitdir / (gitdir / "commondir").read_text().strip()
        found.append(common.resolve().parent)
    return found


# The data sets live beside the clone (never inside it): ../shared/data/<name>.
DATA = next(
    (p.parent / "shared" / "data" for p in _checkouts(REPO) if (p.parent / "shared").is_dir()),
    REPO.parent / "shared" / "data",
)
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC: the first run's start; later runs an hour apart


@dataclass(slots=True)
class RealRun:
    """One converted run. `label` comes from the data set (never from the events):
    tau-bench `healthy` | `failed`, Who&When `loop` | `no-loop`."""

    name: str
    label: str
    events: list[Event]

    @property
    def run(self) -> str:
        return self.events[0].run

    @property
    def model_calls(self) -> int:
        return sum(1 for e in self.events if type(e) is ModelStart)


def model_seconds(input_tokens: int, output_tokens: int) -> float:
    """Wall time of one gpt-4o call: about half a second to the first token, prompt reading at
    ~10k tokens/s, answers at ~60 tokens/s (OpenAI's published gpt-4o speeds, rounded)."""
    return 0.5 + input_tokens / 10_000 + output_tokens / 60


class Transcript:
    """Builds one run's events call by call, keeping the prompt as the model would see it."""

    def __init__(
        self,
        run: str,
        agent: str,
        model: str,
        *,
        ts: float,
        prompt_tokens: int = 0,
    ) -> None:
        self.run, self.agent, self.model = run, agent, model
        self.prompt_tokens = prompt_tokens  # sent with every call, not in the messages (tools)
        self.ts = ts
        self.messages: list[Message] = []
        self.calls = 0
        self.tools = 0
        self.events: list[Event] = [RunStart(run=run, agent=agent, ts=ts, name=agent)]

    def _base(self) -> dict[str, Any]:
        return {"run": self.run, "agent": self.agent}

    def say(self, role: str, content: str, seconds: float = 0.0) -> None:
        """A message that reaches the model's prompt without a call of its own (the task, a
        user's turn); `seconds` is how long it took to arrive."""
        self.ts += seconds
        self.messages.append(Message(role, content))

    def model_call(
        self,
        text: str = "",
        calls: Sequence[tuple[str, dict[str, Any] | str]] = (),
        *,
        extra_input_tokens: int = 0,
        extra_output_tokens: int = 0,
    ) -> None:
        """One model call on the prompt so far, answering `text` and asking for `calls`.
        `extra_*_tokens` count prompt or answer parts the data set does not show."""
        self.calls += 1
        cid = f"{self.run}:m{self.calls}"
        self.events.append(
            ModelStart(
                **self._base(),
                ts=self.ts,
                id=cid,
                model=self.model,
                messages=list(self.messages),
                max_tokens=None,
            )
        )
        tool_calls = [ToolCall(name, args) for name, args in calls]
        usage = Usage(
            input_tokens=self.prompt_tokens
            + extra_input_tokens
            + estimate_input_tokens(self.messages),
            output_tokens=extra_output_tokens
            + estimate_text_tokens(text)
            + sum(estimate_text_tokens(str(c.to_dict())) for c in tool_calls),
        )
        self.ts += model_seconds(usage.input_tokens, usage.output_tokens)
        self.events.append(
            ModelEnd(
                **self._base(),
                ts=self.ts,
                id=cid,
                model=self.model,
                text=text,
                tool_calls=tool_calls,
                usage=usage,
            )
        )
        self.messages.append(Message("assistant", text, [c.to_dict() for c in tool_calls] or None))

    def tool_call(self, name: str, args: dict[str, Any] | str, output: str, seconds: float) -> None:
        """A tool call the last model call asked for, and its result."""
        self.tools += 1
        tid = f"{self.run}:t{self.tools}"
        self.events.append(ToolStart(**self._base(), ts=self.ts, id=tid, tool=name, args=args))
        self.ts += seconds
        self.events.append(ToolEnd(**self._base(), ts=self.ts, id=tid, tool=name, output=output))
        self.messages.append(Message("tool", output))

    def end(self, status: str = "ok") -> list[Event]:
        self.ts += 0.05
        self.events.append(RunEnd(**self._base(), ts=self.ts, status=status))
        return self.events


def data_path(given: str | None, name: str) -> Path:
    """The data set's folder: as given on the command line, else ../shared/data/<name>."""
    path = Path(given) if given else DATA / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such data set (give its path; the default is ../shared/data/{name} "
            "beside the repository)"
        )
    return path


def write_jsonl(runs: Iterable[RealRun], out: IO[str] | str | Path) -> int:
    """Write the runs as one flight recording, through loopguard's own recorder (so the file is
    what production writes), and return the number of events written."""
    import tempfile

    from loopguard import Guard, Policy
    from loopguard.recorder import FlightRecorder

    # A guard that never stops anything: the recorder sees every event as it would live.
    policy = Policy(mode="shadow", max_model_calls=None, max_tool_calls=None)
    to_stream = not isinstance(out, (str, Path))
    target = Path(tempfile.mkstemp(suffix=".jsonl")[1]) if to_stream else Path(out)
    if not to_stream:
        target.write_text("")
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # shadow verdicts are logged; they are not the point here
    count = 0
    try:
        with FlightRecorder(target) as recorder:
            guard = Guard(policy, sinks=[recorder])
            for real in runs:
                for event in real.events:
                    guard.process(event)
                    count += 1
        if to_stream:
            with open(target, encoding="utf-8") as f:
                for line in f:
                    out.write(line)  # type: ignore[union-attr]
    finally:
        logging.disable(previous)
        if to_stream:
            target.unlink()
    return count


def convert_main(
    argv: Sequence[str] | None, name: str, doc: str, load: Any, labels: Sequence[str]
) -> int:
    """The command line both converters share: DATA [-o FILE] [--label LABEL]."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "data", nargs="?", help=f"the data set's folder (default: ../shared/data/{name})"
    )
    parser.add_argument(
        "-o", "--output", default="-", help="JSONL recording to write ('-': stdout, the default)"
    )
    parser.add_argument("--label", choices=labels, help="only the runs with this label")
    args = parser.parse_args(argv)
    try:
        runs = load(args.data)
    except (FileNotFoundError, ValueError) as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    if args.label:
        runs = [r for r in runs if r.label == args.label]
    try:
        events = write_jsonl(runs, sys.stdout if args.output == "-" else args.output)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        return 0
    counts = {label: sum(1 for r in runs if r.label == label) for label in labels}
    print(
        f"{parser.prog}: {len(runs)} runs ({', '.join(f'{n} {k}' for k, n in counts.items())}), "
        f"{events:,} events" + ("" if args.output == "-" else f" -> {args.output}"),
        file=sys.stderr,
    )
    return 0
