"""Usage from LangChain's `usage_metadata` (what adapters hand the guard)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopguard.events import Usage, token_count


def usage_from_metadata(meta: Mapping[str, Any] | None) -> Usage:
    """Build a Usage from an AIMessage's usage_metadata.

    `input_tokens` already includes cache tokens (LangChain convention; langchain-aws adds
    cacheRead/cacheWrite to Bedrock's inputTokens). Cache writes are `cache_creation`, except that
    langchain-aws sets cache_creation to 0 when Bedrock reports a per-TTL breakdown and puts the
    tokens in `ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens` instead; all are writes,
    and the 1-hour ones are also counted apart (they are billed at their own rate).

    A count that cannot be trusted (negative, NaN, infinite, absurdly large) makes the whole
    usage unknown (all zeros), never a negative or partial charge: the money check settles such
    a call at its projection.
    """
    if not meta:
        return Usage()
    details = meta.get("input_token_details")
    if not isinstance(details, Mapping):
        details = {}
    raw = (
        meta.get("input_tokens"),
        meta.get("output_tokens"),
        details.get("cache_read"),
        details.get("cache_creation"),
        details.get("ephemeral_5m_input_tokens"),
        details.get("ephemeral_1h_input_tokens"),
    )
    counts: list[int] = []
    for value in raw:
        count = token_count(value)
        if count is None:
            return Usage()
        counts.append(count)
    inp, out, read, write, write_5m, write_1h = counts
    return Usage(inp, out, read, write + write_5m + write_1h, write_1h)


def usage_from_counts(usage: Mapping[str, Any]) -> Usage:
    """Usage from a provider's plain counts (`llm_output["usage"]`): input/output or
    prompt/completion tokens; unknown (all zeros) when a count cannot be trusted."""
    inp = token_count(_first(usage, "input_tokens", "prompt_tokens"))
    out = token_count(_first(usage, "output_tokens", "completion_tokens"))
    if inp is None or out is None:
        return Usage()
    return Usage(inp, out)


def _first(usage: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if usage.get(key) is not None:
            return usage[key]
    return None
