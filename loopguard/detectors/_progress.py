"""The progress signal: how much of what a tool call brings back is new to the run.

A step's *novelty* is the share of the distinct content words and identifiers of its result
(`normalize.terms`: volatile parts such as "8 seconds ago" masked) that no earlier result of the
run held. A loop brings back what the run has already seen, however its calls are worded; a
healthy agent, even one repeating the same kind of call over a batch, keeps meeting new names,
numbers and ids.

The vocabulary is per run and bounded: two generations of at most `VOCABULARY` terms each. When
the current one fills up it becomes the previous one and the oldest is dropped, so a term not
met for a long while may count as new again, and memory stays flat however long the run. Each
result is measured once per event and shared through one slot of the run (`progress`, and any
detector that needs it).
"""

from __future__ import annotations

from typing import NamedTuple

from loopguard.events import Event, ToolEnd
from loopguard.normalize import clip, terms
from loopguard.state import RunState

_SLOT = "_progress"
VOCABULARY = 4096
"""Terms per generation of a run's vocabulary (at most two generations are kept)."""
MAX_CHARS = 16_000
"""Characters of a result that are read (head and tail), so a huge result costs no more."""


class Novelty(NamedTuple):
    new: int  # distinct terms no earlier result of the run held
    total: int  # distinct terms of this result
    terms: frozenset[str] = frozenset()  # the terms themselves

    @property
    def fraction(self) -> float:
        """The share of this result's terms that are new (0 for an empty result)."""
        return self.new / self.total if self.total else 0.0


class _Vocabulary:
    __slots__ = ("current", "event", "previous", "result")

    def __init__(self) -> None:
        self.current: set[str] = set()
        self.previous: set[str] = set()
        self.event: Event | None = None  # the last result measured (detectors share it)
        self.result = Novelty(0, 0)


def novelty(state: RunState, event: ToolEnd) -> Novelty:
    """How much of `event`'s result is new to the run; the run's vocabulary learns it."""
    vocab: _Vocabulary = state.slot(_SLOT, _Vocabulary)
    if vocab.event is event:
        return vocab.result
    found = terms(clip(event.output, MAX_CHARS))
    # Binary differences walk the result's terms, not the vocabulary (a difference with several
    # sets at once walks every one of them); only the few unseen terms are added.
    unseen = found - vocab.current
    new = len(unseen - vocab.previous) if unseen else 0
    vocab.current.update(unseen)
    if len(vocab.current) >= VOCABULARY:
        vocab.previous, vocab.current = vocab.current, set()
    vocab.event, vocab.result = event, Novelty(new, len(found), found)
    return vocab.result
