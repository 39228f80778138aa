"""The packaged price table and model-id resolution."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from loopguard.pricing import UnknownModel, normalize, packaged_table


def _raw() -> dict:
    text = resources.files("loopguard").joinpath("data", "prices.toml").read_text("utf-8")
    return tomllib.loads(text)


def test_every_entry_names_its_source_and_date() -> None:
    for entry in _raw()["models"]:
        assert entry["source"].startswith("https://"), entry["id"]
        assert len(entry["checked"]) == 10 and entry["checked"][4] == "-", entry["id"]


def test_claude_cache_prices_follow_the_published_multipliers() -> None:
    # 5-minute cache write = 1.25x input, cache read = 0.1x input, wherever a cache price exists;
    # Claude 3 Haiku is the published exception ($0.30 / $0.03, rounded from 0.3125 / 0.025).
    for entry in _raw()["models"]:
        if "claude" not in entry["id"] or "cache_write" not in entry:
            continue
        if entry["id"] == "claude-3-haiku-20240307":
            assert (entry["cache_write"], entry["cache_read"]) == (0.30, 0.03)
            continue
        assert entry["cache_write"] == pytest.approx(entry["input"] * 1.25), entry["id"]
        assert entry["cache_read"] == pytest.approx(entry["input"] * 0.1), entry["id"]


@pytest.mark.parametrize(
    ("model", "scope", "base"),
    [
        ("anthropic.claude-3-haiku-20240307-v1:0", None, "anthropic.claude-3-haiku-20240307"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "us", "anthropic.claude-sonnet-4-20250514"),
        (
            "GLOBAL.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "global",
            "anthropic.claude-sonnet-4-5-20250929",
        ),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", None, "anthropic.claude-3-5-sonnet-20241022"),
        ("anthropic.claude-3-haiku-20240307-v1:0:200k", None, "anthropic.claude-3-haiku-20240307"),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            None,
            "anthropic.claude-3-haiku-20240307",
        ),
        (
            "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-5-haiku-"
            "20241022-v1:0",
            "eu",
            "anthropic.claude-3-5-haiku-20241022",
        ),
        ("claude-sonnet-4-5", None, "claude-sonnet-4-5"),
    ],
)
def test_normalize(model: str, scope: str | None, base: str) -> None:
    assert normalize(model) == (scope, base)


def test_errors_of_other_tables_are_not_here() -> None:
    table = packaged_table()
    # litellm lacks this plain key
    assert table.resolve("anthropic.claude-3-haiku-20240307-v1:0").price.input == 0.25
    # tokencost prices eu. Claude 3.5 Haiku as Claude 3 Haiku, and lacks cache writes
    eu = table.resolve("eu.anthropic.claude-3-5-haiku-20241022-v1:0").price
    assert (eu.input, eu.output, eu.cache_write, eu.cache_read) == (0.80, 4.0, 1.0, 0.08)


def test_regional_premium_only_for_the_4_5_generation() -> None:
    table = packaged_table()
    assert table.resolve("us.anthropic.claude-sonnet-4-5-20250929-v1:0").price.input == 3.3
    assert table.resolve("global.anthropic.claude-sonnet-4-5-20250929-v1:0").price.input == 3.0
    assert table.resolve("us.anthropic.claude-sonnet-4-20250514-v1:0").price.input == 3.0
    assert table.resolve("claude-sonnet-4-5").price.input == 3.0  # Anthropic API: no premium


def test_normalized_id_keeps_the_profile_scope() -> None:
    r = packaged_table().resolve("us.anthropic.claude-opus-4-1-20250805-v1:0")
    assert r.model == "us.anthropic.claude-opus-4-1-20250805"
    assert packaged_table().resolve("claude-opus-4-1").model == "claude-opus-4-1-20250805"


def test_application_inference_profile_needs_an_alias() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"
    with pytest.raises(UnknownModel, match="model_aliases"):
        packaged_table().resolve(arn)
    r = packaged_table().resolve(arn, {arn: "us.anthropic.claude-3-5-haiku-20241022-v1:0"})
    assert r.model == "us.anthropic.claude-3-5-haiku-20241022"


def test_unknown_model_message_says_what_to_do() -> None:
    with pytest.raises(UnknownModel, match=r"prices.*fallback_price"):
        packaged_table().resolve("anthropic.claude-9-nonesuch-v1:0")
