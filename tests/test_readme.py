"""The README's policy examples are valid policies, and its test command is what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loopguard import PolicySet

README = Path(__file__).resolve().parents[1] / "README.md"
TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_readme_has_policy_examples() -> None:
    assert len(TOML_BLOCKS) >= 3


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=[f"toml-{i}" for i in range(len(TOML_BLOCKS))])
def test_every_toml_example_in_the_readme_loads(block: str, tmp_path: Path) -> None:
    path = tmp_path / "loopguard.toml"
    path.write_text(block, encoding="utf-8")
    PolicySet.load(str(path))


def test_ci_runs_the_readme_test_command() -> None:
    text = README.read_text(encoding="utf-8")
    command = re.search(
        r"<!-- test-command -->\n```bash\n(.*?)\n```\n<!-- /test-command -->", text, re.S
    )
    assert command is not None
    assert "pytest" in command.group(1)
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "test-command" in ci
