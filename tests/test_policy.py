"""The policy's shape comes from the detector registry; run limits have their own section and
keep their top-level spelling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopguard import ConfigError, Guard, LoopGuardAbort, Policy, PolicySet
from loopguard.cli import main
from loopguard.detectors import REGISTRY, build_detectors
from loopguard.detectors.limits import LimitsConfig
from loopguard.events import ModelStart


def test_every_registered_section_is_a_policy_field_of_its_config_class() -> None:
    policy = Policy()
    sections = [entry for entry in REGISTRY if entry.section is not None]
    assert [e.section for e in sections][:2] == ["limits", "similarity"]
    for entry in sections:
        field = Policy.model_fields[entry.section]  # type: ignore[index]
        assert field.annotation is entry.config
        assert type(getattr(policy, entry.section)) is entry.config  # type: ignore[arg-type]
    # One detector per entry that the default policy switches on, in registry order.
    built = [d.name for d in build_detectors(policy)]
    assert built[0] == "limits" and "budget" not in built
    assert [d.name for d in build_detectors(Policy(max_cost_usd=1.0))][-1] == "budget"


def test_limits_section_and_top_level_keys_are_the_same_settings(tmp_path: Path) -> None:
    top = tmp_path / "top.toml"
    top.write_text("max_model_calls = 2\nmax_calls_per_tool = {search = 3}\n")
    section = tmp_path / "section.toml"
    section.write_text("[limits]\nmax_model_calls = 2\nmax_calls_per_tool = {search = 3}\n")
    a, b = PolicySet.load(top).default, PolicySet.load(section).default
    assert a == b and a.limits == LimitsConfig(max_model_calls=2, max_calls_per_tool={"search": 3})
    assert a.max_model_calls == 2  # read as before
    for policy in (a, b):
        guard = Guard(policy)
        guard.process(ModelStart(run="r", model="m"))
        guard.process(ModelStart(run="r", model="m"))
        with pytest.raises(LoopGuardAbort) as stop:
            guard.process(ModelStart(run="r", model="m"))
        assert stop.value.verdict.evidence["limit"] == "max_model_calls"


def test_an_agent_override_at_the_top_level_wins_over_the_default_section(tmp_path: Path) -> None:
    path = tmp_path / "loopguard.toml"
    path.write_text(
        "[limits]\nmax_model_calls = 9\nmax_tool_calls = 4\n[agents.a]\nmax_model_calls = 3\n"
    )
    agent = PolicySet.load(path).for_agent("a")
    assert (agent.limits.max_model_calls, agent.limits.max_tool_calls) == (3, 4)


def test_policy_show_writes_limits_at_the_top_level_as_before(tmp_path: Path, capsys) -> None:
    path = tmp_path / "loopguard.toml"
    path.write_text("[limits]\nmax_model_calls = 7\n")
    assert main(["policy", "show", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["max_model_calls"] == 7 and "limits" not in shown
    assert Policy.model_validate(shown).limits.max_model_calls == 7  # and reads back


def test_errors_name_the_key_as_written(tmp_path: Path) -> None:
    top = tmp_path / "top.toml"
    top.write_text("mode = 'enforce'\nmax_tool_calls = -1\n")
    with pytest.raises(ConfigError, match=r"top\.toml:2: max_tool_calls: "):
        PolicySet.load(top)
    section = tmp_path / "section.toml"
    section.write_text("[limits]\nmax_tool_calls = -1\n")
    with pytest.raises(ConfigError, match=r"section\.toml:2: limits\.max_tool_calls: "):
        PolicySet.load(section)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[limits]\nmax_model_call = 1\n")
    with pytest.raises(ConfigError, match="did you mean 'max_model_calls'"):
        PolicySet.load(unknown)
