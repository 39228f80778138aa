"""`pip install 'langchain-loopguard[all]'` installs everything the examples import."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def _name(requirement: str) -> tuple[str, list[str]]:
    """The normalized distribution name of a requirement string, and its extras."""
    m = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", requirement)
    assert m is not None, requirement
    extras = [e.strip() for e in (m.group(2) or "").split(",") if e.strip()]
    return re.sub(r"[-_.]+", "-", m.group(1)).lower(), extras


def _all_extra() -> set[str]:
    """The distributions `[all]` brings in: the project's own requirements (from pyproject.toml,
    not the installed metadata, which may be older), then theirs, as installed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    own, extras = project["name"], project["optional-dependencies"]
    wanted, seen_extras = list(project["dependencies"]), set()
    pending = ["all"]
    while pending:
        extra = pending.pop()
        if extra in seen_extras:
            continue
        seen_extras.add(extra)
        for req in extras[extra]:
            name, sub = _name(req)
            if name == own:
                pending.extend(sub)
            else:
                wanted.append(req)
    found: set[str] = set()
    queue = [_name(r)[0] for r in wanted]
    while queue:
        dist = queue.pop()
        if dist in found:
            continue
        found.add(dist)
        try:
            requires = metadata.requires(dist) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here: its own requirements cannot be followed
        queue.extend(_name(r)[0] for r in requires if "extra ==" not in r)
    return found


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_all_extra_covers_every_example_import() -> None:
    local = {p.stem for p in EXAMPLES} | {"loopguard", "__future__"}
    providers = metadata.packages_distributions()
    covered = _all_extra()
    missing: dict[str, list[str]] = {}
    for path in EXAMPLES:
        for module in sorted(_imports(path) - local - set(sys.stdlib_module_names)):
            dists = {_name(d)[0] for d in providers.get(module, [])}
            if not dists:
                pytest.fail(f"{path.name} imports {module!r}, which no installed package provides")
            if not dists & covered:
                missing.setdefault(module, []).append(path.name)
    assert not missing, f"imported by examples but not installed by [all]: {missing}"
