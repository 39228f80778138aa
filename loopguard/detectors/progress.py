"""Stalls: alike steps that bring back almost nothing new to the run.

Real loops are rarely exact: an orchestrator rewords the same instruction and its web agent
describes the same page in fresh words; a listing tool ignores its offset and returns the same
page for every call. What they share is that the agent learns nothing. Each finished tool call
is measured by the progress signal (`_progress.novelty`: the share of its result's words and
identifiers that no earlier result of the run held, volatile parts masked). A call is *stale*
when at most `max_new` of its result is new and it is alike in kind to an earlier call of the
same tool among the last `window`:

- its arguments are alike: the same identifiers, and at least `args_alike` of the content words
  of the shorter found in the other ("Lisbon forecast tomorrow", "tomorrow's temperature
  Lisbon"), or
- it brought back a rich result (at least `min_terms` distinct words and ids) that is the same,
  in at least `same_result` of its terms (Jaccard), as the earlier call's: the same rich result
  for different arguments (a listing that ignores its offset, the same page at every URL).

A short result for different arguments ("200 OK" for each URL of a fan-out) is never stale,
nor is a batch of updates over different records, each returning its own record. Repeats count
the stale calls among the last `window` tool calls and escalate warn, nudge, abort.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, model_validator

from loopguard.detectors._calls import finished, started
from loopguard.detectors._escalation import Escalation, escalate, forget
from loopguard.detectors._progress import novelty
from loopguard.events import Event, ToolEnd, ToolStart
from loopguard.normalize import content_words, identifiers
from loopguard.state import RunState
from loopguard.verdict import Action, Verdict


class ProgressConfig(Escalation):
    """Policy section `progress`. Repeats count stale tool calls among the last `window`."""

    max_new: float = Field(0.1, ge=0, lt=1)
    """A result with at most this share of new words and ids brings nothing new."""
    window: int = Field(8, ge=2, le=64)
    """Stale calls are counted among this many recent tool calls."""
    min_terms: int = Field(12, ge=1)
    """A result with at least this many distinct words and ids is rich: the same rich result
    counts as a stall whatever the arguments."""
    same_result: float = Field(0.75, gt=0, le=1)
    """How alike (Jaccard of words and ids) two rich results must be to be the same."""
    args_alike: float = Field(0.5, gt=0, le=1)
    """Share of the shorter call's argument words found in the other for alike arguments."""

    @model_validator(mode="after")
    def _fits_window(self) -> ProgressConfig:
        for key in ("warn_repeats", "nudge_repeats", "abort_repeats"):
            value = getattr(self, key)
            if value is not None and value >= self.window:
                raise ValueError(
                    f"{key} ({value}) must be below window ({self.window}): stale calls are "
                    "counted among the last window tool calls"
                )
        return self


# A key of the canonical arguments ({key:"value",...}): the values say what a call is about.
_KEY = re.compile(r"(?<=[{,])[^:{}\[\],\"]+:")
_DELIMITERS = str.maketrans({c: " " for c in '"`(){}[],;=<>|'})
_EDGES = ".:-#!?%$*'"


@dataclass(slots=True)
class _Call:
    tool: str
    args: str
    step: int
    new: float  # the share of the result that was new
    terms: frozenset[str] | None  # the result's terms, when rich
    _ids: frozenset[str] | None = None
    _words: frozenset[str] | None = None

    # Worked out only when a call meets an earlier one of its tool, words only when the
    # identifiers agree.
    @property
    def ids(self) -> frozenset[str]:
        """The identifiers in the argument values (paths, urls, numbers, compared whole)."""
        if self._ids is None:
            self._ids = frozenset(identifiers(_KEY.sub(" ", self.args)))
        return self._ids

    @property
    def words(self) -> frozenset[str]:
        """The content words of the argument values, identifiers left out."""
        if self._words is None:
            plain = " ".join(
                word
                for token in _KEY.sub(" ", self.args).translate(_DELIMITERS).split()
                if (word := token.strip(_EDGES).removesuffix("'s")).isalpha()
            )
            self._words = frozenset(content_words(plain))
        return self._words


class _Slot:
    __slots__ = ("calls", "emitted", "stale")

    def __init__(self, window: int) -> None:
        self.calls: deque[_Call] = deque(maxlen=window)
        self.stale: deque[bool] = deque(maxlen=window)
        self.emitted: dict[object, Action] = {}


class Progress:
    name: ClassVar[str] = "progress"
    events: ClassVar[tuple[type[Event], ...]] = (ToolStart, ToolEnd)

    def __init__(self, config: ProgressConfig) -> None:
        self.config = config
        self._new_slot = lambda: _Slot(config.window)

    def __call__(self, state: RunState, event: ToolStart | ToolEnd) -> Verdict | None:
        cfg = self.config
        if type(event) is ToolStart:
            started(state, event)
            return None
        slot: _Slot = state.slot(self.name, self._new_slot)
        tool, args, step, _ = finished(state, event)
        found = novelty(state, event)
        share = found.fraction
        call = _Call(tool, args, step, share, found.terms if found.total >= cfg.min_terms else None)
        # Most results bring something new: then only a stall in the window makes the kind
        # of the call matter (a new action ends it).
        quiet = share > cfg.max_new
        alike = self._alike(slot, call) if not quiet or any(slot.stale) else True
        stale = alike and not quiet
        if not alike:
            # A new action (arguments unlike any earlier call of its tool): the agent is trying
            # something else, so what was stale before it no longer counts.
            for i in range(len(slot.stale)):
                slot.stale[i] = False
        slot.calls.append(call)
        slot.stale.append(stale)
        if not stale:
            if not any(slot.stale):
                forget(cfg, slot.emitted)
            return None
        repeated = sum(slot.stale)
        stalled = [c for c, s in zip(slot.calls, slot.stale, strict=True) if s]
        shares = [round(c.new, 3) for c in stalled]
        return escalate(
            cfg,
            slot.emitted,
            None,
            self.name,
            repeated,
            1,
            f"{repeated} of the last {len(slot.calls)} tool calls were alike and brought back "
            f"almost nothing new (at most {cfg.max_new:.0%} new words and ids; the latest "
            f"{share:.0%})",
            f"Your last {len(slot.calls)} tool calls brought back almost nothing you had not "
            f"already seen ({repeated} of them alike, with the same results). Change approach "
            "or finish.",
            start_step=stalled[0].step,
            steps=[c.step for c in stalled],
            new=shares,
            tools=sorted({c.tool for c in stalled}),
        )

    def _alike(self, slot: _Slot, call: _Call) -> bool:
        """Whether an earlier call of the window is of the same kind as `call`."""
        cfg = self.config
        for earlier in reversed(slot.calls):
            if earlier.tool != call.tool:
                continue
            if call.terms is not None and earlier.terms is not None:
                union = len(call.terms | earlier.terms)
                if len(call.terms & earlier.terms) >= cfg.same_result * union:
                    return True
            if call.ids != earlier.ids:
                continue
            said, their_said = call.words, earlier.words
            shorter = min(len(said), len(their_said))
            if shorter == 0 or len(said & their_said) >= cfg.args_alike * shorter:
                return True
        return False
