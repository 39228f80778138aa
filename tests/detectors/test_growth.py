"""growth: outputs growing step after step."""

from __future__ import annotations

from loopguard.events import ModelEnd, ModelStart, ToolCall, Usage
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


def _reads(
    pages: int,
    page_tokens: int,
    *,
    own: bool = False,
    keep: bool = True,
    prompt: int = 3000,
    answer: bool = False,
    outputs: list[int] | None = None,
) -> list:
    """Calls whose input grows by `page_tokens` a step: from tool results, or (own=True) from
    the model's own answers; keep=False: the context is summarised, the input stays flat. Each
    call asks for the next page (a tool call); answer=True adds a last call that answers.
    `outputs`: each call's answer size (else 50 tokens, or page_tokens when own)."""
    events, tokens = [], prompt
    for i in range(pages + answer):
        output = outputs[i] if outputs else page_tokens if own else 50
        reads = [] if i == pages else [ToolCall("fetch_page", {"page": i + 1})]
        events.append(ModelStart(run="r", model="m", ts=4.0 * i))
        events.append(
            ModelEnd(
                run="r", model="m", ts=4.0 * i + 3, usage=Usage(tokens, output), tool_calls=reads
            )
        )
        if keep:
            tokens += output + (50 if own else page_tokens)
    return events


def test_a_context_snowballing_with_long_results_is_stopped() -> None:
    # Calls 2, 3, ... each re-bill one more page: warned at the 3rd, nudged at the 4th, and the
    # 5th that asks for more is stopped (model call 6: within 3 calls of the third page read).
    verdicts, stop = feed(_reads(12, 2000), only("growth"))
    assert [v.action for v in verdicts] == [Action.WARN, Action.NUDGE]
    assert [v.step for v in verdicts] == [4, 5]
    assert stop is not None and stop.step == 6 and stop.evidence["rule"] == "input"
    assert stop.evidence["start_step"] == 2 and stop.evidence["repeats"] == 5
    # The evidence compares the call before the reading began with the one stopped.
    assert stop.evidence["input_tokens"] == [3000, 3000 + 5 * 2050]
    assert "3,000 -> 13,250 tokens, 4.4x" in stop.reason


def test_a_reader_that_answers_after_five_long_results_is_not_stopped() -> None:
    verdicts, stop = feed(_reads(5, 2000, answer=True), only("growth"))
    assert stop is None
    # It was nudged once, when it asked for the fifth page; the answer ends the reading.
    assert [v.action for v in verdicts] == [Action.WARN, Action.NUDGE]


def test_a_large_prompt_is_stopped_only_once_the_reading_dominates_it() -> None:
    # 20,000 tokens of system prompt and tools: tripled after 20 pages of 2,000 (+50 answered),
    # at model call 21.
    verdicts, stop = feed(_reads(30, 2000, prompt=20_000), only("growth"))
    assert stop is not None
    before, after = stop.evidence["input_tokens"]
    assert before == 20_000 and after >= 60_000
    assert stop.step == 22  # the first call at 3x is nudged, the next that asks for more stopped
    assert [v.action for v in verdicts] == [Action.WARN, Action.NUDGE]
    assert verdicts[1].step == 21


def test_the_input_rule_follows_its_knobs() -> None:
    _, stop = feed(_reads(12, 2000), only("growth", input_steps=8))
    assert stop is not None and stop.step == 9
    _, stop = feed(_reads(30, 2000, prompt=20_000), only("growth", input_ratio=1.0))
    assert stop is not None and stop.step == 6
    verdicts, stop = feed(_reads(12, 2000), only("growth", input_tokens=None))
    assert verdicts == [] and stop is None


def test_input_grown_by_the_models_own_answers_or_kept_flat_is_fine() -> None:
    for events in (_reads(20, 1500, own=True), _reads(20, 2000, keep=False)):
        verdicts, stop = feed(events, only("growth", min_tokens=100_000))
        assert verdicts == [] and stop is None


def test_a_growing_answer_does_not_hide_the_input_rule() -> None:
    # The answers grow at calls 4-5 (an output warning) while the input rule nudges at call 5
    # and stops at call 6: the nudge is what the run hears, then the stop.
    outputs = [50, 50, 50, 1000, 1300, 50, 50, 50]
    verdicts, stop = feed(_reads(8, 2000, outputs=outputs), only("growth"))
    assert [(v.step, v.action, v.evidence.get("rule")) for v in verdicts] == [
        (4, Action.WARN, "input"),
        (5, Action.NUDGE, "input"),
    ]
    assert stop is not None and stop.step == 6 and stop.evidence["rule"] == "input"
    # An output warning on the call the input rule stops is not what the run gets.
    # (The 7th call answers instead of reading on.)
    outputs = [50, 50, 50, 50, 1000, 1300, 50]
    _, stop = feed(_reads(6, 2000, outputs=outputs, answer=True), only("growth"))
    assert stop is not None and stop.step == 6 and stop.evidence["rule"] == "input"
