"""The packaged price table and model-id resolution."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

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
        if "opus-5-5" in entry["id"] or "sonnet-5-5" in entry["id"]:
            # the 5.5 generation's cache reads are 0.05x input
            assert entry["cache_read"] == pytest.approx(entry["input"] * 0.05), entry["id"]
            assert entry["cache_write"] == pytest.approx(entry["input"] * 1.25), entry["id"]
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


def test_one_hour_cache_writes_cost_twice_the_input_price() -> None:
    # Anthropic's caching multipliers: 1-hour write = 2x input. Every Claude model on Anthropic's
    # API that has a 5-minute price has a 1-hour one, or its note says why not.
    for entry in _raw()["models"]:
        if "claude" not in entry["id"]:
            continue
        if "cache_write_1h" in entry:
            assert entry["cache_write_1h"] == pytest.approx(entry["input"] * 2), entry["id"]
        elif "cache_write" in entry and not entry["id"].startswith("anthropic."):
            assert "1-hour" in entry.get("note", ""), entry["id"]


# Model ids as the docs, examples and the fake Bedrock server name them (application
# inference-profile ARNs name no model and are excluded: they resolve through model_aliases).
_ID = re.compile(
    r"(?:arn:aws:bedrock:[a-z0-9-]+:\d*:(?:foundation-model|inference-profile)/)?"
    r"(?:(?:global|us|eu|apac|jp|au)\.)?anthropic\.claude-[a-z0-9.:-]*[a-z0-9]"
    r"|\bclaude-(?:opus|sonnet|haiku|3)[a-z0-9-]*[0-9]\b"
)
_ROOT = Path(__file__).resolve().parents[2]
_NAMING_FILES = [
    _ROOT / "README.md",
    *sorted((_ROOT / "docs").glob("*.md")),
    *sorted((_ROOT / "examples").rglob("*.py")),
    *sorted((_ROOT / "examples").rglob("*.toml")),
    *sorted((_ROOT / "examples").rglob("*.md")),
    *sorted((_ROOT / "loopguard" / "testing").rglob("*.py")),
    *sorted((_ROOT / "loopguard" / "demo").rglob("*.py")),
]


def _named_models() -> set[str]:
    found = set()
    for path in _NAMING_FILES:
        found.update(m.group(0) for m in _ID.finditer(path.read_text("utf-8")))
    return found


def test_every_model_the_docs_and_the_fake_server_name_resolves() -> None:
    from loopguard.testing.fake_bedrock import DEFAULT_MODEL

    named = _named_models()
    assert DEFAULT_MODEL in named  # the scan sees the fake server's own model
    assert len(named) >= 5
    table = packaged_table()
    unresolved = []
    for model in sorted(named):
        try:
            table.resolve(model)
        except UnknownModel:
            unresolved.append(model)
    assert unresolved == []


@pytest.mark.parametrize(
    "model",
    [
        # every id form of the models issue 14 names, on Bedrock and on Anthropic's API
        "anthropic.claude-opus-4-6-v1",
        "us.anthropic.claude-opus-4-6-v1",
        "eu.anthropic.claude-opus-4-6-v1",
        "jp.anthropic.claude-opus-4-6-v1",
        "apac.anthropic.claude-opus-4-6-v1",
        "global.anthropic.claude-opus-4-6-v1",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-6-v1",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-6-v1",
        "anthropic.claude-sonnet-4-6",
        "global.anthropic.claude-sonnet-4-6",
        "jp.anthropic.claude-sonnet-4-6",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "au.anthropic.claude-haiku-4-5-20251001-v1:0",
        "global.anthropic.claude-opus-4-5-20251101-v1:0",
        "claude-opus-4-6",
        "claude-opus-4-7",
        "claude-sonnet-4-6",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5-20250929",
        "claude-haiku-4-5",
        "claude-haiku-4-5-20251001",
        "claude-3-7-sonnet-latest",
        "claude-opus-5-5",
        "global.anthropic.claude-opus-5-5",
        "au.anthropic.claude-opus-5-5",
        "global.anthropic.claude-sonnet-5-5",
        "claude-haiku-5-5",
        "anthropic.claude-haiku-5-5",
    ],
)
def test_current_claude_ids_resolve(model: str) -> None:
    assert packaged_table().resolve(model).price.input > 0


def test_a_dated_snapshot_of_an_undated_id_resolves_to_it() -> None:
    table = packaged_table()
    assert table.resolve("claude-opus-5-5-20260922").entry == "claude-opus-5-5"
    assert table.resolve("claude-opus-4-6-20260205").entry == "claude-opus-4-6"
    assert table.resolve("gpt-4o-2024-08-06").entry == "gpt-4o"
    # a dated id the table lists itself is not cut
    assert table.resolve("claude-3-5-haiku-20241022").entry == "claude-3-5-haiku-20241022"
    with pytest.raises(UnknownModel):
        table.resolve("claude-nonesuch-20260101")
