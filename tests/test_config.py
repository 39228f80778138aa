"""Loading policies from files, and the errors a bad file gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopguard import ConfigError, Policy, PolicySet

TOML = """\
mode = "enforce"
max_model_calls = 40
max_seconds = 600

[max_calls_per_tool]
web_search = 10

[agents.researcher]
max_model_calls = 120
max_tokens = 2_000_000

[agents.support-bot]
mode = "shadow"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_default_and_per_agent_overrides(tmp_path: Path) -> None:
    policies = PolicySet.load(str(write(tmp_path, "loopguard.toml", TOML)))
    assert policies.default.max_model_calls == 40
    researcher = policies.for_agent("researcher")
    assert researcher.max_model_calls == 120
    assert researcher.max_seconds == 600  # inherited from the default
    assert researcher.max_calls_per_tool == {"web_search": 10}
    assert researcher.max_tokens == 2_000_000
    assert policies.for_agent("support-bot").mode == "shadow"
    assert policies.for_agent("unknown") is policies.default
    assert policies.for_agent(None) is policies.default


def test_yaml_and_pyproject_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    yaml_path = write(
        tmp_path, "policy.yaml", "max_model_calls: 7\nagents:\n  a:\n    max_tool_calls: 3\n"
    )
    policies = PolicySet.load(str(yaml_path))
    assert policies.default.max_model_calls == 7
    assert policies.for_agent("a").max_tool_calls == 3

    write(
        tmp_path,
        "pyproject.toml",
        "[project]\nname='x'\n\n[tool.loopguard]\n"
        "max_model_calls = 9\n\n[tool.loopguard.agents.b]\n"
        "max_model_calls = 11\n",
    )
    monkeypatch.chdir(tmp_path)
    policies = PolicySet.load()
    assert policies.default.max_model_calls == 9 and policies.for_agent("b").max_model_calls == 11

    monkeypatch.setenv("LOOPGUARD_CONFIG", str(yaml_path))
    assert PolicySet.load().default.max_model_calls == 7


def test_loopguard_toml_is_found_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "loopguard.toml", "max_model_calls = 5\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOPGUARD_CONFIG", raising=False)
    assert PolicySet.load().default.max_model_calls == 5


def test_no_file_means_the_built_in_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOPGUARD_CONFIG", raising=False)
    assert PolicySet.load().default == Policy()


@pytest.mark.parametrize(
    ("text", "line", "key", "says"),
    [
        (
            "max_model_call = 5\n",
            1,
            "max_model_call",
            "unknown key (did you mean 'max_model_calls'?)",
        ),
        ("max_model_calls = -1\n", 1, "max_model_calls", "greater than or equal to 0"),
        ("max_model_calls = 'many'\n", 1, "max_model_calls", "valid integer"),
        ('mode = "loud"\n', 1, "mode", "'enforce' or 'shadow'"),
        (
            "[agents.r]\nmax_tool_calls = 5\nmax_secs = 3\n",
            3,
            "agents.r.max_secs",
            "accepted keys:",
        ),
        (
            "max_model_calls = 5\n[agents.r]\nwarn_model_calls = 9\n",
            2,
            "agents.r",
            "warn_model_calls (9) must not be above max_model_calls (5)",
        ),
        (
            "[max_calls_per_tool]\nsearch = -2\n",
            2,
            "max_calls_per_tool.search",
            "greater than or equal to 0",
        ),
        ("agents = 3\n", 1, "agents", "must be a table"),
    ],
)
def test_bad_files_name_file_line_key_and_what_is_accepted(
    tmp_path: Path, text: str, line: int, key: str, says: str
) -> None:
    path = write(tmp_path, "loopguard.toml", text)
    with pytest.raises(ConfigError) as info:
        PolicySet.load(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: {key}"), message
    assert says in message, message


def test_broken_toml_syntax_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "loopguard.toml", "max_model_calls = 5\nmode = \n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: invalid TOML"):
        PolicySet.load(str(path))


def test_broken_yaml_syntax_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "loopguard.yaml", "max_model_calls: 5\nagents: [a\n")
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: invalid YAML"):
        PolicySet.load(str(path))


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        PolicySet.load(str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"accepted: \.toml, \.yaml, \.yml"):
        PolicySet.load(str(write(tmp_path, "policy.ini", "x=1")))


def test_pyproject_without_tool_table(tmp_path: Path) -> None:
    path = write(tmp_path, "pyproject.toml", "[project]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"no \[tool.loopguard\] table"):
        PolicySet.load(str(path))


def test_policy_in_code() -> None:
    policy = Policy(
        max_model_calls=10,
        max_tool_calls=20,
        max_seconds=30,
        max_tokens=40,
        max_calls_per_tool={"search": 3},
    )
    assert policy.warn_at("model_calls") == 8  # warn_ratio 0.8 by default
    assert Policy(max_model_calls=10, warn_model_calls=5).warn_at("model_calls") == 5
    assert policy.merged({"max_model_calls": 99}).max_model_calls == 99
    with pytest.raises(ValueError):
        Policy(max_model_calls=-1)
    with pytest.raises(ValueError):
        Policy(max_model_cals=1)  # type: ignore[call-arg]
    dict_set = PolicySet.from_dict({"max_model_calls": 4, "agents": {"x": {"max_model_calls": 8}}})
    assert dict_set.for_agent("x").max_model_calls == 8


def test_an_unknown_ledger_names_its_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "loopguard.toml", 'max_cost_usd = 1\nledger = "postgres://db"\n')
    with pytest.raises(ConfigError) as info:
        PolicySet.load(str(path))
    assert str(info.value).startswith(f"{path}:2: ledger: unknown ledger URI 'postgres://db'")
    assert "accepted schemes: memory://, sqlite://, redis://, rediss://" in str(info.value)
