"""Hostile input to the two readers of user files: recordings (`read_events`, under `replay`,
`export` and `calibrate`) and policy files. Every input gives a result or an error that names the
file (and line), never a traceback."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopguard.cli import main
from loopguard.config import ConfigError, load_file, load_text
from loopguard.events import Event
from loopguard.replay import LineError, read_events

GOOD = {
    "v": 2,
    "type": "model_start",
    "run": "r",
    "agent": "a",
    "ts": 1.5,
    "model": "m",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 10,
}
END = {"v": 1, "type": "run_end", "run": "r", "agent": "a", "ts": 2.0, "status": "ok"}

HOSTILE = [
    b'{"v": 1, "type": [], "run": "r", "ts": 1}',
    b'{"v": 1, "type": "run_end", "run": "r", "ts": 1, "x": ' + b"9" * 5000 + b"}",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"v": 1, "type": "run_end", "run": "r", "ts": ' + b"9" * 400 + b"}",
    b'{"v": 1, "type": "run_end", "run": "r", "ts": NaN}',
    b'{"v": 1, "type": "run_end", "run": "r", "ts": 1e999}',
    b'{"v": 2, "type": "model_start", "run": "r", "ts": 1, "model": "m", "prefix": '
    + b"9" * 400
    + b"}",
    b"\xff\xfe not text",
]


def read(data: bytes) -> tuple[list[Event], list[LineError]]:
    errors: list[LineError] = []
    f = io.BytesIO(data)
    f.name = "runs.jsonl"  # type: ignore[attr-defined]
    return list(read_events(f, on_error=errors.append)), errors


def test_hostile_lines_are_reported_and_the_runs_around_them_kept() -> None:
    lines = [json.dumps(GOOD).encode(), *HOSTILE, json.dumps(END).encode()]
    events, errors = read(b"\n".join(lines) + b"\n")
    assert [e.type for e in events] == ["model_start", "run_end"]
    assert [e.line for e in errors] == list(range(2, 2 + len(HOSTILE)))
    assert all(str(e).startswith(f"runs.jsonl:{e.line}: ") for e in errors)


@pytest.mark.parametrize("command", ["replay", "export"])
def test_the_commands_go_on_past_hostile_lines(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b"\n".join([json.dumps(GOOD).encode(), *HOSTILE, json.dumps(END).encode()]))
    out = tmp_path / "out.json"
    code = main([command, str(path), *(["-o", str(out)] if command == "export" else [])])
    err = capsys.readouterr().err
    assert code in (0, 1), err
    assert "Traceback" not in err
    assert f"{path}:2: " in err and f"{path}:{1 + len(HOSTILE)}: " in err


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["model_start", "run_end", "tool_start", "user", "ok", "r"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


# Valid events with one field replaced, dropped or added: near misses reach the deep checks.
_FIELDS = [*GOOD, "prefix", "usage", "tool_calls", "args", "status", "meta", "text", "v"]
_EVENTS = [
    GOOD,
    END,
    {**GOOD, "type": "model_end", "text": "t", "usage": {"input_tokens": 3}},
    {**GOOD, "type": "tool_start", "tool": "t", "args": {"q": 1}},
    {**GOOD, "prefix": 1},
]


@st.composite
def _lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=40))
    if kind == 1:
        return json.dumps(draw(_JSON)).encode()
    event = dict(draw(st.sampled_from(_EVENTS)))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(_FIELDS))
        if draw(st.booleans()):
            event.pop(key, None)
        else:
            event[key] = draw(_JSON)
    return json.dumps(event).encode()


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_lines(), min_size=1, max_size=5))
def test_fuzz_every_line_is_an_event_or_a_located_error(lines: list[bytes]) -> None:
    data = b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n"
    events, errors = read(data)
    assert len(events) + len(errors) == sum(1 for line in data.split(b"\n") if line.strip())
    for error in errors:
        assert str(error).startswith(f"runs.jsonl:{error.line}: ") and error.reason


POLICY = """\
max_model_calls = 20
max_cost_usd = 0.5

[cycle]
min_repeats = 3

[agents.support]
max_tool_calls = 5
"""


@st.composite
def _policies(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(["loopguard.toml", "loopguard.yaml", "pyproject.toml"]))
    if draw(st.booleans()):
        return name, draw(st.text(max_size=60))
    lines = POLICY.splitlines()
    at = draw(st.integers(0, len(lines) - 1))
    junk = draw(
        st.sampled_from(["= 1", "[", "x = [[[[", "max_model_calls = true", "a.b.c = 1", "- x"])
        | st.text(max_size=20)
    )
    lines[at] = draw(st.sampled_from([junk, lines[at] + junk, lines[at][: len(lines[at]) // 2]]))
    return name, "\n".join(lines)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_policies())
def test_fuzz_a_policy_file_loads_or_names_its_error(policy: tuple[str, str]) -> None:
    name, text = policy
    try:
        load_text(text, f"/p/{name}", name)
    except ConfigError as exc:
        assert str(exc).startswith(f"/p/{name}"), str(exc)


def test_a_policy_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "loopguard.toml"
    path.write_bytes(b"max_model_calls = 5\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_file(path)


def test_a_yaml_key_that_is_not_a_string_names_its_line() -> None:
    with pytest.raises(ConfigError, match=r"^/p/loopguard.yaml:2: 0: a key must be a string"):
        load_text("max_model_calls: 5\n0: 2\n", "/p/loopguard.yaml", "loopguard.yaml")
