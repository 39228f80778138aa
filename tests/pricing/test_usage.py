"""Usage from LangChain usage_metadata, checked against langchain-aws's own conversion."""

from __future__ import annotations

import pytest

from loopguard.pricing import usage_from_metadata


def _bedrock(usage: dict) -> dict:
    mod = pytest.importorskip("langchain_aws.chat_models.bedrock_converse")
    return dict(mod._extract_usage_metadata({"usage": usage}))


def test_converse_counts_cache_tokens_inside_input_tokens() -> None:
    meta = _bedrock(
        {
            "inputTokens": 100,
            "outputTokens": 50,
            "cacheReadInputTokens": 4000,
            "cacheWriteInputTokens": 2000,
            "totalTokens": 6150,
        }
    )
    assert meta["input_tokens"] == 6100  # langchain-aws adds the cache tokens
    usage = usage_from_metadata(meta)
    assert (
        usage.input_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.output_tokens,
    ) == (6100, 4000, 2000, 50)


def test_per_ttl_cache_writes_are_still_writes() -> None:
    # With cacheDetails, langchain-aws zeroes cache_creation and reports ephemeral_* instead.
    meta = _bedrock(
        {
            "inputTokens": 10,
            "outputTokens": 5,
            "cacheReadInputTokens": 0,
            "cacheWriteInputTokens": 3000,
            "cacheDetails": [
                {"ttl": "5m", "inputTokens": 1000},
                {"ttl": "1h", "inputTokens": 2000},
            ],
        }
    )
    assert meta["input_token_details"]["cache_creation"] == 0
    usage = usage_from_metadata(meta)
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (3000, 2000)


def test_missing_metadata_is_zero_usage() -> None:
    assert usage_from_metadata(None).total_tokens == 0
    assert usage_from_metadata({"input_tokens": 7, "output_tokens": 3}).total_tokens == 10
