"""The loop stoppers loopguard is compared with, re-implemented from their published rules.

Each baseline reads a scenario's events in order and returns where it would have stopped the
run: the index of the event at which it stops and whether that event's paid work happened.

- Model-call limit, as LangChain's ModelCallLimitMiddleware(run_limit=N) does it: the model
  call after the N-th is not made.
- AgentExecutor(max_iterations=15), LangChain's classic agent loop: one model call per
  iteration, at most 15.
- OpenHands' stuck detector (legacy StuckDetector): 4 identical action/observation pairs;
  3 identical actions each answered by an error; 3 identical agent messages in a row with no
  user message between; an A,B,A,B,A,B ping-pong over 6 steps with identical observations.
  Exact equality only.
- gemini-cli's loop detection: 5 consecutive identical tool calls (keyed by name and the JSON
  of the arguments as sent, so key order matters); streamed text cut into 50-character chunks
  at every position, a loop when one chunk occurs 10 times with an average distance of at
  most 75 characters; tracking resets on code fences, tables, lists, headings, blockquotes.
  (Its LLM-based check after 30 turns is not reproduced.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from loopguard.events import (
    Event,
    Message,
    ModelEnd,
    ModelStart,
    Token,
    ToolEnd,
    ToolFailed,
    ToolStart,
)


@dataclass(frozen=True, slots=True)
class Stop:
    index: int  # the event at which the run stops
    billed: bool  # whether that event's paid work (the model call) happened
    step: int  # 1-based model call at or before which the run stopped


Baseline = Callable[[Sequence[Event]], Stop | None]


def model_call_limit(limit: int) -> Baseline:
    def judge(events: Sequence[Event]) -> Stop | None:
        calls = 0
        for i, e in enumerate(events):
            if type(e) is ModelStart:
                if calls >= limit:
                    return Stop(i, False, calls + 1)
                calls += 1
        return None

    return judge


def openhands(events: Sequence[Event]) -> Stop | None:
    history: list[
        tuple[str, object]
    ] = []  # ("action", key) | ("obs", text) | ("error", text) | ("msg", text)
    calls = 0
    for i, e in enumerate(events):
        kind = type(e)
        if kind is ModelStart:
            if _openhands_stuck(history):
                return Stop(i, False, calls + 1)
            calls += 1
            last_user = next((m for m in reversed(e.messages) if m.role != "tool"), None)  # type: ignore[attr-defined]
            if (
                isinstance(last_user, Message)
                and last_user.role == "user"
                and calls > 1
                and history
                and history[-1][0] == "msg"
            ):
                history.append(("user", last_user.content))
        elif kind is ModelEnd:
            if not e.tool_calls:  # type: ignore[attr-defined]
                history.append(("msg", e.text))  # type: ignore[attr-defined]
        elif kind is ToolStart:
            history.append(("action", (e.tool, json.dumps(e.args, sort_keys=True))))  # type: ignore[attr-defined]
        elif kind is ToolEnd:
            history.append(("obs", e.output))  # type: ignore[attr-defined]
        elif kind is ToolFailed:
            history.append(("error", e.error))  # type: ignore[attr-defined]
        history = history[-24:]
    return None


def _openhands_stuck(history: list[tuple[str, object]]) -> bool:
    pairs = [
        (history[j][1], history[j + 1])
        for j in range(len(history) - 1)
        if history[j][0] == "action" and history[j + 1][0] in ("obs", "error")
    ]
    last4 = pairs[-4:]
    if len(last4) == 4 and all(p == last4[0] for p in last4) and last4[0][1][0] == "obs":
        return True
    last3 = pairs[-3:]
    if (
        len(last3) == 3
        and all(a == last3[0][0] for a, _ in last3)
        and all(o[0] == "error" for _, o in last3)
    ):
        return True
    tail = history[-3:]
    if len(tail) == 3 and all(k == "msg" for k, _ in tail) and len({t for _, t in tail}) == 1:
        return True
    last6 = pairs[-6:]
    return (
        len(last6) == 6
        and last6[0] == last6[2] == last6[4]
        and last6[1] == last6[3] == last6[5]
        and last6[0] != last6[1]
    )


_MARKDOWN = re.compile(r"(?:^|\n)\s*(?:\||[-*+]\s|\d+[.)]\s|#|>)")
_CHUNK, _REPEATS, _HISTORY = 50, 10, 1000


def gemini_cli(events: Sequence[Event]) -> Stop | None:
    calls = 0
    last_key, same = None, 0
    text, in_code, positions = "", False, {}
    for i, e in enumerate(events):
        kind = type(e)
        if kind is ModelStart:
            calls += 1
            text, in_code, positions = "", False, {}
        elif kind is ModelEnd:
            for call in e.tool_calls:  # type: ignore[attr-defined]
                key = call.name + ":" + json.dumps(call.args)
                same = same + 1 if key == last_key else 1
                last_key = key
                if same >= 5:
                    return Stop(i, True, calls)
        elif kind is Token:
            chunk = e.text  # type: ignore[attr-defined]
            fences = chunk.count("```")
            if fences % 2:
                in_code = not in_code
            if fences or in_code or _MARKDOWN.search(chunk):
                text, positions = "", {}
                continue
            start = len(text)
            text += chunk
            for pos in range(max(0, start - _CHUNK + 1), len(text) - _CHUNK + 1):
                seen = positions.setdefault(text[pos : pos + _CHUNK], [])
                seen.append(pos)
                recent = seen[-_REPEATS:]
                if (
                    len(recent) == _REPEATS
                    and (recent[-1] - recent[0]) / (_REPEATS - 1) <= 1.5 * _CHUNK
                ):
                    return Stop(i, True, calls)
            if len(text) > _HISTORY:  # bounded history, as gemini-cli keeps
                cut = len(text) - _HISTORY
                text = text[cut:]
                positions = {k: [p - cut for p in v if p >= cut] for k, v in positions.items()}
    return None


BASELINES: dict[str, Baseline] = {
    "call limit 25": model_call_limit(25),
    "max_iter 15": model_call_limit(15),
    "OpenHands": openhands,
    "gemini-cli": gemini_cli,
}
