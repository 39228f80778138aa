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
        "entry": "anthropic.claude-3-5-haiku-20241022",
        "name": "Claude 3.5 Haiku (Bedrock)",
        "input_per_mtok": 0.8,
        "output_per_mtok": 4.0,
        "cache_read_per_mtok": 0.08,
        "cache_write_per_mtok": 1.0,
        "cache_write_1h_per_mtok": None,
        "source": "https://aws.amazon.com/bedrock/pricing/",
        "checked": "2026-11-29",
    }


def test_opus_4_6_profile_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    # issue 14: `loopguard pricing us.anthropic.claude-opus-4-6-v1 --json` exited 1
    assert main(["pricing", "us.anthropic.claude-opus-4-6-v1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # the geographic profile pays 10% over the global list price ($5 / $25)
    assert out["model"] == "us.anthropic.claude-opus-4-6"
    assert (out["input_per_mtok"], out["output_per_mtok"]) == (5.5, 27.5)
    assert (out["cache_write_per_mtok"], out["cache_write_1h_per_mtok"]) == (6.875, 11.0)
    assert out["source"].startswith("https://") and out["checked"] == "2026-12-01"


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
    assert main(["pricing", "--list"]) == 0
    assert capsys.readouterr().out == out
    assert "anthropic.claude-opus-4-5-20251101" in out and "gpt-4o-mini" in out
    assert ">200K: 6/22.5" in out  # Sonnet 4's long-context tier


def test_list_as_json_names_every_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pricing", "--list", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    by_model = {r["model"]: r for r in records}
    assert {"anthropic.claude-opus-4-6", "claude-sonnet-4-6", "gpt-4o"} <= set(by_model)
    for r in records:
        assert r["source"].startswith("https://") and len(r["checked"]) == 10, r["model"]
    sonnet_4 = by_model["claude-sonnet-4-20250514"]
    assert sonnet_4["aliases"] == ["claude-sonnet-4", "claude-sonnet-4-0"]
    assert sonnet_4["long_context"]["above_input_tokens"] == 200_000


def test_a_model_and_list_together_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pricing", "claude-opus-4-6", "--list"]) == 2
    assert "not both" in capsys.readouterr().err


def test_a_bad_policy_file_is_an_input_error_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "loopguard.toml"
    cfg.write_text("[prices.x]\ninput = -1\noutput = 1\n")
    assert main(["pricing", "x", "--policy", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and "Traceback" not in err
    assert main(["pricing", "x", "--policy", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_policy_prices_and_aliases_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/p1"
    cfg = tmp_path / "loopguard.toml"
    cfg.write_text(
        f'[model_aliases]\n"{arn}" = "global.anthropic.claude-opus-4-5-20251101-v1:0"'
        "\n[prices.in-house]\ninput = 0.1\noutput = 0.2\n"
    )
    assert main(["pricing", arn, "--json", "--policy", str(cfg)]) == 0
    assert json.loads(capsys.readouterr().out)["input_per_mtok"] == 5.0
    assert main(["pricing", "in-house", "--json", "--policy", str(cfg)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["output_per_mtok"] == 0.2 and out["source"] == "the policy's prices"
    # the option's earlier name still works
    assert main(["pricing", "in-house", "--json", "--config", str(cfg)]) == 0
    assert json.loads(capsys.readouterr().out)["output_per_mtok"] == 0.2
