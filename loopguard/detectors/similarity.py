"""Repeated steps: near-duplicate model calls, judged on what each call does and gets back.

An agent's prompt grows every step, so two whole prompts of a healthy agent are always alike.
This detector looks at steps instead: a step is what one model call returned (its text and tool
calls) together with what the environment answered (the messages appended before the next
call, so results are paired with the call that caused them). Step k is judged when call k+1
starts, so an abort means call k+1 never goes out. Two steps are near-duplicates when

- they call the same tools with the same identifiers (numbers, ids, paths, snake_case names) in
  the arguments, and the results hold the same identifiers (a different order number or a new
  "45% done" is different work),
- what the model did is at least `threshold` alike by rapidfuzz's Indel similarity: for a tool
  step its arguments with their words sorted (a reworded query still matches), for an answer
  its content words (function words dropped, so a rephrased thought still matches), and
- the environment's answers are at least `input_threshold` alike, in order (words of the
  query echoed in a result do not count), so a file that changes is not a repeat.

An empty answer (no text, no tool call) repeats any earlier empty answer. It fires when more
than `abort_repeats` of the last `span` steps are near-duplicates of an earlier step (looked
for among the last `window`); each step is compared with at most `window` others, so the cost
does not grow with the run.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, model_validator

from loopguard.detectors._escalation import Escalation, escalate
from loopguard.events import Event, Message, ModelEnd, ModelStart
from loopguard.normalize import (
    canonical_args, clip, content_words, identifiers, normalize_light, similar, similar_to_each,
    words,
)
from loopguard.state import RunState
from loopguard.verdict import Action, Verdict


class SimilarityConfig(Escalation):
    """Policy section `similarity`. Repeats count near-duplicate steps in the window."""

    threshold: float = Field(0.85, gt=0, le=1)
    """How alike (0..1) the model's words in two steps must be for a near-duplicate."""
    input_threshold: float = Field(0.95, gt=0, le=1)
    """How alike (0..1) the environment's answers in two steps must be for a near-duplicate."""
    window: int = Field(8, ge=2, le=64)
    """How many recent steps each step is compared with (the longest loop period found)."""
    span: int = Field(4, ge=2, le=64)
    """Repeats are counted over this many recent steps: a loop leaves few fresh steps in it,
    an agent trying different things between two identical steps leaves many."""
    max_chars: int = Field(4000, ge=200, le=100_000)
    """Characters of a step's output and of its results that are compared (head and tail)."""

    @model_validator(mode="after")
    def _span_fits(self) -> SimilarityConfig:
        for key in ("warn_repeats", "nudge_repeats", "abort_repeats"):
            value = getattr(self, key)
            if value is not None and value >= self.span:
                raise ValueError(f"{key} ({value}) must be below span ({self.span}): repeats "
                                 f"are counted over the last span steps")
        return self


@dataclass(slots=True)
class _Output:
    index: int
    said: str  # the canonical arguments, or an answer's text (clipped)
    names: tuple[str, ...]
    ids: tuple[str, ...]
    empty: bool
    _words: str | None = None
    _arg_words: frozenset[str] | None = None

    # Words are worked out only when another step passes the exact gates (same tools, same
    # identifiers): most steps of a healthy run never get that far.
    @property
    def words(self) -> str:
        """What it did: sorted argument words, or an answer's sorted content words."""
        if self._words is None:
            self._words = " ".join(sorted(words(self.said) if self.names
                                          else content_words(self.said)))
        return self._words

    @property
    def arg_words(self) -> frozenset[str]:
        if self._arg_words is None:
            self._arg_words = frozenset(words(self.said)) if self.names else frozenset()
        return self._arg_words


@dataclass(slots=True)
class _Step:
    out: _Output
    light: str  # the environment's answer, lightly normalised
    ids: tuple[str, ...]
    _result: str | None = None

    @property
    def result(self) -> str:
        """The answer's words in order, less the words of the query it may echo."""
        if self._result is None:
            drop = self.out.arg_words
            self._result = " ".join(w for w in words(self.light) if w not in drop)
        return self._result


class _Slot:
    __slots__ = ("seen", "pending", "steps", "flags", "emitted")

    def __init__(self, window: int, span: int) -> None:
        self.seen = 0  # messages in the previous prompt
        self.pending: _Output | None = None  # the last call's output, awaiting its results
        self.steps: deque[_Step] = deque(maxlen=window)
        self.flags: deque[int | None] = deque(maxlen=span)  # the step each one repeats
        self.emitted: dict[object, Action] = {}


class Similarity:
    name: ClassVar[str] = "similarity"
    events: ClassVar[tuple[type[Event], ...]] = (ModelStart, ModelEnd)

    def __init__(self, config: SimilarityConfig) -> None:
        self.config = config

    def __call__(self, state: RunState, event: Event) -> Verdict | None:
        slot: _Slot = state.slot(self.name, lambda: _Slot(self.config.window, self.config.span))
        if type(event) is ModelEnd:
            slot.pending = self._output(state, event)  # type: ignore[arg-type]
            return None
        messages = event.messages  # type: ignore[attr-defined]
        new = _new_messages(messages, slot.seen)
        slot.seen = len(messages)
        out, slot.pending = slot.pending, None
        if out is None:
            return None
        return self._judge(state, slot, self._step(out, new))

    def _output(self, state: RunState, event: ModelEnd) -> _Output:
        limit = self.config.max_chars
        calls = [(c.name, canonical_args(c.args)) for c in event.tool_calls]
        if calls:
            # A tool step is what it does: its arguments, words sorted (a reworded query still
            # matches). The commentary around a call is ignored.
            said = clip(" ".join(a for _, a in calls), limit)
            return _Output(state.model_calls, said, tuple(sorted(n for n, _ in calls)),
                           identifiers(said), False)
        return _Output(state.model_calls, clip(event.text, limit), (), (),
                       not event.text.strip())

    def _step(self, out: _Output, new: list[Message]) -> _Step:
        text = clip("\n".join(m.content for m in new), self.config.max_chars)
        light = normalize_light(text)
        return _Step(out, light, out.ids + ("|",) + identifiers(light))

    def _judge(self, state: RunState, slot: _Slot, step: _Step) -> Verdict | None:
        best, score = self._closest(slot, step)
        slot.steps.append(step)
        slot.flags.append(best.out.index if best is not None else None)
        repeats = [f for f in slot.flags if f is not None]
        if not repeats:
            slot.emitted.clear()
            return None
        if best is None:
            return None
        state.attributes["loopguard.similarity"] = round(score, 3)
        index = step.out.index
        period = index - best.out.index
        what = ("an empty answer" if step.out.empty else
                f"the same step (calling {', '.join(step.out.names)})" if step.out.names else
                "the same answer")
        return escalate(
            self.config, slot.emitted, None, self.name, len(repeats), 1,
            f"{len(repeats)} of the last {len(slot.flags)} steps repeat an earlier one "
            f"(step {index} repeats step {best.out.index}, similarity {score:.2f})",
            f"You are repeating yourself: step {index} was {what} as step {best.out.index}, with "
            f"the same result, and {len(repeats)} of your last {len(slot.flags)} steps repeated "
            "earlier ones. Change approach or finish.",
            start_step=min(repeats), period=period, repeats=len(repeats),
            similarity=round(score, 3))

    def _closest(self, slot: _Slot, step: _Step) -> tuple[_Step | None, float]:
        out = step.out
        gated = []  # the same tools and identifiers; most recent first
        for earlier in reversed(slot.steps):
            if out.empty and earlier.out.empty:  # a model answering nothing, again
                return earlier, 1.0
            if (earlier.out.names == out.names and earlier.ids == step.ids
                    and not out.empty and not earlier.out.empty):
                gated.append(earlier)
        if not gated:
            return None, 0.0
        # What the model did, against every candidate in one C call; the environment's
        # answers only for those that pass.
        said = similar_to_each(out.words, [e.out.words for e in gated], self.config.threshold)
        best, best_score = None, 0.0
        for earlier, alike in zip(gated, said):
            if alike <= best_score:
                continue
            score = min(alike, similar(earlier.result, step.result, self.config.input_threshold))
            if score > best_score:
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
