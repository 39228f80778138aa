"""`loopguard pricing`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopguard.cli import main


def test_one_model_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pricing", "eu.anthropic.claude-3-5-haiku-20241022-v1:0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "model": "eu.anthropic.claude-3-5-haiku-20241022",
        "input_per_mtok": 0.8,
        "output_per_mtok": 4.0,
        "cache_read_per_mtok": 0.08,
        "cache_write_per_mtok": 1.0,
    }


def test_missing_prices_are_null(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pricing", "anthropic.claude-3-haiku-20240307-v1:0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "anthropic.claude-3-haiku-20240307"
    assert out["cache_read_per_mtok"] is None and out["cache_write_per_mtok"] is None


def test_unknown_model_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pricing", "anthropic.claude-99-v1:0", "--json"]) != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no price for model 'anthropic.claude-99-v1:0'" in captured.err


def test_table_lists_every_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pricing"]) == 0
    out = capsys.readouterr().out
    assert "anthropic.claude-opus-4-5-20251101" in out and "gpt-4o-mini" in out
    assert ">200K: 6/22.5" in out  # Sonnet 4's long-context tier


def test_policy_prices_and_aliases_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/p1"
    cfg = tmp_path / "loopguard.toml"
    cfg.write_text(
        f'[model_aliases]\n"{arn}" = "global.anthropic.claude-opus-4-5-20251101-v1:0"'
        "\n[prices.in-house]\ninput = 0.1\noutput = 0.2\n"
    )
    assert main(["pricing", arn, "--json", "--config", str(cfg)]) == 0
    assert json.loads(capsys.readouterr().out)["input_per_mtok"] == 5.0
    assert main(["pricing", "in-house", "--json", "--config", str(cfg)]) == 0
    assert json.loads(capsys.readouterr().out)["output_per_mtok"] == 0.2
