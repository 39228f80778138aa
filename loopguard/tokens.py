"""Token estimates for a call that has not happened yet.

Before a call goes out its input is not yet counted by the provider, so hard caps project it.
The approximation is documented and deliberately cautious: ceil(characters / 3.5) per message
plus 4 tokens of per-message framing (Claude's tokenizer averages 3.5 to 4 characters per token
on English prose and code; counting high means a cap refuses slightly early, never late).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from loopguard.events import Message

CHARS_PER_TOKEN = 3.5
MESSAGE_OVERHEAD = 4


def estimate_text_tokens(text: str) -> int:
    return tokens_for_chars(len(text))


def tokens_for_chars(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimate_input_tokens(messages: Iterable[Message]) -> int:
    total = 0
    for m in messages:
        total += MESSAGE_OVERHEAD + math.ceil(len(m.content) / CHARS_PER_TOKEN)
        if m.tool_calls:
            total += math.ceil(len(str(m.tool_calls)) / CHARS_PER_TOKEN)
    return total
