"""The shared escalation: thresholds in repetitions, the same for every period."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loopguard.detectors._escalation import Escalation, escalate
from loopguard.verdict import Action


@pytest.mark.parametrize(
    ("repeated", "period", "expected"),
    [
        (0, 1, Action.OK),
        (1, 1, Action.WARN),
        (2, 1, Action.NUDGE),
        (3, 1, Action.ABORT),
        (1, 2, Action.OK),
        (2, 2, Action.WARN),
        (4, 2, Action.NUDGE),
        (5, 2, Action.ABORT),
        (5, 3, Action.WARN),
        (6, 3, Action.NUDGE),
        (7, 3, Action.ABORT),
    ],
)
def test_levels_by_period(repeated: int, period: int, expected: Action) -> None:
    assert Escalation().level(repeated, period) is expected


def test_warn_and_nudge_once_per_loop_abort_every_time() -> None:
    cfg, emitted = Escalation(nudge_once=False), {}
    actions = [escalate(cfg, emitted, "k", "d", n, 1, "r", "m") for n in (1, 1, 2, 2)]
    assert [a.action if a else None for a in actions] == [Action.WARN, None, Action.NUDGE, None]
    assert escalate(cfg, emitted, "k", "d", 3, 1, "r", "m").action is Action.ABORT
    assert escalate(cfg, emitted, "k", "d", 4, 1, "r", "m").action is Action.ABORT
    escalate(cfg, emitted, "k", "d", 0, 1, "r", "m")  # the loop broke
    assert escalate(cfg, emitted, "k", "d", 1, 1, "r", "m").action is Action.WARN


def test_a_nudged_loop_flagged_again_is_stopped() -> None:
    cfg, emitted = Escalation(), {}  # nudge_once is the default
    actions = [escalate(cfg, emitted, "k", "d", n, 1, "r", "m") for n in (1, 1, 2)]
    assert [a.action if a else None for a in actions] == [Action.WARN, None, Action.NUDGE]
    escalate(cfg, emitted, "k", "d", 0, 1, "r", "m")  # the loop broke after its nudge ...
    again = escalate(cfg, emitted, "k", "d", 1, 1, "r", "m")  # ... and came back
    assert again is not None and again.action is Action.ABORT
    assert again.reason == "r after a nudge"
    # another loop of the same detector starts with a warning
    other = escalate(cfg, emitted, "j", "d", 1, 1, "r", "m")
    assert other is not None and other.action is Action.WARN


def test_a_loop_still_at_its_nudge_level_on_a_later_step_is_stopped() -> None:
    cfg, emitted = Escalation(), {}
    escalate(cfg, emitted, "k", "d", 2, 1, "r", "m")  # nudged
    again = escalate(cfg, emitted, "k", "d", 2, 1, "r", "m")
    assert again is not None and again.action is Action.ABORT


def test_evidence_has_period_repeats_and_the_message() -> None:
    v = escalate(Escalation(), {}, "k", "d", 4, 2, "why", "tell the model", start_step=3)
    assert v.evidence == {"message": "tell the model", "start_step": 3, "period": 2, "repeats": 2}


def test_levels_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="nudge_repeats"):
        Escalation(nudge_repeats=4, abort_repeats=2)


def test_unknown_keys_are_errors() -> None:
    with pytest.raises(ValidationError):
        Escalation(abort_after=3)  # type: ignore[call-arg]
