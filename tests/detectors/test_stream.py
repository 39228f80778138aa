"""stream: a streamed answer repeating itself is cut mid-stream; structure is not a loop."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from loopguard.events import ModelEnd, ModelStart, Token, Usage
from loopguard.normalize import digest
from loopguard.verdict import Action, LoopGuardAbort
from tests.detectors.conftest import feed, only


def _stream(text: str, chunk: int = 11, calls: int = 1) -> list:
    events = []
    for c in range(calls):
        events.append(ModelStart(run="r", model="m", ts=c))
        events += [
            Token(run="r", text=text[i : i + chunk], ts=c + 0.001 * i)
            for i in range(0, len(text), chunk)
        ]
        events.append(ModelEnd(run="r", model="m", text=text, ts=c + 0.9, usage=Usage(10, 10)))
    return events


SENTENCE = "Because the key includes the request id, every request misses the cache. "


def test_repeated_sentence_is_cut_mid_stream() -> None:
    events = _stream("Intro line. " + SENTENCE * 30)
    verdicts, stop = feed(events, only("stream"))
    assert [v.action for v in verdicts] == [Action.WARN]
    assert stop is not None and stop.evidence["repeats"] >= 4
    assert stop.evidence["period_chars"] == len(SENTENCE.strip()) + 1
    assert stop.evidence["start_step"] == 1
    # The passage is content: the verdict names it by digest, never by its text.
    assert stop.evidence["passage_digest"].startswith("sha256:")
    assert "request id" not in str(stop.to_dict()) and "request id" not in str(LoopGuardAbort(stop))


def test_abort_happens_on_a_token_event() -> None:
    from loopguard import Guard, LoopGuardAbort

    guard = Guard(only("stream"))
    seen = 0
    try:
        for event in _stream(SENTENCE * 30):
            guard.process(event)
            seen += type(event) is Token
    except LoopGuardAbort as stop:
        assert stop.verdict.detector == "stream"
    assert seen < len(SENTENCE * 30) // 11  # stopped before the stream ended


def test_repetition_without_newlines_or_punctuation() -> None:
    _, stop = feed(_stream("the loop goes on and on " * 40), only("stream"))
    assert stop is not None


def test_code_blocks_tables_and_separators_are_not_loops() -> None:
    text = (
        "Config:\n```yaml\n"
        + "- replicas: 3\n  zone: a\n" * 60
        + "```\n"
        + "| shard | zone |\n|---|---|\n"
        + "| s | a |\n" * 60
        + "=" * 500
        + "\n"
        + "." * 400
        + "\n"
        + "-" * 300
        + "\nDone.\n"
    )
    verdicts, stop = feed(_stream(text), only("stream"))
    assert verdicts == [] and stop is None


def test_long_run_of_one_character_is_not_a_loop() -> None:
    verdicts, stop = feed(_stream("a" * 5000), only("stream", max_output_tokens=None))
    assert verdicts == [] and stop is None


def test_long_list_of_similar_items_is_fine_but_a_repeated_item_is_not() -> None:
    good = "".join(f"{i}. Verify endpoint /api/v1/items/{i} returns 200\n" for i in range(100))
    verdicts, stop = feed(_stream(good), only("stream"))
    assert verdicts == [] and stop is None
    bad = "".join(
        f"- {['Restart the gateway pods.', 'Rotate the API key now.'][i % 2]}\n" for i in range(20)
    )
    _, stop = feed(_stream(bad), only("stream", min_item_chars=10))
    item = "restart the gateway pods."
    assert stop is not None and stop.evidence["passage_digest"] == digest(item)
    assert stop.evidence["passage_chars"] == len(item)


def test_headings_reset_the_list_items() -> None:
    text = "".join(
        f"## Service {i}\n- Check the health endpoint responds.\n- Owner: team {i}\n"
        for i in range(10)
    )
    verdicts, stop = feed(_stream(text), only("stream"))
    assert verdicts == [] and stop is None


def test_output_cap_per_call() -> None:
    words = " ".join(f"word{i}" for i in range(3000))
    _, stop = feed(_stream(words), only("stream", max_output_tokens=1000))
    assert stop is not None and stop.evidence["limit"] == "max_output_tokens"


def test_state_resets_between_calls() -> None:
    # One repeated sentence per call, three times: within a call it is not a loop.
    verdicts, stop = feed(_stream(SENTENCE * 2, calls=6), only("stream"))
    assert verdicts == [] and stop is None


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=9),
        min_size=50,
        max_size=400,
    ),
    st.integers(1, 40),
)
def test_random_prose_never_triggers(words: list[str], chunk: int) -> None:
    verdicts, stop = feed(_stream(" ".join(words) + ".", chunk=chunk), only("stream"))
    assert verdicts == [] and stop is None
