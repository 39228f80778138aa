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
    canonical_args, clip, content_words, identifiers, normalize_light, similar, similar_among, words,
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


_ANSWER = ((), ())  # the gate key of every answer: no tools, no argument identifiers


@dataclass(slots=True)
class _Step:
    index: int
    said: str  # the canonical arguments, or an answer's text (clipped)
    names: tuple[str, ...]
    key: tuple[tuple[str, ...], tuple[str, ...]] | None  # tools, argument identifiers; None: empty
    got: str = ""  # the environment's answer (clipped), set when the next call starts
    _words: str | None = None
    _light: str | None = None
    _result_ids: tuple[str, ...] | None = None
    _result: str | None = None

    # Everything below is worked out only for a step that passes the cheaper gates before it
    # (same key, then alike words): most steps of a healthy run never get that far.
    @property
    def words(self) -> str:
        """What it did: sorted argument words, or an answer's sorted content words."""
        if self._words is None:
            self._words = " ".join(sorted(words(self.said) if self.names
                                          else content_words(self.said)))
        return self._words

    @property
    def light(self) -> str:
        if self._light is None:
            self._light = normalize_light(self.got)
        return self._light

    @property
    def result_ids(self) -> tuple[str, ...]:
        """The identifiers in the environment's answer."""
        if self._result_ids is None:
            self._result_ids = identifiers(self.light)
        return self._result_ids

    @property
    def result(self) -> str:
        """The answer's words in order, less the words of the query it may echo."""
        if self._result is None:
            drop = frozenset(words(self.said)) if self.names else frozenset()
            self._result = " ".join(w for w in words(self.light) if w not in drop)
        return self._result


class _Slot:
    __slots__ = ("seen", "pending", "steps", "keys", "flags", "emitted")

    def __init__(self, window: int, span: int) -> None:
        self.seen = 0  # messages in the previous prompt
        self.pending: _Step | None = None  # the last call's output, awaiting its results
        self.steps: deque[_Step] = deque(maxlen=window)
        # The steps in the window by key, oldest first: a step is compared only with these.
        self.keys: dict[object, list[_Step]] = {}
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
        seen, slot.seen = slot.seen, len(messages)
        step, slot.pending = slot.pending, None
        if step is None:
            return None
        step.got = clip(_new_text(messages, seen), self.config.max_chars)
        return self._judge(state, slot, step)

    def _output(self, state: RunState, event: ModelEnd) -> _Step:
        limit = self.config.max_chars
        calls = event.tool_calls
        if calls:
            # A tool step is what it does: its arguments, words sorted (a reworded query still
            # matches). The commentary around a call is ignored.
            said = clip(" ".join([canonical_args(c.args) for c in calls]), limit)
            names = tuple(sorted([c.name for c in calls]))
            return _Step(state.model_calls, said, names, (names, identifiers(said)))
        text = event.text
        empty = not text or text.isspace()
        return _Step(state.model_calls, clip(text, limit), (), None if empty else _ANSWER)

    def _judge(self, state: RunState, slot: _Slot, step: _Step) -> Verdict | None:
        best, score = self._closest(slot, step)
        _remember(slot, step)
        slot.flags.append(best.index if best is not None else None)
        if best is None:
            if slot.emitted and all(f is None for f in slot.flags):
                slot.emitted.clear()
            return None
        repeats = [f for f in slot.flags if f is not None]
        state.attributes["loopguard.similarity"] = round(score, 3)
        index = step.index
        period = index - best.index
        what = ("an empty answer" if step.key is None else
                f"the same step (calling {', '.join(step.names)})" if step.names else
                "the same answer")
        return escalate(
            self.config, slot.emitted, None, self.name, len(repeats), 1,
            f"{len(repeats)} of the last {len(slot.flags)} steps repeat an earlier one "
            f"(step {index} repeats step {best.index}, similarity {score:.2f})",
            f"You are repeating yourself: step {index} was {what} as step {best.index}, with "
            f"the same result, and {len(repeats)} of your last {len(slot.flags)} steps repeated "
            "earlier ones. Change approach or finish.",
            start_step=min(repeats), period=period, repeats=len(repeats),
            similarity=round(score, 3))

    def _closest(self, slot: _Slot, step: _Step) -> tuple[_Step | None, float]:
        gated = slot.keys.get(step.key)  # the same tools and argument identifiers
        if not gated:
            return None, 0.0
        if step.key is None:  # a model answering nothing, again
            return gated[-1], 1.0
        # What the model did, against every candidate in one C call; the environment's
        # answers only for those that pass.
        found = similar_among(step.words, [e.words for e in gated], self.config.threshold)
        best, best_score = None, 0.0
        for i, alike in sorted(found, reverse=True):  # most recent first: ties go to it
            earlier = gated[i]
            if alike <= best_score or earlier.result_ids != step.result_ids:
                continue
            score = min(alike, similar(earlier.result, step.result, self.config.input_threshold))
            if score > best_score:
                best, best_score = earlier, score
                if score == 1.0:
                    break
        return best, best_score


def _remember(slot: _Slot, step: _Step) -> None:
    """Add `step` to the window; the oldest step leaves it when it is full."""
    steps = slot.steps
    if len(steps) == steps.maxlen:
        gone = steps[0].key
        group = slot.keys[gone]
        del group[0]  # keys hold steps in order, so the oldest step is first in its own
        if not group:
            del slot.keys[gone]
    steps.append(step)
    group = slot.keys.get(step.key)
    if group is None:
        slot.keys[step.key] = [step]
    else:
        group.append(step)


def _new_text(messages: list[Message], seen: int) -> str:
    """What the environment added since the previous call (not the model's own answer).

    When the prompt shrank (history summarised or trimmed), what follows the last assistant
    message is taken as new.
    """
    if len(messages) >= seen:
        tail = messages[seen:]
    else:
        last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
        tail = messages[last + 1:]
    return "\n".join([m.content for m in tail if m.role != "assistant"])
