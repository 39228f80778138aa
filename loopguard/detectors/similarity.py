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
does not grow with the run. The conditions are checked cheapest first: a step meets only the
steps with its tools and the digits of its arguments (a dict lookup), then the words of all of
those in one C call; identifiers and results are worked out only for the few that pass.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, PositiveInt, model_validator

from loopguard.detectors._escalation import Escalation, escalate, forget
from loopguard.events import Event, Message, ModelEnd, ModelStart
from loopguard.normalize import (
    canonical_args,
    clip,
    content_words,
    identifiers,
    mask_volatile,
    similar,
    similar_among,
    words,
)
from loopguard.state import RunState
from loopguard.verdict import Action, Verdict


class SimilarityConfig(Escalation):
    """Policy section `similarity`. Repeats count near-duplicate steps in the window."""

    # Nudged only when nearly every recent step repeats: one repeated check between different
    # attempts (a test run after each fix) is warned, never nudged, so `nudge_once` cannot
    # turn it into a stop.
    nudge_repeats: PositiveInt | None = 3
    abort_repeats: PositiveInt | None = 3

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
                raise ValueError(
                    f"{key} ({value}) must be below span ({self.span}): repeats "
                    f"are counted over the last span steps"
                )
        return self


_ANSWER = ((), b"")  # the key of every answer that is not empty
_NOT_DIGITS = bytes(c for c in range(256) if not 48 <= c <= 57)


@dataclass(slots=True)
class _Step:
    index: int
    said: str  # the canonical arguments, or an answer's text (clipped)
    tools: tuple[str, ...] | None  # the tools called, sorted; None for an empty answer
    key: object  # (tools, the digits in the arguments); None for an empty answer
    got: str = ""  # the environment's answer (clipped), set when the next call starts
    _words: str | None = None
    _result: str | None = None
    _ids: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    # Worked out only when needed: most steps of a healthy run never meet a step with their
    # key, or differ from it in their words.
    @property
    def words(self) -> str:
        """What it did: sorted argument words, or an answer's sorted content words."""
        if self._words is None:
            self._words = " ".join(
                sorted(words(self.said) if self.tools else content_words(self.said))
            )
        return self._words

    @property
    def result(self) -> str:
        """The environment's answer in words, in order, less the words of the query it echoes."""
        if self._result is None:
            light = mask_volatile(self.got)
            drop = frozenset(words(self.said)) if self.tools else frozenset()
            self._result = " ".join([w for w in words(light) if w not in drop])
        return self._result

    @property
    def ids(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The identifiers in the arguments, and in the environment's answer."""
        if self._ids is None:
            self._ids = (
                identifiers(self.said) if self.tools else (),
                identifiers(mask_volatile(self.got)),
            )
        return self._ids


class _Slot:
    __slots__ = ("emitted", "flags", "keys", "pending", "seen", "steps")

    def __init__(self, window: int, span: int) -> None:
        self.seen = 0  # messages in the previous prompt
        self.pending: _Step | None = None  # the last call's output, awaiting its results
        self.steps: deque[_Step] = deque(maxlen=window)
        # The steps in the window by key, oldest first, with their words ("" until a second
        # step with that key comes): a step is compared only with these.
        self.keys: dict[object, tuple[list[_Step], list[str]]] = {}
        self.flags: deque[int | None] = deque(maxlen=span)  # the step each one repeats
        self.emitted: dict[object, Action] = {}


class Similarity:
    name: ClassVar[str] = "similarity"
    events: ClassVar[tuple[type[Event], ...]] = (ModelStart, ModelEnd)

    def __init__(self, config: SimilarityConfig) -> None:
        self.config = config
        self._new_slot = lambda: _Slot(config.window, config.span)

    def __call__(self, state: RunState, event: ModelStart | ModelEnd) -> Verdict | None:
        slot: _Slot = state.slot(self.name, self._new_slot)
        if type(event) is ModelEnd:
            slot.pending = self._output(state, event)
            return None
        messages = event.messages
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
            tools = tuple(sorted([c.name for c in calls]))
            # The digits in the arguments are all in their identifiers, and cost far less to
            # find: calls on different items (order 5001, order 5002) part here.
            digits = said.encode("utf-8", "surrogatepass").translate(None, _NOT_DIGITS)
            return _Step(state.model_calls, said, tools, (tools, digits))
        text = event.text
        if not text or text.isspace():
            return _Step(state.model_calls, "", None, None)
        return _Step(state.model_calls, clip(text, limit), (), _ANSWER)

    def _judge(self, state: RunState, slot: _Slot, step: _Step) -> Verdict | None:
        best, score = self._closest(slot, step)
        _remember(slot, step)
        slot.flags.append(best.index if best is not None else None)
        if best is None:
            if slot.emitted and all(f is None for f in slot.flags):
                forget(self.config, slot.emitted)
            return None
        repeats = [f for f in slot.flags if f is not None]
        state.attributes["loopguard.similarity"] = round(score, 3)
        index = step.index
        period = index - best.index
        what = (
            "an empty answer"
            if step.tools is None
            else f"the same step (calling {', '.join(step.tools)})"
            if step.tools
            else "the same answer"
        )
        return escalate(
            self.config,
            slot.emitted,
            None,
            self.name,
            len(repeats),
            1,
            f"{len(repeats)} of the last {len(slot.flags)} steps repeat an earlier one "
            f"(step {index} repeats step {best.index}, similarity {score:.2f})",
            f"You are repeating yourself: step {index} was {what} as step {best.index}, with "
            f"the same result, and {len(repeats)} of your last {len(slot.flags)} steps repeated "
            "earlier ones. Change approach or finish.",
            start_step=min(repeats),
            period=period,
            repeats=len(repeats),
            similarity=round(score, 3),
        )

    def _closest(self, slot: _Slot, step: _Step) -> tuple[_Step | None, float]:
        found = slot.keys.get(step.key)  # the same tools, the same digits in the arguments
        if found is None:
            return None, 0.0
        steps, their_words = found
        if step.key is None:  # a model answering nothing, again
            return steps[-1], 1.0
        if not their_words[0]:  # only the oldest can lack them: the others met one
            their_words[0] = steps[0].words
        # What the model did, against every candidate in one C call; the environment's
        # answers only for those that pass.
        alike = similar_among(step.words, their_words, self.config.threshold)
        if not alike:
            return None, 0.0
        best, best_score = None, 0.0
        for i, said in sorted(alike, reverse=True):  # most recent first: ties go to it
            earlier = steps[i]
            if said <= best_score or earlier.ids != step.ids:
                continue
            score = min(said, similar(earlier.result, step.result, self.config.input_threshold))
            if score > best_score:
                best, best_score = earlier, score
                if score == 1.0:
                    break
        return best, best_score


def _remember(slot: _Slot, step: _Step) -> None:
    """Add `step` to the window; the oldest step leaves it when it is full."""
    if len(slot.steps) == slot.steps.maxlen:
        gone = slot.steps[0].key
        steps, their_words = slot.keys[gone]
        del steps[0], their_words[0]  # lists are in order: the oldest step is first in its own
        if not steps:
            del slot.keys[gone]
    slot.steps.append(step)
    found = slot.keys.get(step.key)
    if found is None:
        slot.keys[step.key] = ([step], [""])
    else:
        found[0].append(step)
        found[1].append(step.words)


def _new_text(messages: list[Message], seen: int) -> str:
    """What the environment added since the previous call (not the model's own answer).

    When the prompt shrank (history summarised or trimmed), what follows the last assistant
    message is taken as new.
    """
    if len(messages) >= seen:
        tail = messages[seen:]
    else:
        last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
        tail = messages[last + 1 :]
    return "\n".join([m.content for m in tail if m.role != "assistant"])
