"""Streamed chunks reach the guard in pieces when every listener takes pieces (Guard.token_piece):
the first chunk alone, then a piece per line end or PIECE_CHARS characters. Aborts come at the
same chunk on line ends, and at most PIECE_CHARS characters late otherwise."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from loopguard import Guard, LoopGuardAbort, LoopGuardCallbackHandler, Policy
from loopguard.events import Event, ModelStart, RunStart, Token, ToolStart
from loopguard.guard import PIECE_CHARS
from loopguard.state import RunState
from loopguard.verdict import Verdict
from tests.integrations.fakes import ScriptedChatModel
from tests.integrations.test_handler import Collect, StopOnToken

SENTENCE = "Because the key includes the request id, every request misses the cache."


class Pieces(Collect):
    """A sink that takes pieces."""

    token_pieces = True


def _stream(handler: LoopGuardCallbackHandler, text: str) -> tuple[list[str], LoopGuardAbort]:
    """The chunks the caller got before the abort, and the abort."""
    model = ScriptedChatModel(replies=[AIMessage(text)])
    received: list[str] = []
    with pytest.raises(LoopGuardAbort) as info:
        for chunk in model.stream("why?", config={"callbacks": [handler]}):
            received.append(str(chunk.content))
    return received, info.value


def _chars(chunks: list[str]) -> int:
    return sum(len(c) for c in chunks)


def test_the_default_policy_and_telemetry_take_pieces_a_custom_listener_does_not() -> None:
    guard = Guard(Policy(), sinks=[Pieces()])
    guard.process(RunStart(run="r", name="a"))
    guard.process(ModelStart(run="r", model="m"))
    assert guard.token_piece("r") == PIECE_CHARS
    assert guard.token_piece("unknown") == 0  # nothing known of it: each chunk
    guard.sinks.append(Collect())  # a sink that did not say it takes pieces
    assert guard.token_piece("r") == 0
    custom = Guard(Policy(), detectors=[StopOnToken("STOP")])
    custom.process(ModelStart(run="r", model="m"))
    assert custom.token_piece("r") == 0


def test_pieces_carry_the_whole_stream_first_chunk_alone() -> None:
    text = " ".join(f"word{i}" for i in range(60)) + "\nend of line\n" + "tail words here"
    sink = Pieces()
    handler = LoopGuardCallbackHandler(Guard(Policy(), sinks=[sink]))
    model = ScriptedChatModel(replies=[AIMessage(text)])
    chunks = [str(c.content) for c in model.stream("go", config={"callbacks": [handler]})]
    pieces = [e.text for e in sink.events if isinstance(e, Token)]
    assert pieces[0] == chunks[0] == "word0"
    assert len(pieces) < len(chunks) / 3
    assert all(len(p) < PIECE_CHARS + 16 for p in pieces)  # a piece ends at the chunk past it
    assert all("\n" in p or len(p) >= PIECE_CHARS for p in pieces[1:])
    joined = "".join(pieces)
    # What follows the last piece (part of a line, under PIECE_CHARS) is in the call's end.
    assert text.startswith(joined) and len(text) - len(joined) < PIECE_CHARS
    assert "\n" not in text[len(joined) :]


def test_a_repeated_stream_is_cut_at_the_same_chunk_as_chunk_by_chunk() -> None:
    text = "\n".join([SENTENCE] * 40)
    pieces, by_piece = _stream(LoopGuardCallbackHandler(Guard(Policy())), text)
    each, by_chunk = _stream(LoopGuardCallbackHandler(Guard(Policy(), sinks=[Collect()])), text)
    assert by_piece.verdict.detector == by_chunk.verdict.detector == "stream"
    assert pieces == each  # line ends are where the stream detector judges


def test_a_repeated_line_without_line_ends_is_cut_within_the_bound() -> None:
    text = " ".join([SENTENCE] * 40)
    pieces, by_piece = _stream(LoopGuardCallbackHandler(Guard(Policy())), text)
    each, by_chunk = _stream(LoopGuardCallbackHandler(Guard(Policy(), sinks=[Collect()])), text)
    assert by_piece.verdict.detector == by_chunk.verdict.detector == "stream"
    assert 0 <= _chars(pieces) - _chars(each) < PIECE_CHARS
    assert _chars(pieces) < len(text) // 2


def test_a_run_stopped_elsewhere_refuses_its_stream_within_the_bound() -> None:
    # Another call of the same run (a tool call past max_tool_calls) stops it mid-stream.
    guard = Guard(Policy(max_tool_calls=0))
    handler = LoopGuardCallbackHandler(guard)
    model = ScriptedChatModel(replies=[AIMessage(" ".join(f"w{i}" for i in range(200)))])
    received: list[str] = []
    with pytest.raises(LoopGuardAbort) as info:
        for chunk in model.stream("go", config={"callbacks": [handler]}):
            received.append(str(chunk.content))
            if len(received) == 10:
                run = next(iter(guard._runs))
                with pytest.raises(LoopGuardAbort):
                    guard.process(ToolStart(run=run, tool="search"))
                stopped_at = _chars(received)
    assert info.value.verdict.detector == "limits"
    assert _chars(received) - stopped_at < PIECE_CHARS


class SeeAll:
    """A detector that takes pieces and counts the characters it is shown."""

    name: ClassVar[str] = "see-all"
    events: ClassVar[tuple[type[Event], ...]] = (Token,)
    token_pieces: ClassVar[bool] = True

    def __init__(self) -> None:
        self.chars = 0

    def __call__(self, state: RunState, event: Any) -> Verdict | None:
        self.chars += len(event.text)
        return None


def test_a_stream_cut_by_the_caller_is_charged_for_what_it_gathered_too() -> None:
    from loopguard.events import ModelFailed
    from loopguard.tokens import tokens_for_chars

    sink = Pieces()
    seen = SeeAll()
    handler = LoopGuardCallbackHandler(Guard(Policy(), detectors=[seen], sinks=[sink]))
    model = ScriptedChatModel(replies=[AIMessage(" ".join(f"w{i}" for i in range(200)))])
    received: list[str] = []

    class Cut(Exception):
        pass

    with pytest.raises(Cut):
        for chunk in model.stream("go", config={"callbacks": [handler]}):
            received.append(str(chunk.content))
            if len(received) == 30:
                raise Cut
    failed = next(e for e in sink.events if isinstance(e, ModelFailed))
    assert seen.chars < _chars(received)  # some of it was still gathered
    assert failed.usage is not None
    assert failed.usage.output_tokens == tokens_for_chars(_chars(received))


def test_a_chunk_after_its_call_ended_is_ignored() -> None:
    # The handler finds the streaming call by its run id's identity; the call's end forgets it.
    from langchain_core.outputs import ChatGeneration, LLMResult

    from loopguard.events import ModelEnd

    sink = Pieces()
    handler = LoopGuardCallbackHandler(Guard(Policy(), sinks=[sink]))
    run_id = uuid.uuid4()
    handler.on_chat_model_start(
        {"name": "m"}, [[HumanMessage("hi")]], run_id=run_id, invocation_params={"model": "m"}
    )
    for word in ("one", " two", " three"):
        handler.on_llm_new_token(word, run_id=run_id)
    result = LLMResult(generations=[[ChatGeneration(message=AIMessage("one two three"))]])
    handler.on_llm_end(result, run_id=run_id)
    handler.on_llm_new_token(" late\n", run_id=run_id)  # a line end: it would be sent
    assert handler.guard.active_runs == 0
    kinds = [type(e) for e in sink.events]
    assert Token not in kinds[kinds.index(ModelEnd) :]
    assert "late" not in "".join(e.text for e in sink.events if isinstance(e, Token))
