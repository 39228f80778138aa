"""`loopguard policy check|show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopguard import Policy
from loopguard.cli import main


def test_check_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "loopguard.toml"
    path.write_text("max_model_calls = 9\n[agents.b]\nmax_model_calls = 3\n[agents.a]\n")
    assert main(["policy", "check", str(path)]) == 0
    assert (
        capsys.readouterr().out == f"{path}: ok (a default policy and agent overrides for: a, b)\n"
    )


def test_check_a_bad_file_names_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "loopguard.toml"
    path.write_text("max_model_calls = 9\n[agents.b]\nmax_tool_call = 3\n")
    assert main(["policy", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"{path}:3: agents.b.max_tool_call: unknown key (did you mean 'max_tool_calls'?)"
    )


def test_show_an_agents_effective_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "loopguard.toml"
    path.write_text(
        "max_model_calls = 9\nmax_seconds = 60\n[agents.b]\nmax_model_calls = 3\n"
        "[agents.b.similarity]\nthreshold = 0.9\n"
    )
    assert main(["policy", "show", str(path), "--agent", "b"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["max_model_calls"] == 3 and shown["max_seconds"] == 60
    assert shown["similarity"]["threshold"] == 0.9
    assert main(["policy", "show", str(path), "--agent", "nobody"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["max_model_calls"] == 9 and "gets the default policy" in err


def test_check_reports_every_error_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "loopguard.toml"
    path.write_text(
        "max_tool_calls = true\n[agents.b]\nmax_tool_call = 3\ncycle = {min_period = 0}\n"
    )
    assert main(["policy", "check", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:1: max_tool_calls: input should be a valid integer (got True)",
        f"{path}:3: agents.b.max_tool_call: unknown key (did you mean 'max_tool_calls'?); "
        "accepted keys: " + ", ".join(Policy.accepted_keys()),
        f"{path}:4: agents.b.cycle.min_period: input should be greater than or equal to 1 (got 0)",
    ]
    assert main(["policy", "check", "--json", "--policy", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and [(e["line"], e["key"]) for e in report["errors"]] == [
        (1, "max_tool_calls"),
        (3, "agents.b.max_tool_call"),
        (4, "agents.b.cycle.min_period"),
    ]
    path.write_text("[agents.support.tool_repeat]\nmax_polls = 5\n")
    assert main(["policy", "check", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "source": str(path),
        "ok": True,
        "agents": ["support"],
        "errors": [],
    }


def test_show_of_a_missing_file_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "show", "--policy", str(tmp_path / "nope.toml")]) == 2
    assert capsys.readouterr().err.startswith(
        f"loopguard policy: {tmp_path / 'nope.toml'}: no such"
    )


def test_dash_reads_the_policy_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    from tests.conftest import require

    monkeypatch.setattr(sys, "stdin", io.StringIO("max_model_calls = 3\n[agents.x]\n"))
    assert main(["policy", "show", "-", "--agent", "x"]) == 0
    assert json.loads(capsys.readouterr().out)["max_model_calls"] == 3
    monkeypatch.setattr(sys, "stdin", io.StringIO("[agents.x]\nmax_tool_calls = 'a'\n"))
    assert main(["policy", "check", "--policy", "-"]) == 1
    assert capsys.readouterr().err.startswith("<stdin>:2: agents.x.max_tool_calls: ")
    require("yaml")
    monkeypatch.setattr(sys, "stdin", io.StringIO("max_model_calls: 4\nagents:\n  x: {}\n"))
    assert main(["policy", "check", "-"]) == 0
    assert capsys.readouterr().out == "<stdin>: ok (a default policy and agent overrides for: x)\n"
