"""Names and texts made safe to leave the process: control characters escaped, sizes bounded.

Tool names, model ids and agent names come from the model or the user's metadata. Before one
reaches a log line or a span it goes through `name()`: a newline in a tool name must not forge a
log line, and a 1 MB tool name must not become a 1 MB span name. `text()` does the same for the
guard's own sentences (verdict reasons, status descriptions), which quote such names.
"""

from __future__ import annotations

import re
from typing import Any

from loopguard.normalize import digest

NAME_CHARS = 128  # longest name exported whole (tool names, model ids, agent names)
TEXT_CHARS = 1000  # longest reason or status description exported whole

# Evidence keys whose values are content (text the model, a tool or the user wrote) or a
# metadata value (a budget's ledger key holds its tenant's id). Detectors put such values
# under these keys only; what leaves the process carries their digest instead.
CONTENT_KEYS = frozenset(
    {
        "args",
        "arguments",
        "text",
        "content",
        "output",
        "messages",
        "prompt",
        "completion",
        "result",
        "sample",
        "passage",
        "error",
        "key",
    }
)


def name(value: object, limit: int = NAME_CHARS) -> str:
    """`value` as a printable name of at most `limit` characters before escaping; a cut name
    ends with its size and digest, so two long names that share a prefix stay apart."""
    if type(value) is not str:
        value = str(value)
    if len(value) <= limit and value.isprintable():  # the common case: nothing to do
        return value
    return _clean(value, limit)


def text(value: str, limit: int = TEXT_CHARS) -> str:
    """A sentence for a log line, a span attribute or an exception message: control
    characters escaped (newlines too), at most `limit` characters before escaping."""
    return name(value, limit)


def _clean(value: str, limit: int) -> str:
    shown = "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in value[:limit]
    )
    if len(value) > limit:
        shown += f"...[{len(value):,} chars, {digest(value)}]"
    return shown


_URI_PASSWORD = re.compile(r"(\w[\w+.-]*://[^/@:\s]*:)[^@\s]*@")


def uri(value: str) -> str:
    """A ledger URI (or a message quoting one) with its password masked:
    `redis://user:secret@host` -> `redis://user:***@host`."""
    return _URI_PASSWORD.sub(r"\1***@", value) if "@" in value else value


def sig(value: float) -> float:
    """Money, rates and times as people read them: at most 8 significant digits."""
    return float(f"{value:.8g}")


def evidence(values: dict[str, Any]) -> dict[str, Any]:
    """A verdict's evidence as it may leave the process: content values replaced by their
    size and digest, strings escaped and bounded."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if k in CONTENT_KEYS and v is not None:
            out[k] = withheld(v)
        elif type(v) is str:
            out[k] = text(v)
        else:
            out[k] = v
    return out


def withheld(value: Any) -> str:
    """What stands for a content value that is not captured: its size and digest (equal
    values get equal digests, so repeats can still be told apart from new content)."""
    shown = value if type(value) is str else repr(value)
    return f"<not captured: {len(shown):,} chars, {digest(shown)}>"
