"""One exception hierarchy, and the names users imported before it kept working."""

from __future__ import annotations

import pickle

import pytest

import loopguard
from loopguard import ConfigError, Guard, LoopGuardAbort, LoopGuardError, Policy, PolicySet
from loopguard.events import EventFormatError, ModelStart, from_dict
from loopguard.pricing import packaged_table


def test_every_error_is_a_loopguard_error_and_keeps_its_builtin_base() -> None:
    from loopguard import errors

    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.EventFormatError, ValueError)
    assert issubclass(errors.LedgerUnavailable, RuntimeError)
    assert issubclass(errors.UnknownModel, LookupError)
    # RuntimeError: LangGraph's default retry policy must not retry an abort.
    assert issubclass(errors.LoopGuardAbort, RuntimeError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), LoopGuardError)


def test_old_import_locations_are_the_same_classes() -> None:
    from loopguard import config, errors, events, verdict
    from loopguard.ledger import LedgerUnavailable
    from loopguard.ledger.base import LedgerUnavailable as from_base
    from loopguard.pricing import UnknownModel

    assert config.ConfigError is errors.ConfigError is loopguard.ConfigError
    assert events.EventFormatError is errors.EventFormatError
    assert verdict.LoopGuardAbort is errors.LoopGuardAbort is loopguard.LoopGuardAbort
    assert LedgerUnavailable is from_base is errors.LedgerUnavailable
    assert UnknownModel is errors.UnknownModel
    assert events.ModelError is events.ModelFailed
    assert events.ToolError is events.ToolFailed


def test_the_errors_loopguard_raises_are_caught_as_loopguard_error(tmp_path) -> None:
    bad = tmp_path / "loopguard.toml"
    bad.write_text("max_model_calls = -1\n")
    with pytest.raises(LoopGuardError) as caught:
        PolicySet.load(bad)
    assert isinstance(caught.value, ConfigError)

    with pytest.raises(LoopGuardError):
        from_dict({"v": 1, "type": "nonsense", "run": "r", "ts": 0})
    with pytest.raises(EventFormatError):
        from_dict({"v": 1, "type": "nonsense", "run": "r", "ts": 0})

    with pytest.raises(LoopGuardError):
        packaged_table().resolve("no-such-model-anywhere")

    guard = Guard(Policy(max_model_calls=0))
    with pytest.raises(LoopGuardError) as stopped:
        guard.process(ModelStart(run="r", model="m"))
    assert isinstance(stopped.value, LoopGuardAbort)
    again = pickle.loads(pickle.dumps(stopped.value))
    assert type(again) is LoopGuardAbort and again.verdict.detector == "limits"


def test_event_type_strings_did_not_change_with_the_class_names() -> None:
    from loopguard.events import EVENT_TYPES, ModelFailed, ToolFailed

    assert ModelFailed.type == "model_error" and EVENT_TYPES["model_error"] is ModelFailed
    assert ToolFailed.type == "tool_error" and EVENT_TYPES["tool_error"] is ToolFailed
