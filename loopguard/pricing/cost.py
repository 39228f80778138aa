"""The cost of a call from its usage, and the projected cost of a call before it goes out.

Usage follows LangChain's usage_metadata: `input_tokens` INCLUDES the cache-read and cache-write
tokens (input_token_details). langchain-aws ChatBedrockConverse computes it as
inputTokens + cacheReadInputTokens + cacheWriteInputTokens. So each token is billed once:
  uncached input = input_tokens - cache_read - cache_write   at the input price
  cache_read                                                 at the cache-read price
  cache_write (5-minute)                                     at the 5-minute cache-write price
  cache_write_1h (a part of cache_write)                     at the 1-hour cache-write price
  output_tokens                                              at the output price
A model without a cache price that still reports cache tokens has them billed at the input price;
one without a 1-hour price, at the dearer of its 5-minute write and input prices.
"""

from __future__ import annotations

from loopguard.events import Usage
from loopguard.pricing.table import Price

PER = 1_000_000


def cost_usd(price: Price, usage: Usage) -> float:
    """USD for one call. The long-context tier applies to the whole request when its input
    (cache tokens included) is above the tier's threshold."""
    p = price.for_input(usage.input_tokens)
    cached = usage.cache_read_tokens + usage.cache_write_tokens
    # Some providers report cache tokens apart from input_tokens; never bill a negative remainder.
    uncached = max(usage.input_tokens - cached, 0)
    write_1h = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
    read = p.cache_read if p.cache_read is not None else p.input
    write = p.cache_write if p.cache_write is not None else p.input
    return (
        uncached * p.input
        + usage.cache_read_tokens * read
        + (usage.cache_write_tokens - write_1h) * write
        + write_1h * _write_1h(p)
        + usage.output_tokens * p.output
    ) / PER


def worst_case_usage(input_tokens: int, output_tokens: int) -> Usage:
    """The dearest usage a call not yet made can report: every input token written to the
    1-hour cache (the dearest input-side rate; a model without cache prices bills it at its
    input price), and all of its output. A pricer applied to it gives the call's projection."""
    return Usage(input_tokens, output_tokens, 0, input_tokens, input_tokens)


def _write_1h(p: Price) -> float:
    if p.cache_write_1h is not None:
        return p.cache_write_1h
    return max(p.input, p.cache_write or 0.0)
