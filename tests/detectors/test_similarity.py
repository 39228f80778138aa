"""similarity: near-duplicate steps (what a call did, and what came back)."""

from __future__ import annotations

from typing import Any

from _scenarios import Sim
from hypothesis import given, settings
from hypothesis import strategies as st

from loopguard.detectors.similarity import Similarity, SimilarityConfig
from loopguard.events import Message, ModelEnd, ModelStart, ToolCall
from loopguard.normalize import similar
from loopguard.verdict import Action
from tests.detectors.conftest import feed, only


def test_rephrased_thoughts_with_reworded_query_are_repeats() -> None:
    s = Sim("t", "find the on-call engineer")
    queries = ["payments on-call", "on-call payments", "Payments on call", "on call payments"]
    thoughts = ["Let me look it up.", "I'll search again.", "Searching once more.", "Try again."]
    for i in range(6):
        s.step(thoughts[i % 4], [("directory", {"q": queries[i % 4]}, "0 results.")])
    verdicts, stop = feed(s.done("runaway", "").events, only("similarity"))
    assert [v.action for v in verdicts] == [Action.WARN, Action.NUDGE]
    assert stop is not None and stop.detector == "similarity"
    assert stop.evidence["start_step"] == 1 and stop.evidence["repeats"] == 4
    assert stop.evidence["similarity"] >= 0.85 and stop.evidence["period"] >= 1
    assert "directory" in verdicts[-1].evidence["message"]
    # nudged when 3 of the last 4 steps repeated (step 4); step 5 repeated too, judged when
    # call 6 starts, which never goes out
    assert verdicts[-1].step == 5 and stop.step == 6


def test_a_different_identifier_is_different_work() -> None:
    s = Sim("t", "process orders")
    for i in range(10):
        s.step("Next order.", [("get_order", {"id": 5000 + i}, "status: delayed")])
    verdicts, stop = feed(s.done("healthy", "").events, only("similarity"))
    assert verdicts == [] and stop is None


def test_a_changed_result_is_progress() -> None:
    s = Sim("t", "wait for the build")
    for stage in ("compiling", "linking", "testing", "packaging", "uploading", "done"):
        s.step("Read the log.", [("read_file", {"path": "build.log"}, f"stage: {stage}")])
    verdicts, stop = feed(s.done("healthy", "").events, only("similarity"))
    assert verdicts == [] and stop is None


def test_ping_pong_is_caught_with_its_period() -> None:
    s = Sim("t", "task")
    for _ in range(4):
        s.step("a", [("read", {"path": "a.txt"}, "alpha")])
        s.step("b", [("read", {"path": "b.txt"}, "beta")])
    _, stop = feed(s.done("runaway", "").events, only("similarity"))
    assert stop is not None and stop.evidence["period"] == 2


def test_repeated_answers_to_continue_are_caught() -> None:
    s = Sim("t", "write notes")
    for _ in range(6):
        s.step("I need more information before I can write the notes.", user="Continue.")
    _, stop = feed(s.done("runaway", "").events, only("similarity"))
    assert stop is not None


def test_empty_answers_are_repeats() -> None:
    s = Sim("t", "classify")
    for i in range(6):
        s.step("", user=f"Please answer (attempt {i}).")
    _, stop = feed(s.done("runaway", "").events, only("similarity"))
    assert stop is not None and "empty answer" in stop.evidence["message"]


def test_only_new_messages_count_and_a_shrunk_prompt_is_handled() -> None:
    # A healthy run whose history is summarised (the prompt shrinks) half way.
    system = Message("system", "s")
    events = []
    history: list[Message] = [system, Message("user", "start")]
    for i in range(12):
        if i == 6:
            history = [system, Message("user", "summary of steps 1-6"), Message("assistant", "ok")]
        history.append(Message("user", f"question {i}: what about topic {chr(97 + i)}?"))
        events.append(ModelStart(run="r", model="m", messages=list(history), ts=i))
        answer = f"topic {chr(97 + i)} is covered in chapter {i}"
        events.append(ModelEnd(run="r", model="m", text=answer, ts=i + 0.5))
        history.append(Message("assistant", answer))
    verdicts, stop = feed(events, only("similarity"))
    assert verdicts == [] and stop is None


def test_window_bounds_what_is_compared() -> None:
    s = Sim("t", "task")
    for i in range(30):  # the same step every 10 steps: outside a window of 8
        if i % 10 == 0:
            s.step("check", [("status", {"x": "same"}, "unchanged")])
        else:
            s.step(f"work {i}", [("work", {"item": i}, f"done {i}")])
    verdicts, stop = feed(s.done("healthy", "").events, only("similarity", window=8))
    assert verdicts == [] and stop is None


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["search", "read", "fetch"]), st.integers(0, 10**6)),
        min_size=1,
        max_size=40,
        unique_by=lambda t: t[1],
    )
)
def test_steps_on_distinct_items_never_trigger(calls: list[tuple[str, int]]) -> None:
    s = Sim("t", "batch")
    for tool, item in calls:
        s.step("Next item.", [(tool, {"item": item}, f"item {item}: processed")])
    verdicts, stop = feed(s.done("healthy", "").events, only("similarity"))
    assert verdicts == [] and stop is None


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=20, max_size=80),
        min_size=1,
        max_size=25,
        unique=True,
    )
)
def test_distinct_tool_results_never_trigger(results: list[str]) -> None:
    s = Sim("t", "research")
    for i, result in enumerate(results):
        s.step("Search.", [("search", {"q": "topic"}, f"{result} page {i}")])
    verdicts, stop = feed(s.done("healthy", "").events, only("similarity"))
    assert stop is None and verdicts == []


def test_the_same_check_between_different_attempts_is_not_a_loop() -> None:
    s = Sim("t", "fix the bug")
    fixes = [
        "use decimal arithmetic",
        "round half up",
        "sum before tax",
        "integer cents",
        "discount after rounding",
        "reorder the tax lines",
    ]
    for fix in fixes:
        s.step("edit", [("edit", {"patch": fix}, "edited")])
        s.step("test", [("run_tests", {}, "1 failed: test_total")])
    verdicts, stop = feed(s.done("healthy", "").events, only("similarity"))
    assert stop is None
    assert max(v.action for v in verdicts) <= Action.NUDGE


def test_thresholds_must_fit_in_the_span() -> None:
    import pytest
    from pydantic import ValidationError

    from loopguard.detectors.similarity import SimilarityConfig

    with pytest.raises(ValidationError, match="span"):
        SimilarityConfig(span=3, abort_repeats=3)
    assert SimilarityConfig(span=10, abort_repeats=6).abort_repeats == 6


class _State:
    """What the detector reads of a run's state."""

    def __init__(self) -> None:
        self.slots: dict[str, object] = {}
        self.model_calls = 0
        self.attributes: dict[str, object] = {}

    def slot(self, name: str, factory: Any) -> Any:
        if name not in self.slots:
            self.slots[name] = factory()
        return self.slots[name]


def _closest_by_brute_force(window: list[Any], step: Any, config: SimilarityConfig) -> Any:
    """The step of `window` that `step` repeats, by comparing it with each in full."""
    best, best_score = None, 0.0
    for earlier in reversed(window):
        if step.tools is None or earlier.tools is None:
            if step.tools is None and earlier.tools is None:
                return earlier
            continue
        if earlier.tools != step.tools or earlier.ids != step.ids:
            continue
        score = min(
            similar(step.words, earlier.words, config.threshold),
            similar(earlier.result, step.result, config.input_threshold),
        )
        if score > best_score:
            best, best_score = earlier, score
    return best


_ARGS = [
    {"q": "payments on-call"},
    {"q": "on call payments"},
    {"id": 7},
    {"id": 17},
    {"path": "a1.txt"},
    {"path": "a-1.txt"},
    {},
]
_TEXTS = ["", " ", "Let me look it up.", "I'll search again.", "Order 7 is late.", "done"]
_RESULTS = ["0 results.", "0 results!", "order 7: late", "order 17: late", "ok", ""]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["search", "read", ""]),
            st.sampled_from(_ARGS),
            st.sampled_from(_TEXTS),
            st.sampled_from(_RESULTS),
        ),
        min_size=2,
        max_size=30,
    ),
    st.sampled_from([2, 4, 8]),
    st.sampled_from([0.5, 0.85]),
    st.sampled_from([0.7, 0.95]),
)
def test_the_cheap_gates_find_what_comparing_every_step_finds(
    steps: list[tuple[str, Any, str, str]], window: int, threshold: float, input_threshold: float
) -> None:
    # Steps meet only those with their key, then in words, results last: the same step must
    # come out as from comparing each with every step of the window.
    config = SimilarityConfig(
        window=window,
        span=4,
        threshold=threshold,
        input_threshold=input_threshold,
        warn_repeats=None,
        nudge_repeats=None,
        abort_repeats=None,
    )
    detector, state = Similarity(config), _State()
    messages = [Message("user", "go")]
    for tool, args, text, result in steps:
        slot = state.slots.get("similarity")
        pending = slot.pending if slot is not None else None
        window_before = list(slot.steps) if slot is not None else []
        detector(state, ModelStart(run="r", model="m", messages=list(messages)))
        if pending is not None:
            expected = _closest_by_brute_force(window_before, pending, config)
            got = slot.flags[-1]  # type: ignore[union-attr]
            assert got == (expected.index if expected is not None else None)
        state.model_calls += 1
        calls = [ToolCall(tool, args)] if tool else []
        detector(state, ModelEnd(run="r", model="m", text=text, tool_calls=calls))
        messages += [Message("assistant", text), Message("tool" if tool else "user", result)]
