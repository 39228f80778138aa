"""Loading policies from files, and the errors a bad file gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopguard import ConfigError, Policy, PolicySet
from tests.conftest import require

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
            3,
            "agents.r.warn_model_calls",
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


# --- discovery (issue 13, item 1) ---------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository folder (with .git) inside tmp_path, and no $LOOPGUARD_CONFIG."""
    monkeypatch.delenv("LOOPGUARD_CONFIG", raising=False)
    monkeypatch.setattr("loopguard.config._announced", set())
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "app" / "jobs").mkdir(parents=True)
    return root


def test_the_policy_is_found_upward_from_the_working_directory(
    repo: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write(repo, "loopguard.toml", "max_model_calls = 5\n")
    monkeypatch.chdir(repo / "app" / "jobs")
    with caplog.at_level("INFO", logger="loopguard"):
        assert PolicySet.load().default.max_model_calls == 5
        assert PolicySet.load().source == str(repo.resolve() / "loopguard.toml")
    loaded = [r for r in caplog.records if "policy loaded from" in r.getMessage()]
    assert len(loaded) == 1 and loaded[0].levelname == "INFO"  # said once
    assert str(repo.resolve() / "loopguard.toml") in loaded[0].getMessage()


def test_the_nearest_file_wins_and_a_pyproject_without_the_table_is_passed_over(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(repo, "loopguard.yaml", "max_model_calls: 5\n")
    write(repo / "app", "pyproject.toml", "[project]\nname = 'app'\n")
    monkeypatch.chdir(repo / "app" / "jobs")
    assert PolicySet.load().default.max_model_calls == 5
    write(
        repo / "app",
        "pyproject.toml",
        "[project]\nname='app'\n[tool.loopguard]\nmax_model_calls = 7\n",
    )
    assert PolicySet.load().default.max_model_calls == 7


def test_the_search_stops_at_the_repository_root_with_a_warning(
    repo: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write(repo.parent, "loopguard.toml", "max_model_calls = 5\n")  # outside the repository
    monkeypatch.chdir(repo / "app")
    with caplog.at_level("INFO", logger="loopguard"):
        policies = PolicySet.load()
        PolicySet.load()
    assert policies.default == Policy() and policies.source == "<built-in default>"
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "no policy file found" in warning.getMessage()
    assert str(repo.resolve()) in warning.getMessage() and "no dollar cap" in warning.getMessage()


def test_loopguard_config_comes_first(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(repo, "loopguard.toml", "max_model_calls = 5\n")
    elsewhere = write(repo.parent, "other.toml", "max_model_calls = 9\n")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("LOOPGUARD_CONFIG", str(elsewhere))
    assert PolicySet.load().default.max_model_calls == 9


# --- every error, with its line (item 2) -------------------------------------------------------

MANY_MISTAKES = """\
max_model_call = 5
max_calls_per_tool = {search = -2, fetch = 3}
max_tool_calls = true
warn_seconds = 50
max_seconds = 10

[agents.a]
cycle = {min_period = 9, max_period = 3}
prices = {"my-model" = {input = 1.0, output = "x"}}

[[budgets]]
max_usd = 10
[[budgets]]
period = "week"
max_usd = 1
"""


def test_every_error_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "loopguard.toml", MANY_MISTAKES)
    with pytest.raises(ConfigError) as info:
        PolicySet.load(str(path))
    found = [(e.line, e.key) for e in info.value.errors]
    assert found == [
        (1, "max_model_call"),
        (2, "max_calls_per_tool.search"),  # inside an inline table
        (3, "max_tool_calls"),  # a boolean is not a count
        (4, "warn_seconds"),  # a check across top-level keys
        (8, "agents.a.cycle.min_period"),
        (9, "agents.a.prices.my-model.output"),
        (14, "budgets.1.period"),
    ]
    lines = str(info.value).splitlines()
    assert len(lines) == 7
    assert lines[2] == f"{path}:3: max_tool_calls: input should be a valid integer (got True)"
    assert (
        lines[3]
        == f"{path}:4: warn_seconds: warn_seconds (50.0) must not be above max_seconds (10.0)"
    )


def test_pyproject_errors_name_the_whole_key_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pyproject.toml",
        "[project]\nname = 'x'\n\n[tool.loopguard]\nmax_model_calls = 'x'\n"
        "[tool.loopguard.agents.b.velocity]\nwindow_seconds = -1\n",
    )
    with pytest.raises(ConfigError) as info:
        PolicySet.load(str(path))
    assert [(e.line, e.key) for e in info.value.errors] == [
        (5, "tool.loopguard.max_model_calls"),
        (7, "tool.loopguard.agents.b.velocity.window_seconds"),
    ]


def test_yaml_yes_is_not_a_count(tmp_path: Path) -> None:
    require("yaml")
    path = write(
        tmp_path, "loopguard.yaml", "max_tool_calls: 3\nagents:\n  a:\n    max_model_calls: yes\n"
    )
    with pytest.raises(ConfigError) as info:
        PolicySet.load(str(path))
    assert str(info.value) == (
        f"{path}:4: agents.a.max_model_calls: input should be a valid integer (got True)"
    )


def test_the_python_api_is_strict_and_raises_the_same_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        Policy(max_model_calls=True, warn_ratio=3)
    assert str(info.value).splitlines() == [
        "Policy(...): max_model_calls: input should be a valid integer (got True)",
        "Policy(...): warn_ratio: input should be less than or equal to 1 (got 3)",
    ]
    with pytest.raises(ConfigError, match=r"^Policy\(\.\.\.\): similarity.threshold: "):
        Policy(similarity={"threshold": True})
    with pytest.raises(ConfigError, match=r"<dict>: agents.x.max_tool_calls: .*valid integer"):
        PolicySet.from_dict({"agents": {"x": {"max_tool_calls": "3"}}})


# --- per-agent overrides that lower a limit (item 3) --------------------------------------------


def test_lowering_a_limit_scales_its_inherited_thresholds(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "loopguard.toml",
        "max_model_calls = 100\nwarn_model_calls = 80\n"
        "[agents.support]\nmax_model_calls = 50\n"
        "[agents.support.tool_repeat]\nmax_polls = 5\n"
        "[agents.support.cycle]\nabort_repeats = 1\n",
    )
    support = PolicySet.load(str(path)).for_agent("support")
    assert support.tool_repeat.max_polls == 5 and support.tool_repeat.warn_polls == 2  # 20 * 5/40
    assert support.max_model_calls == 50 and support.warn_model_calls == 40  # 80 * 50/100
    assert (support.cycle.warn_repeats, support.cycle.nudge_repeats) == (1, 1)
    assert Policy().merged({"tool_repeat": {"max_polls": 5}}).tool_repeat.warn_polls == 2


def test_thresholds_set_in_the_same_section_are_checked_against_each_other(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "loopguard.toml",
        "[agents.support.tool_repeat]\nmax_polls = 5\nwarn_polls = 10\n",
    )
    with pytest.raises(ConfigError) as info:
        PolicySet.load(str(path))
    assert str(info.value) == (
        f"{path}:3: agents.support.tool_repeat.warn_polls: warn_polls (10) must not be above "
        "max_polls (5)"
    )


def test_lines_are_right_after_strings_arrays_and_comments(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "loopguard.toml",
        '[model_aliases]\n"arn:aws:x # = y" = """one\n= two\n"""\n'  # lines 1-4
        "[[budgets]]\nmax_usd = 1  # a comment with = [ {\n"  # lines 5-6
        "[[agents.a.budgets]]\nmax_usd = [\n  1,\n]\n",  # lines 7-10
    )
    with pytest.raises(ConfigError) as info:
        PolicySet.load(str(path))
    assert [(e.line, e.key) for e in info.value.errors] == [(8, "agents.a.budgets.0.max_usd")]


def test_a_check_across_keys_that_names_no_key_is_reported_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "loopguard.toml",
        'ledger = "redis+cluster://127.0.0.1:1/0?shard=tenant"\nmax_model_calls = -1\n'
        '[[budgets]]\nscope = "global"\nmax_usd = 1\n',
    )
    with pytest.raises(ConfigError) as info:
        PolicySet.load(str(path))
    assert [(e.line, e.key) for e in info.value.errors] == [
        (2, "max_model_calls"),
        (3, "budgets.0"),  # the check names the budget: its [[budgets]] line
    ]
    assert info.value.errors[1].reason.startswith("a ledger sharded by 'tenant'")
