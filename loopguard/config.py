"""Loading policy files: loopguard.toml, YAML, [tool.loopguard] in pyproject.toml.

Every problem is reported, each as `FILE:LINE: key.path: reason`, in one `ConfigError` (its
`errors` hold them one by one). Without an explicit path the file is `$LOOPGUARD_CONFIG`, else
the nearest policy file from the working directory up to the repository root, as pytest and
ruff find theirs.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from loopguard.errors import ConfigError as ConfigError  # also importable from here
from loopguard.policy import Policy, PolicySet

ENV_VAR = "LOOPGUARD_CONFIG"
CANDIDATES = ("loopguard.toml", "loopguard.yaml", "loopguard.yml", "pyproject.toml")
BUILT_IN = "<built-in default>"

log = logging.getLogger("loopguard")
_announced: set[str] = set()  # what was loaded (or that nothing was), said once per process

Path_ = tuple[str, ...]


# --- finding and reading the file ------------------------------------------------------------


def load_policy_set(path: str | os.PathLike[str] | None = None) -> PolicySet:
    """The policies at `path`, else `$LOOPGUARD_CONFIG`, else the nearest policy file found
    from the working directory upward (`find_policy_file`), else the built-in default."""
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is None:
        found = find_policy_file()
        if found is None:
            _announce(
                logging.WARNING,
                f"no policy file found (searched {Path.cwd()} and up to "
                f"{_search_root(Path.cwd())} for {', '.join(CANDIDATES[:-1])} or pyproject.toml "
                f"with [tool.loopguard]; ${ENV_VAR} is not set): using the built-in default "
                "policy, which has no dollar cap",
            )
            return PolicySet(source=BUILT_IN)
        path = found
    policies = load_file(Path(path))
    _announce(logging.INFO, f"policy loaded from {policies.source}")
    return policies


def find_policy_file(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest loopguard.toml, loopguard.yaml/.yml or pyproject.toml with [tool.loopguard]
    in `start` (default: the working directory) or a folder above it, up to the first folder
    holding `.git` (the repository root) or the filesystem root. In one folder the names are
    tried in that order."""
    here = Path.cwd() if start is None else Path(start)
    for folder in _searched(here):
        for name in CANDIDATES:
            candidate = folder / name
            if candidate.is_file() and (name != "pyproject.toml" or _has_tool_table(candidate)):
                return candidate
    return None


def _searched(start: Path) -> Iterator[Path]:
    """`start` and the folders above it, up to the first holding `.git` or the root."""
    start = start.resolve()
    for folder in (start, *start.parents):
        yield folder
        if (folder / ".git").exists():
            return


def _search_root(start: Path) -> Path:
    *_, last = _searched(start)
    return last


def _announce(level: int, message: str) -> None:
    if message not in _announced:
        _announced.add(message)
        log.log(level, "loopguard: %s", message)


def load_file(path: Path) -> PolicySet:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "no such file (set by argument or $LOOPGUARD_CONFIG)") from None
    except IsADirectoryError:
        raise ConfigError(source, "is a directory, not a policy file") from None
    except OSError as exc:
        raise ConfigError(source, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, f"not UTF-8 text: {exc.reason}") from None
    return load_text(text, source, path.name)


def load_text(text: str, source: str, name: str = "loopguard.toml") -> PolicySet:
    """The policies in `text`, a file named `name` (its suffix says TOML or YAML; a
    pyproject.toml holds them in [tool.loopguard]); `source` names it in errors."""
    path = Path(name)
    suffix = path.suffix.lower()
    lines: dict[Path_, int]
    if suffix in (".yaml", ".yml"):
        data, lines = _parse_yaml(text, source)
    elif suffix == ".toml":
        data = _parse_toml(text, source)
        lines = _toml_lines(text)
        if path.name == "pyproject.toml":
            tool = data.get("tool", {})
            if not isinstance(tool, dict) or "loopguard" not in tool:
                raise ConfigError(source, "no [tool.loopguard] table")
            data = tool["loopguard"]
            lines = {k[2:]: v for k, v in lines.items() if k[:2] == ("tool", "loopguard")}
    else:
        raise ConfigError(source, "unknown file type; accepted: .toml, .yaml, .yml")
    prefix = "tool.loopguard." if path.name == "pyproject.toml" else ""
    return _policy_set(data, _Where(source, lines, prefix))


def policy_set_from_mapping(data: Any, *, source: str, text: str | None = None) -> PolicySet:
    """The policies in `data` (top-level keys: the default policy; `agents.<name>`: overrides).
    `text`, the TOML the data came from, lets errors name their lines."""
    lines = _toml_lines(text) if text else {}
    return _policy_set(data, _Where(source, lines, ""))


# --- validating -------------------------------------------------------------------------------


class _Where:
    """Where a key path is written: the source's name, its lines, the prefix of its keys."""

    def __init__(self, source: str, lines: Mapping[Path_, int], prefix: str) -> None:
        self.source, self.lines, self.prefix = source, lines, prefix

    def line(self, path: Sequence[str]) -> int | None:
        """The line of `path`, else of the nearest table above it that is written."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return None

    def error(self, path: Sequence[str], message: str) -> ConfigError:
        key = self.prefix + ".".join(path) if path else self.prefix.rstrip(".") or "(top level)"
        line = self.line(path) if path else 1 if self.lines else None
        return ConfigError(self.source, message, key=key, line=line)


def _policy_set(data: Any, where: _Where) -> PolicySet:
    if not isinstance(data, Mapping):
        raise where.error((), f"the top level must be a table of keys, got {type(data).__name__}")
    errors: list[ConfigError] = []
    raw_default = {k: v for k, v in data.items() if k != "agents"}
    # Merged and validated with the run limits at the top level (however they were written);
    # errors are named as written.
    flat_default = Policy.limits_at_top_level(raw_default)
    agents_raw = data.get("agents", {})
    if not isinstance(agents_raw, Mapping):
        errors.append(where.error(("agents",), "must be a table of agent names to policy tables"))
        agents_raw = {}
    default = _validate(flat_default, raw_default, where, (), errors)
    # An agent inherits the default as written (so an error in the default is reported once,
    # there, not again for every agent).
    base = merge_override(Policy().model_dump(), flat_default)
    agents: dict[str, Policy] = {}
    for name, over in agents_raw.items():
        path = ("agents", str(name))
        if not isinstance(over, Mapping):
            errors.append(where.error(path, "must be a table of policy keys"))
            continue
        flat = Policy.limits_at_top_level(over)
        policy = _validate(merge_override(base, flat), over, where, path, errors)
        if policy is not None:
            agents[str(name)] = policy
    if errors:
        raise ConfigError.of(sorted(errors, key=lambda e: e.line or 0))
    assert default is not None  # no errors: it validated
    return PolicySet(default=default, agents=agents, source=where.source)


def _validate(
    data: Mapping[str, Any],
    own: Mapping[str, Any],
    where: _Where,
    path: Path_,
    errors: list[ConfigError],
) -> Policy | None:
    """`data` as a Policy; None after adding its errors to `errors`. Only errors at keys in
    `own` (what this section itself sets) are reported: the rest were inherited, and reported
    where they were written."""
    found: list[ConfigError] = []
    seen: set[Path_] = set()
    dropped: set[Path_] = set()
    first = ""
    data = dict(data)
    # Pydantic checks across keys (warn below max, ...) only once every key is valid, so the
    # keys in error are dropped and the rest validated again, until no new error shows.
    for _ in range(_PASSES):
        try:
            policy = Policy.model_validate(data)
        except ValidationError as exc:
            new = False
            first = first or str(exc.errors()[0]["msg"])
            for err in exc.errors():
                flat = _loc(err)
                loc = Policy.key_path(flat, own)  # as written: max_model_calls or limits.*
                message = _explain(Policy, err, loc)
                if err["type"] == "value_error":  # a check across keys: at the key it names
                    if any(
                        d and d[:-1] == loc and re.search(rf"\b{re.escape(d[-1])}\b", message)
                        for d in dropped
                    ):
                        continue  # it names a key dropped above for its own error
                    loc, message = _named_key(message, own, loc)
                elif err["type"] == "missing" and loc in dropped:
                    continue  # dropped above for its own error
                _drop(data, flat[1:] if flat[:1] == ("limits",) else flat)
                dropped.add(loc)
                if (loc and not _sets(own, loc)) or loc in seen:
                    continue  # inherited, or already reported (one error per key)
                seen.add(loc)
                found.append(where.error((*path, *loc), message))
                new = True
            if not new:
                break
        else:
            if not found:
                return policy
            break
    if not found:  # every error was inherited, yet the default loaded: say where it bites
        found.append(where.error(path, f"this section does not load: {first}"))
    errors.extend(found)
    return None


_PASSES = 4  # rounds of validation per section (field errors, then the checks across keys)


def _drop(data: dict[str, Any], loc: Path_) -> None:
    """Remove the value at `loc` (copying the tables on the way, which may be shared)."""
    node: Any = data
    for part in loc[:-1]:
        if isinstance(node, dict) and isinstance(node.get(part), (dict, list)):
            node[part] = child = (
                dict(node[part]) if isinstance(node[part], dict) else list(node[part])
            )
            node = child
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            if isinstance(node[int(part)], dict):
                node[int(part)] = dict(node[int(part)])
            node = node[int(part)]
        else:
            return
    if loc and isinstance(node, dict):
        node.pop(loc[-1], None)


def validation_error(exc: ValidationError, model: type[BaseModel], source: str) -> ConfigError:
    """A pydantic error of `model` (from Python code, not a file) as a ConfigError."""
    where = _Where(source, {}, "")
    errors = []
    for e in exc.errors():
        loc = Policy.key_path(_loc(e), {}) if model is Policy else _loc(e)
        errors.append(where.error(loc, _explain(model, e, loc)))
    return ConfigError.of(errors)


def _loc(err: Any) -> Path_:
    # Union members and validator names ("function-after[...]", "constrained-int") are not keys.
    return tuple(str(p) for p in err["loc"] if not re.search(r"[\[\]]|^constrained-", str(p)))


def _named_key(message: str, own: Mapping[str, Any], loc: Path_) -> tuple[Path_, str]:
    """`loc` and the key a cross-key check names first, when the section sets it: "warn_polls
    (20) must not be above max_polls (5)", or "budgets.0: ..." (then said once, not twice)."""
    m = re.match(r"(\w+) \(", message)
    if m and _sets(own, (*loc, m.group(1))):
        return (*loc, m.group(1)), message
    m = re.match(r"([\w-]+(?:\.[\w-]+)*): (.+)", message, re.S)
    if m and _sets(own, (*loc, *m.group(1).split("."))):
        return (*loc, *m.group(1).split(".")), m.group(2)
    return loc, message


def _sets(own: Mapping[str, Any], loc: Path_) -> bool:
    """Whether the section `own` writes the key at `loc` (or a table above it)."""
    node: Any = own
    for part in loc:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return node is not own  # below a value the section set (a list, a table)
    return True


def _explain(model: type[BaseModel], err: Any, loc: Sequence[str]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        accepted = _accepted_keys(model, list(loc[:-1]))
        close = difflib.get_close_matches(loc[-1], accepted, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key{hint}; accepted keys: {', '.join(accepted)}"
    got = err.get("input")
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    msg = err["msg"]
    if kind == "value_error":
        return str(msg.removeprefix("Value error, "))
    return f"{msg[0].lower()}{msg[1:]} (got {shown})"


def _accepted_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    if model is Policy and not loc:
        return Policy.accepted_keys()
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
    fields = getattr(current, "model_fields", {})
    return sorted(fields)


# --- inheritance: an agent's section over the default ----------------------------------------

_LEVEL = re.compile(r"^(warn|nudge|max|abort)_(\w+)$")
_RANK = {"warn": 0, "nudge": 1, "max": 2, "abort": 2}


def merge_override(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with the keys of `over` (nested tables merged key by key).

    A limit that `over` lowers takes its inherited warning and nudge thresholds down with it,
    in proportion (as `warn_ratio` does for a limit without its own `warn_*`): lowering
    `tool_repeat.max_polls` from 40 to 5 takes the inherited `warn_polls` from 20 to 2. A
    threshold the section sets itself is kept as written, and checked against its limit.
    """
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge_override(out[key], value)
        else:
            out[key] = value
    for key, value in over.items():
        m = _LEVEL.match(key)
        old = _number(base.get(key))
        new = _number(value)
        if m is None or new is None or old is None or new >= old:
            continue
        kind, what = m.groups()
        for lower, rank in _RANK.items():
            name = f"{lower}_{what}"
            inherited = _number(base.get(name))
            if rank < _RANK[kind] and name not in over and inherited is not None:
                out[name] = _scaled(inherited, new / old if old else 0.0, new)
    return out


def _number(value: Any) -> float | None:
    """`value` if it is a number (not a bool), else None."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _scaled(value: float, ratio: float, cap: float) -> float:
    scaled = min(value * ratio, cap)
    if isinstance(value, int):
        return max(math.floor(scaled), min(1, int(cap)))
    return float(f"{scaled:.8g}")


# --- parsing, with the line of every key ------------------------------------------------------


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(m.group(1)) if m else None
        reason = re.sub(r"\s*\(at line.*\)", "", str(exc))
        raise ConfigError(source, f"invalid TOML: {reason}", line=line) from None


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            source, "YAML policies need PyYAML: pip install 'langchain-loopguard[yaml]'"
        ) from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, f"invalid YAML: {problem}", line=line) from None
    lines: dict[Path_, int] = {}

    def walk(n: Any, path: Path_) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = (*path, str(k.value))
                if k.tag not in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"):
                    raise ConfigError(
                        source,
                        f"{'.'.join(key)}: a key must be a string (quote it)",
                        line=k.start_mark.line + 1,
                    )
                lines.setdefault(key, k.start_mark.line + 1)
                walk(v, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                lines.setdefault((*path, str(i)), v.start_mark.line + 1)
                walk(v, (*path, str(i)))

    walk(node, ())
    return ({} if data is None else data), lines


def _has_tool_table(path: Path) -> bool:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return isinstance(data.get("tool"), dict) and "loopguard" in data["tool"]


_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _toml_lines(text: str) -> dict[Path_, int]:
    """The line of every key path in a valid TOML text: tables, array-of-table entries, keys,
    keys inside inline tables and array items (indices as strings)."""
    try:
        return _TomlLines(text).lines
    except (ValueError, IndexError, AssertionError):
        # The lines only serve messages: a file tomllib accepts must load even if this
        # scanner trips on it, its errors then named without lines.
        return {}


class _TomlLines:
    """Just enough of a TOML scanner to say where each key is written (the text already
    parsed, so it can trust the syntax)."""

    def __init__(self, text: str) -> None:
        self.s, self.i, self.n = text, 0, len(text)
        self.lines: dict[Path_, int] = {}
        self.counts: dict[Path_, int] = {}
        table: Path_ = ()
        while True:
            self._blank(newlines=True)
            if self.i >= self.n:
                break
            line = self._line()
            if self.s.startswith("[[", self.i):
                self.i += 2
                name = self._key()
                index = self.counts.get(name, 0)
                self.counts[name] = index + 1
                table = (*name, str(index))
                self._mark(table, line)
                self.i = self.s.index("]]", self.i) + 2
            elif self.s[self.i] == "[":
                self.i += 1
                table = self._key()
                self._mark(table, line)
                self.i = self.s.index("]", self.i) + 1
            else:
                key = (*table, *self._key())
                self._mark(key, line)
                self.i += 1  # "="
                self._value(key)

    def _line(self) -> int:
        return self.s.count("\n", 0, self.i) + 1

    def _mark(self, path: Path_, line: int) -> None:
        for depth in range(1, len(path) + 1):
            self.lines.setdefault(path[:depth], line)

    def _blank(self, newlines: bool) -> None:
        while self.i < self.n:
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#":
                end = self.s.find("\n", self.i)
                self.i = self.n if end < 0 else end
            else:
                return

    def _key(self) -> Path_:
        parts: list[str] = []
        while True:
            self._blank(newlines=False)
            c = self.s[self.i]
            if c in "\"'":
                parts.append(self._string())
            else:
                m = _BARE.match(self.s, self.i)
                if m is None:
                    break
                parts.append(m.group())
                self.i = m.end()
            self._blank(newlines=False)
            if self.i < self.n and self.s[self.i] == ".":
                self.i += 1
                continue
            break
        return tuple(parts)

    def _string(self) -> str:
        q = self.s[self.i]
        if self.s.startswith(q * 3, self.i):
            end = self.s.index(q * 3, self.i + 3)
            while self.s.startswith(q, end + 3):  # up to two quotes may end the content
                end += 1
            value = self.s[self.i + 3 : end]
            self.i = end + 3
            return value
        j = self.i + 1
        while self.s[j] != q:
            j += 2 if q == '"' and self.s[j] == "\\" else 1
        value = self.s[self.i + 1 : j]
        self.i = j + 1
        return value

    def _value(self, path: Path_) -> None:
        self._blank(newlines=False)
        c = self.s[self.i]
        if c in "\"'":
            self._string()
        elif c == "{":
            self.i += 1
            while True:
                self._blank(newlines=True)
                if self.s[self.i] == "}":
                    self.i += 1
                    return
                if self.s[self.i] == ",":
                    self.i += 1
                    continue
                line = self._line()
                key = (*path, *self._key())
                self._mark(key, line)
                self.i += 1  # "="
                self._value(key)
        elif c == "[":
            self.i += 1
            index = 0
            while True:
                self._blank(newlines=True)
                if self.s[self.i] == "]":
                    self.i += 1
                    return
                if self.s[self.i] == ",":
                    self.i += 1
                    index += 1
                    continue
                item = (*path, str(index))
                self._mark(item, self._line())
                self._value(item)
        else:
            m = re.compile(r"[^,\]}\n#]*").match(self.s, self.i)
            assert m is not None
            self.i = m.end()
