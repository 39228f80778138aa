"""growth: outputs growing step after step."""

from __future__ import annotations

from loopguard.events import ModelEnd, ModelStart, Usage
from loopguard.verdict import Action
from tests.detectors.conftest import feed, only


def _outputs(sizes: list[int]) -> list:
    return [ModelEnd(run="r", model="m", ts=i, usage=Usage(100, s)) for i, s in enumerate(sizes)]


def test_snowballing_output_escalates() -> None:
    verdicts, stop = feed(_outputs([600, 1000, 1700, 2900, 5000, 8500]), only("growth"))
    assert [v.action for v in verdicts] == [Action.WARN, Action.NUDGE]
    assert stop is not None and stop.evidence["start_step"] == 1
    assert stop.evidence["sizes"][0] == 600


def test_steady_long_outputs_are_fine() -> None:
    verdicts, stop = feed(_outputs([1500, 1400, 1600, 1450, 1550] * 4), only("growth"))
    assert verdicts == [] and stop is None


def test_small_outputs_growing_are_conversation() -> None:
    verdicts, stop = feed(_outputs([10, 20, 40, 80, 160, 320, 640]), only("growth"))
    assert verdicts == [] and stop is None


def test_a_pause_in_growth_resets() -> None:
    _verdicts, stop = feed(
        _outputs([1000, 1400, 2000, 1900, 2600, 3500, 3000, 4000]), only("growth")
    )
    assert stop is None


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(800, 2000), min_size=1, max_size=60))
def test_outputs_of_bounded_size_never_abort(sizes: list[int]) -> None:
    # within 800..2000 tokens at most three steps in a row can grow by 1.3x
    _, stop = feed(_outputs(sizes), only("growth"))
    assert stop is None


def _reads(pages: int, page_tokens: int, *, own: bool = False, keep: bool = True) -> list:
    """Calls whose input grows by `page_tokens` a step: from tool results, or (own=True) from
    the model's own answers; keep=False: the context is summarised, the input stays flat."""
    events, tokens = [], 3000
    for i in range(pages):
        output = page_tokens if own else 50
        events.append(ModelStart(run="r", model="m", ts=4.0 * i))
        events.append(ModelEnd(run="r", model="m", ts=4.0 * i + 3, usage=Usage(tokens, output)))
        if keep:
            tokens += output + (50 if own else page_tokens)
    return events


def test_a_context_snowballing_with_long_results_is_stopped() -> None:
    verdicts, stop = feed(_reads(12, 2000), only("growth"))
    assert [v.action for v in verdicts] == [Action.WARN, Action.NUDGE]
    assert [v.step for v in verdicts] == [5, 8]
    assert stop is not None and stop.step == 9 and stop.evidence["rule"] == "input"
    assert stop.evidence["start_step"] == 2 and stop.evidence["repeats"] == 8


def test_input_grown_by_the_models_own_answers_or_kept_flat_is_fine() -> None:
    for events in (_reads(20, 1500, own=True), _reads(20, 2000, keep=False)):
        verdicts, stop = feed(events, only("growth", min_tokens=100_000))
        assert verdicts == [] and stop is None
