"""Usage from LangChain's `usage_metadata` (what adapters hand the guard)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopguard.events import Usage


def usage_from_metadata(meta: Mapping[str, Any] | None) -> Usage:
    """Build a Usage from an AIMessage's usage_metadata.

    `input_tokens` already includes cache tokens (LangChain convention; langchain-aws adds
    cacheRead/cacheWrite to Bedrock's inputTokens). Cache writes are `cache_creation`, except that
    langchain-aws sets cache_creation to 0 when Bedrock reports a per-TTL breakdown and puts the
    tokens in `ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens` instead; all are writes,
    and the 1-hour ones are also counted apart (they are billed at their own rate).
    """
    if not meta:
        return Usage()
    details = meta.get("input_token_details")
    read = write = write_1h = 0
    if details:
        read = _int(details.get("cache_read"))
        write_1h = _int(details.get("ephemeral_1h_input_tokens"))
        write = (
            _int(details.get("cache_creation"))
            + _int(details.get("ephemeral_5m_input_tokens"))
            + write_1h
        )
    return Usage(
        _int(meta.get("input_tokens")), _int(meta.get("output_tokens")), read, write, write_1h
    )


def _int(v: Any) -> int:
    return v if type(v) is int and v > 0 else 0
