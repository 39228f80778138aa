"""Usage from LangChain usage_metadata, checked against langchain-aws's own conversion."""

from __future__ import annotations

import json

import pytest

from loopguard.events import ModelEnd, Usage, from_dict
from loopguard.integrations._convert import usage_of
from loopguard.pricing import usage_from_metadata
from tests.conftest import require


def _bedrock(usage: dict) -> dict:
    mod = require("langchain_aws.chat_models.bedrock_converse")
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


@pytest.mark.parametrize(
    "bad",
    [-5, float("nan"), float("inf"), -float("inf"), 2.5, 10**30, "12", True],
)
def test_nonsense_counts_make_the_usage_unknown_never_negative(bad: object) -> None:
    # issue 12: negative counts made run cost -$0.1998; NaN raised inside usage parsing
    for meta in (
        {"input_tokens": bad, "output_tokens": 10},
        {"input_tokens": 10, "output_tokens": bad},
        {"input_tokens": 10, "output_tokens": 10, "input_token_details": {"cache_read": bad}},
        {
            "input_tokens": 10,
            "output_tokens": 10,
            "input_token_details": {"ephemeral_1h_input_tokens": bad},
        },
    ):
        usage = usage_from_metadata(meta)
        assert usage == Usage() and not usage.known, meta


def test_llm_output_counts_are_checked_too() -> None:
    # the fallback path called int() on the raw value: NaN raised, -3 went through
    class NoMeta:
        usage_metadata = None

    for raw in (float("nan"), float("inf"), -3, 10**30, "x"):
        usage = usage_of(NoMeta(), {"usage": {"prompt_tokens": raw, "completion_tokens": 4}})
        assert usage == Usage() and not usage.known
    assert usage_of(NoMeta(), {"token_usage": {"prompt_tokens": 7, "completion_tokens": 4}}) == (
        Usage(7, 4)
    )
    assert usage_of(NoMeta(), {"usage": {"input_tokens": 0, "prompt_tokens": 9}}).input_tokens == 0


def test_whole_number_floats_are_counts() -> None:
    assert usage_from_metadata({"input_tokens": 12.0, "output_tokens": 3}) == Usage(12, 3)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), 10**30])
def test_a_recorded_nonsense_count_keeps_the_event_with_unknown_usage(bad: object) -> None:
    # Python's json reads NaN and Infinity; the reader rejected the whole line before
    line = json.dumps(
        {
            "v": 1,
            "type": "model_end",
            "run": "r",
            "ts": 1,
            "model": "m",
            "text": "hi",
            "usage": {"input_tokens": bad, "output_tokens": 5},
        }
    )
    event = from_dict(json.loads(line))
    assert isinstance(event, ModelEnd) and event.text == "hi"
    assert event.usage == Usage() and not event.usage.known


def test_one_hour_writes_survive_a_recording() -> None:
    usage = Usage(100, 5, 0, 60, 40)
    end = ModelEnd(run="r", model="m", usage=usage)
    assert from_dict(json.loads(json.dumps(end.to_dict()))).usage == usage
    assert "cache_write_1h_tokens" not in ModelEnd(run="r", model="m").to_dict()["usage"]
