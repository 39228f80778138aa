"""Detector sections in policy files: loaded, validated, switched off."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopguard import ConfigError, PolicySet
from loopguard.detectors import RUNAWAY, build_detectors


def test_sections_load_from_toml_with_agent_overrides(tmp_path: Path) -> None:
    path = tmp_path / "loopguard.toml"
    path.write_text(
        "[similarity]\nthreshold = 0.9\n\n[tool_repeat]\nmax_polls = 80\n\n"
        "[agents.poller.tool_repeat]\nmax_polls = 500\n\n"
        "[agents.quiet.stream]\nenabled = false\n"
    )
    policies = PolicySet.load(str(path))
    assert policies.default.similarity.threshold == 0.9
    assert policies.default.tool_repeat.max_polls == 80
    assert policies.for_agent("poller").tool_repeat.max_polls == 500
    assert policies.for_agent("poller").similarity.threshold == 0.9
    names = [d.name for d in build_detectors(policies.for_agent("quiet"))]
    assert "stream" not in names and "similarity" in names


def test_unknown_detector_key_names_file_key_and_accepted(tmp_path: Path) -> None:
    path = tmp_path / "loopguard.toml"
    path.write_text("[cycle]\nmax_periods = 4\n")
    with pytest.raises(ConfigError) as info:
        PolicySet.load(str(path))
    message = str(info.value)
    assert "cycle.max_periods" in message and "max_period" in message and ":2:" in message


def test_bad_value_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "loopguard.toml"
    path.write_text("[similarity]\nthreshold = 1.5\n")
    with pytest.raises(ConfigError, match=r"similarity\.threshold"):
        PolicySet.load(str(path))


def test_default_policy_builds_every_runaway_detector() -> None:
    names = {d.name for d in build_detectors(PolicySet().default)}
    assert set(RUNAWAY) <= names
    assert {"similarity", "tool_repeat", "cycle", "errors", "progress"} <= set(RUNAWAY)


def test_every_knob_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "detectors.md").read_text()
    policy = PolicySet().default
    for section in RUNAWAY:
        assert f"[{section}]" in docs
        for key in type(getattr(policy, section)).model_fields:
            assert key in docs, f"{section}.{key} is not in docs/detectors.md"
