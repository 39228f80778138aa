"""Repeated steps: near-duplicate model calls, judged on what each call adds and returns.

An agent's prompt grows every step, so two whole prompts of a healthy agent are always alike.
This detector looks only at what is *new* in each call (the messages appended since the run's
previous call, less the model's own previous answer) and at what the call returns (text and
tool calls). A step is a near-duplicate of an earlier one in the window when

- it calls the same tools, with the same numbers and ids in the arguments and the same numbers
  in the new tool results (a different order number or a new "45% done" is different work), and
- the content words of the two steps (normalised, function words dropped, so a rephrased
  thought still matches) are at least `threshold` alike by rapidfuzz's Indel similarity.

It fires when more than `abort_repeats` of the last `window` steps are near-duplicates.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field

from loopguard.detectors._escalation import Escalation, escalate
from loopguard.events import Event, Message, ModelEnd, ModelStart
from loopguard.normalize import anchors, canonical_args, clip, content_words
from loopguard.state import RunState
from loopguard.verdict import Action, Verdict

try:
    from rapidfuzz.distance import Indel as _Indel
except ImportError:  # pragma: no cover - rapidfuzz is a core dependency
    _Indel = None


class SimilarityConfig(Escalation):
    """Policy section `similarity`. Repeats count near-duplicate steps in the window."""

    threshold: float = Field(0.85, gt=0, le=1)
    """Indel similarity (0..1) of two steps' content words at which they are near-duplicates."""
    window: int = Field(8, ge=2, le=64)
    """How many recent model calls each call is compared with."""
    max_chars: int = Field(4000, ge=200, le=100_000)
    """Characters of a step's new input and of its output that are compared (head and tail)."""


@dataclass(slots=True)
class _Step:
    index: int
    words: str  # sorted content words
    names: tuple[str, ...]
    anchors: tuple[str, ...]
    empty: bool


class _Slot:
    __slots__ = ("seen", "new_input", "steps", "flags", "emitted")

    def __init__(self, window: int) -> None:
        self.seen = 0  # messages in the previous prompt
        self.new_input: list[Message] = []
        self.steps: deque[_Step] = deque(maxlen=window)
        self.flags: deque[_Step | None] = deque(maxlen=window)  # the step each one repeats
        self.emitted: dict[object, Action] = {}


class Similarity:
    name: ClassVar[str] = "similarity"
    events: ClassVar[tuple[type[Event], ...]] = (ModelStart, ModelEnd)

    def __init__(self, config: SimilarityConfig) -> None:
        self.config = config

    def __call__(self, state: RunState, event: Event) -> Verdict | None:
        slot = state.slot(self.name, lambda: _Slot(self.config.window))
        if type(event) is ModelStart:
            slot.new_input = _new_messages(event.messages, slot.seen)
            slot.seen = len(event.messages)
            return None
        return self._judge(state, slot, self._step(state, slot, event))  # type: ignore[arg-type]

    def _step(self, state: RunState, slot: _Slot, event: ModelEnd) -> _Step:
        limit = self.config.max_chars
        calls = [(c.name, canonical_args(c.args)) for c in event.tool_calls]
        arg_text = " ".join(a for _, a in calls)
        inputs = clip("\n".join(m.content for m in slot.new_input), limit)
        # Results echo the query ("no results for X"): the query's words are the call's, not news.
        words = content_words(inputs, drop=frozenset(content_words(arg_text)))
        words |= content_words(clip(event.text, limit) + " " + clip(arg_text, limit))
        words.update(calls_names := tuple(sorted(n for n, _ in calls)))
        return _Step(
            index=state.model_calls,
            words=" ".join(sorted(words)),
            names=calls_names,
            anchors=anchors(clip(arg_text, limit)) + ("|",) + anchors(inputs),
            empty=not event.text.strip() and not calls,
        )

    def _judge(self, state: RunState, slot: _Slot, step: _Step) -> Verdict | None:
        best, score = self._closest(slot, step)
        slot.steps.append(step)
        slot.flags.append(best)
        if best is not None:
            state.attributes["loopguard.similarity"] = round(score, 3)
        repeats = [f for f in slot.flags if f is not None]
        if not repeats:
            slot.emitted.clear()
            return None
        if best is None:
            return None
        first = min(f.index for f in repeats)
        period = step.index - best.index
        what = "an empty answer" if step.empty else (
            f"the same step (calling {', '.join(step.names)})" if step.names else "the same answer")
        return escalate(
            self.config, slot.emitted, None, self.name, len(repeats), 1,
            f"{len(repeats)} of the last {len(slot.flags)} model calls repeat an earlier one "
            f"(similarity {score:.2f}; this call repeats call {best.index})",
            f"You are repeating yourself: this is {what} as {period} step(s) ago, and "
            f"{len(repeats)} of your last {len(slot.flags)} steps repeated earlier ones. "
            "Change approach or finish.",
            start_step=first, period=period, repeats=len(repeats),
            similarity=round(score, 3))

    def _closest(self, slot: _Slot, step: _Step) -> tuple[_Step | None, float]:
        best, best_score = None, 0.0
        cutoff = self.config.threshold
        for earlier in reversed(slot.steps):
            if earlier.names != step.names or earlier.anchors != step.anchors:
                continue
            if step.empty or earlier.empty:
                score = 1.0 if step.empty and earlier.empty else 0.0
            elif earlier.words == step.words:
                score = 1.0
            elif _Indel is None:
                continue
            else:
                score = _Indel.normalized_similarity(earlier.words, step.words,
                                                     score_cutoff=cutoff)
            if score >= cutoff and score > best_score:
                best, best_score = earlier, score
                if score == 1.0:
                    break
        return best, best_score


def _new_messages(messages: list[Message], seen: int) -> list[Message]:
    """Messages the environment added since the previous call (not the model's own answer).

    When the prompt shrank (history summarised or trimmed), what follows the last assistant
    message is taken as new.
    """
    if len(messages) >= seen:
        tail = messages[seen:]
    else:
        last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
        tail = messages[last + 1:]
    return [m for m in tail if m.role != "assistant"]
