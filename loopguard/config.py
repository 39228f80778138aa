"""Loading policy files: loopguard.toml, YAML, [tool.loopguard] in pyproject.toml.

Every problem is a `ConfigError` that names the file, the line where it can be found, the key
path, and what is accepted.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from loopguard.errors import ConfigError
from loopguard.policy import Policy, PolicySet

ENV_VAR = "LOOPGUARD_CONFIG"
CANDIDATES = ("loopguard.toml", "loopguard.yaml", "loopguard.yml", "pyproject.toml")


def load_policy_set(path: str | os.PathLike[str] | None = None) -> PolicySet:
    if path is None:
        path = os.environ.get(ENV_VAR) or None
        if path is None:
            for name in CANDIDATES:
                candidate = Path(name)
                if candidate.is_file() and (name != "pyproject.toml" or _has_tool_table(candidate)):
                    path = candidate
                    break
            else:
                return PolicySet(source="<built-in default>")
    return load_file(Path(path))


def load_file(path: Path) -> PolicySet:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "no such file (set by argument or $LOOPGUARD_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(source, f"cannot read: {exc.strerror}") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data = _parse_yaml(text, source)
    elif suffix == ".toml":
        data = _parse_toml(text, source)
        if path.name == "pyproject.toml":
            tool = data.get("tool", {})
            if not isinstance(tool, dict) or "loopguard" not in tool:
                raise ConfigError(source, "no [tool.loopguard] table")
            data = tool["loopguard"]
    else:
        raise ConfigError(source, "unknown file type; accepted: .toml, .yaml, .yml")
    return policy_set_from_mapping(data, source=source, text=text)


def policy_set_from_mapping(data: Any, *, source: str, text: str | None = None) -> PolicySet:
    if not isinstance(data, Mapping):
        raise ConfigError(
            source, f"the top level must be a table of keys, got {type(data).__name__}"
        )
    prefix = "tool.loopguard." if source.endswith("pyproject.toml") else ""
    raw_default = {k: v for k, v in data.items() if k != "agents"}
    agents_raw = data.get("agents", {})
    if not isinstance(agents_raw, Mapping):
        raise ConfigError(
            source,
            "must be a table of agent names to policy tables",
            key=f"{prefix}agents",
            line=_find_line(text, ["agents"]),
        )
    default = _validate(Policy, raw_default, source, text, [], prefix)
    base = default.model_dump()
    agents: dict[str, Policy] = {}
    for name, over in agents_raw.items():
        if not isinstance(over, Mapping):
            raise ConfigError(
                source,
                "must be a table of policy keys",
                key=f"{prefix}agents.{name}",
                line=_find_line(text, ["agents", name]),
            )
        from loopguard.policy import _deep_merge

        merged = _deep_merge(base, over)
        # Validate the override first so its own errors carry its own key path.
        agents[name] = _validate(
            Policy, merged, source, text, ["agents", str(name)], prefix, own=over
        )
    return PolicySet(default=default, agents=agents, source=source)


def _validate(
    model: type[BaseModel],
    data: Mapping[str, Any],
    source: str,
    text: str | None,
    path: list[str],
    prefix: str,
    own: Mapping[str, Any] | None = None,
) -> Any:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        key = prefix + ".".join(path + loc) if loc else prefix + ".".join(path) or "(top level)"
        message = _explain(model, err, loc)
        raise ConfigError(source, message, key=key, line=_find_line(text, path + loc)) from None


def _explain(model: type[BaseModel], err: Any, loc: list[str]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        accepted = _accepted_keys(model, loc[:-1])
        close = difflib.get_close_matches(loc[-1], accepted, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key{hint}; accepted keys: {', '.join(accepted)}"
    got = err.get("input")
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    msg = err["msg"]
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    return f"{msg[0].lower()}{msg[1:]} (got {shown})"


def _accepted_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
    fields = getattr(current, "model_fields", {})
    return sorted(fields)


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(m.group(1)) if m else None
        reason = re.sub(r"\s*\(at line.*\)", "", str(exc))
        raise ConfigError(source, f"invalid TOML: {reason}", line=line) from None


def _parse_yaml(text: str, source: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            source, "YAML policies need PyYAML: pip install 'langchain-loopguard[yaml]'"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, f"invalid YAML: {problem}", line=line) from None
    return {} if data is None else data


def _has_tool_table(path: Path) -> bool:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return isinstance(data.get("tool"), dict) and "loopguard" in data["tool"]


def _find_line(text: str | None, path: list[str]) -> int | None:
    """Best-effort line of a key path in a TOML or YAML text (for messages only)."""
    if not text or not path:
        return None
    leaf = re.escape(path[-1])
    pattern = re.compile(rf"^\s*(?:-\s*)?[\"']?{leaf}[\"']?\s*[=:]|^\s*\[[^\]]*\b{leaf}\]\s*$")
    lines = text.splitlines()
    hits = [i for i, line in enumerate(lines) if pattern.search(line)]
    if not hits:
        return None
    # Prefer a hit inside the table of the parent path ([agents.x] in TOML, indentation in YAML).
    parents = [p for p in path[:-1]]
    if parents:
        header = re.compile(r"^\s*\[+\s*" + r"\s*\.\s*".join(re.escape(p) for p in parents))
        starts = [i for i, line in enumerate(lines) if header.search(line)]
        for start in starts:
            for hit in hits:
                if hit > start:
                    return hit + 1
        yaml_parent = re.compile(rf"^\s*{re.escape(parents[-1])}\s*:")
        for start, line in enumerate(lines):
            if yaml_parent.search(line):
                for hit in hits:
                    if hit > start:
                        return hit + 1
    return hits[0] + 1
