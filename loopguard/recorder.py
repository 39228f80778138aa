"""The flight recorder: every event the guard sees, as JSON Lines (format v2, docs/events.md).

A `Sink`: `Guard(sinks=[FlightRecorder("runs.jsonl")])`, or `record_to=PATH` on the handler.
`loopguard replay` reads the file back, so a production run can be replayed offline under
another policy.

With `record_content=False` no text leaves the process: every text field (message contents,
answer text, streamed chunks, tool arguments' values, tool outputs, errors) is replaced by
"sha256:" and 16 hex digits of a hash of the text, after folding case and whitespace and
masking timestamps, UUIDs and hex ids; so is every metadata value (`meta`, but LangChain's
own `ls_*` keys). Equal texts get equal hashes, so replays still detect
exact repeats (and repeats that differ only in such noise); near-duplicates and repeats inside
one streamed answer are detected only on recordings with content.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from pathlib import Path
from typing import IO, Any

from loopguard.events import Event, Message, ModelStart, RunEnd
from loopguard.normalize import digest, normalize_light
from loopguard.state import RunState
from loopguard.verdict import Verdict

_BUFFER = 1 << 16  # bytes buffered between flushes (bounded memory)


class FlightRecorder:
    """Appends events to `path`, one JSON object per line. Thread-safe; flushed at run end."""

    def __init__(self, path: str | os.PathLike[str], record_content: bool = True) -> None:
        self.path = Path(path)
        self.record_content = record_content
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = open(self.path, "a", encoding="utf-8", buffering=_BUFFER)
        self._lock = threading.Lock()
        # Each live run's last model_start messages: the next one writes only what follows
        # the messages it shares with them (`prefix`), so a run's recording grows with its
        # length, not with the square of it.
        self._messages: dict[str, list[Message]] = {}

    # --- Sink -----------------------------------------------------------------------------

    def on_event(self, state: RunState, event: Event) -> None:
        self._write(event)

    def on_verdict(self, state: RunState, event: Event, verdict: Verdict) -> None:
        """Verdicts are not recorded: a replay recomputes them under its own policy."""

    def on_run_end(self, state: RunState, event: RunEnd) -> None:
        # The end itself was written by on_event (the guard shows every end, an evicted
        # run's too, as an event first).
        self.flush()

    # --- file -----------------------------------------------------------------------------

    def _write(self, event: Event) -> None:
        # Under the lock: a model_start's prefix refers to the line written before it.
        with self._lock:
            if self._file is None:
                return
            data = self._encode(event)
            if not self.record_content:
                data = redact(data)
            self._file.write(
                json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
            )

    def _encode(self, event: Event) -> dict[str, Any]:
        if type(event) is RunEnd:
            self._messages.pop(event.run, None)
        if type(event) is not ModelStart:
            return event.to_dict()
        messages = event.messages
        previous = self._messages.get(event.run, ())
        self._messages[event.run] = list(messages)  # the adapter's list may change later
        shared = 0
        for before, now in zip(previous, messages, strict=False):
            if before != now:
                break
            shared += 1
        if not shared:
            return event.to_dict()
        data = dataclasses.replace(event, messages=messages[shared:]).to_dict()
        data["prefix"] = shared
        return data

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> FlightRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hash(text: str) -> str:
    return digest(normalize_light(text))


def _hash_values(value: Any) -> Any:
    """Tool arguments with every leaf value hashed (keys kept: they are the tool's schema)."""
    if isinstance(value, dict):
        return {k: _hash_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hash_values(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    return _hash(value if isinstance(value, str) else json.dumps(value))


_TEXT_FIELDS = ("text", "output", "error")


def redact(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of one event's dict with every text field replaced by a stable hash."""
    out = dict(data)
    for key in _TEXT_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = _hash(out[key])
    if "args" in out:
        out["args"] = _hash_values(out["args"])
    if isinstance(out.get("messages"), list):
        out["messages"] = [_redact_message(m) for m in out["messages"]]
    if isinstance(out.get("tool_calls"), list):
        out["tool_calls"] = [_redact_call(c) for c in out["tool_calls"]]
    if isinstance(out.get("meta"), dict):
        # Metadata values are the user's (an email, a tenant id): hashed like text, so equal
        # values still match on replay (budgets per tenant). LangChain's own `ls_*` stay.
        out["meta"] = {
            k: v if k.startswith("ls_") else _hash_values(v) for k, v in out["meta"].items()
        }
    return out


def _redact_message(message: dict[str, Any]) -> dict[str, Any]:
    m = dict(message)
    m["content"] = _hash(m.get("content") or "")
    if isinstance(m.get("tool_calls"), list):
        m["tool_calls"] = [_redact_call(c) for c in m["tool_calls"]]
    return m


def _redact_call(call: Any) -> Any:
    if not isinstance(call, dict):
        return _hash_values(call)
    c = dict(call)
    if "args" in c:
        c["args"] = _hash_values(c["args"])
    return c


__all__ = ["FlightRecorder", "redact"]
