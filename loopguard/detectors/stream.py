"""Streaming loops: a model repeating itself mid-answer, stopped before more tokens are billed.

Streamed chunks are gathered into lines. Prose lines go, case- and space-folded, into a window
of the answer's last `window_chars`; each time a line completes (or a long line passes 256
characters) the detector asks whether the window ends in the same passage repeated back to
back, looking only at the few earlier places where the window's last characters occur (a C
string search), so each chunk costs O(1) amortised however long the answer. A passage must
be at least `min_period_chars` long and hold at least three different characters, so a long
run of one character ("=====", "....") is never a loop.

What legitimately repeats is kept out: code blocks (between ``` fences) and table rows are not
looked at, headings are not prose, and list items are compared as whole items (an item must
recur `list_repeats` times, exactly, numbers included, so "Row 1: OK", "Row 2: OK" is a list
and not a loop). A cap on the output of one call (`max_output_tokens`, estimated from the
streamed characters) stops an answer that runs away without repeating.

A stream cannot be nudged mid-answer, so there are two levels: warn, then abort.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from loopguard.events import Event, Token
from loopguard.normalize import digest, normalize_light
from loopguard.state import RunState
from loopguard.tokens import CHARS_PER_TOKEN
from loopguard.verdict import Verdict, abort, warn

_MAX_LINE = 256  # a line longer than this is looked at in pieces
_CANDIDATES = 4  # earlier occurrences of the window's tail tried as the start of a period
_MAX_ITEMS = 512
_LIST_ITEM = re.compile(r"(?:[-*+]|\d{1,3}[.)])\s+(.*)")


class StreamConfig(BaseModel):
    """Policy section `stream`."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)

    enabled: bool = True
    """Run this detector at all."""
    warn_repeats: PositiveInt | None = 3
    """Warn when a passage has been streamed this many times back to back."""
    abort_repeats: PositiveInt | None = 5
    """Abort the stream when a passage has been streamed this many times back to back."""
    min_period_chars: int = Field(16, ge=4, le=2000)
    """Shortest passage that counts as repeated."""
    min_repeated_chars: int = Field(200, ge=16, le=100_000)
    """The repeated passages together must be at least this long before any verdict."""
    window_chars: int = Field(4000, ge=256, le=100_000)
    """Characters of prose kept per answer; the longest passage found is a fraction of it."""
    list_repeats: PositiveInt | None = 5
    """Abort when the same list item (exactly, after case/space folding) recurs this often."""
    min_item_chars: int = Field(20, ge=1, le=1000)
    """List items shorter than this are never counted as repeats ("- N/A")."""
    max_output_tokens: PositiveInt | None = 32_000
    """Abort one answer at this many output tokens (estimated at 3.5 characters a token)."""

    @model_validator(mode="after")
    def _ordered(self) -> StreamConfig:
        if (
            self.warn_repeats is not None
            and self.abort_repeats is not None
            and self.warn_repeats > self.abort_repeats
        ):
            raise ValueError(
                f"warn_repeats ({self.warn_repeats}) must not be above "
                f"abort_repeats ({self.abort_repeats})"
            )
        return self


class _Slot:
    __slots__ = ("chars", "in_code", "items", "kind", "pending", "prose", "step", "warned")

    def __init__(self) -> None:
        self.reset(0)

    def reset(self, step: int) -> None:
        self.pending = ""  # the line being streamed
        self.kind: str | None = None  # kind of a long line already looked at in part
        self.prose = ""
        self.in_code = False
        self.items: dict[str, int] = {}
        self.chars = 0
        self.warned = False
        self.step = step


class StreamRepeat:
    name: ClassVar[str] = "stream"
    # Only streamed chunks: an answer's state is reset by its first chunk (the guard counts a
    # call at its start, so during call k `state.model_calls` is k), which spares every model
    # call two detector calls.
    events: ClassVar[tuple[type[Event], ...]] = (Token,)
    # It gathers text into lines anyway: pieces ending at a line end change nothing but the
    # abort point of a long line or of max_output_tokens (see Guard.token_piece).
    token_pieces: ClassVar[bool] = True

    def __init__(self, config: StreamConfig) -> None:
        self.config = config
        self._max_chars = (
            None if config.max_output_tokens is None else config.max_output_tokens * CHARS_PER_TOKEN
        )

    def __call__(self, state: RunState, event: Token) -> Verdict | None:
        slot: _Slot = state.slot(self.name, _Slot)
        if slot.step != state.model_calls:  # the first chunk of a new answer
            slot.reset(state.model_calls)
        text = event.text
        slot.chars += len(text)
        if self._max_chars is not None and slot.chars > self._max_chars:
            return abort(
                self.name,
                f"one answer streamed over max_output_tokens="
                f"{self.config.max_output_tokens} (about {slot.chars:,} characters)",
                limit="max_output_tokens",
                chars=slot.chars,
                start_step=slot.step,
            )
        pending = slot.pending + text
        if "\n" not in text and len(pending) < _MAX_LINE:
            slot.pending = pending
            return None
        lines = pending.split("\n")
        slot.pending = lines.pop()
        verdict = None
        for line in lines:
            verdict = self._line(slot, line, complete=True) or verdict
        if len(slot.pending) >= _MAX_LINE:
            verdict = self._line(slot, slot.pending, complete=False) or verdict
            slot.pending = ""
        return verdict

    def _line(self, slot: _Slot, line: str, *, complete: bool) -> Verdict | None:
        kind = slot.kind or self._kind(slot, line)
        slot.kind = None if complete else kind
        if kind == "list":
            return self._item(slot, line)
        if kind != "prose":
            return None
        slot.prose = (slot.prose + " " + normalize_light(line))[-self.config.window_chars :]
        return self._periodic(slot)

    @staticmethod
    def _kind(slot: _Slot, line: str) -> str:
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            slot.in_code = not slot.in_code
            return "fence"
        if slot.in_code:
            return "code"
        if not stripped:
            return "blank"
        if stripped[0] == "|":
            return "table"
        if stripped[0] == "#":
            slot.items.clear()  # a new section may list the same items again
            return "heading"
        if _LIST_ITEM.match(stripped):
            return "list"
        return "prose"

    def _item(self, slot: _Slot, line: str) -> Verdict | None:
        cfg = self.config
        m = _LIST_ITEM.match(line.strip())
        key = normalize_light(m.group(1) if m else line)
        if cfg.list_repeats is None or len(key) < cfg.min_item_chars:
            return None
        count = slot.items.get(key, 0) + 1
        if count == 1 and len(slot.items) >= _MAX_ITEMS:
            return None
        slot.items[key] = count
        if count >= cfg.list_repeats:
            # The passage itself is content: the verdict carries its size and digest.
            return abort(
                self.name,
                f"a list item of {len(key)} characters was streamed {count} times in one answer",
                repeats=count - 1,
                start_step=slot.step,
                passage_chars=len(key),
                passage_digest=digest(key),
                similarity=1.0,
            )
        return None

    def _periodic(self, slot: _Slot) -> Verdict | None:
        cfg = self.config
        found = _repeated_tail(slot.prose, cfg.min_period_chars, cfg.min_repeated_chars)
        if found is None:
            return None
        period, copies = found
        passage = slot.prose[-period:].strip()
        evidence = dict(
            period_chars=period,
            repeats=copies - 1,
            start_step=slot.step,
            passage_digest=digest(passage),
            similarity=1.0,
        )
        reason = f"the answer repeats a {period}-character passage {copies} times"
        if cfg.abort_repeats is not None and copies >= cfg.abort_repeats:
            return abort(self.name, reason, **evidence)
        if cfg.warn_repeats is not None and copies >= cfg.warn_repeats and not slot.warned:
            slot.warned = True
            return warn(self.name, reason, **evidence)
        return None


def _repeated_tail(buf: str, min_period: int, min_total: int) -> tuple[int, int] | None:
    """(period, copies) when `buf` ends in at least two back-to-back copies of a passage of
    `min_period`+ characters (with 3+ distinct characters) covering `min_total`+ characters."""
    size = len(buf)
    if size < min_total:
        return None
    needle = buf[-min_period:]
    tail_at = size - min_period
    hi = size - min_period  # an earlier occurrence must end at least min_period before the end
    for _ in range(_CANDIDATES):
        pos = buf.rfind(needle, 0, hi)
        if pos < 0:
            return None
        period = tail_at - pos
        if 2 * period > size:
            return None
        unit = buf[-period:]
        if len(set(unit)) - (" " in unit) >= 3:
            copies = 1
            while (copies + 1) * period <= size and buf[
                size - (copies + 1) * period : size - copies * period
            ] == unit:
                copies += 1
            if copies >= 2 and copies * period >= min_total:
                return period, copies
        hi = pos + min_period - 1
    return None
