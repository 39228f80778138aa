"""LangChain objects to events."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from loopguard.events import Message
from loopguard.integrations import _convert
from loopguard.integrations._convert import PromptConverter, labels_of, messages_of, text_of


def test_messages_of_roles_content_blocks_and_tool_calls() -> None:
    converted = messages_of(
        [
            SystemMessage("be brief"),
            HumanMessage([{"type": "text", "text": "hi "}, {"type": "image", "url": "x"}, "there"]),
            AIMessage("", tool_calls=[{"name": "s", "args": {"q": 1}, "id": "1"}]),
            ToolMessage("result", tool_call_id="1"),
        ]
    )
    assert converted == [
        Message("system", "be brief"),
        Message("user", "hi there"),
        Message("assistant", "", [{"name": "s", "args": {"q": 1}}]),
        Message("tool", "result"),
    ]
    assert text_of(None) == "" and text_of(3) == "3"


def test_prompt_converter_converts_only_what_is_new() -> None:
    conv = PromptConverter()
    history = [SystemMessage("sys"), HumanMessage("q")]
    first = conv.convert("r", history)
    history = [*history, AIMessage("a1"), HumanMessage("q2")]
    second = conv.convert("r", history)
    assert second == messages_of(history)
    assert second[0] is first[0] and second[1] is first[1]  # reused, not converted again
    # an equal but new system message object still matches (agents rebuild it each call)
    third = conv.convert("r", [SystemMessage("sys"), *history[1:], AIMessage("a2")])
    assert third[:4] == second and third[0] is first[0]


def test_prompt_converter_compares_loopguard_messages_whole() -> None:
    conv = PromptConverter()
    conv.convert("r", [Message("assistant", "x", [{"name": "a", "args": {}}])])
    again = [Message("assistant", "x", [{"name": "b", "args": {}}])]
    assert conv.convert("r", again) == again


def test_prompt_converter_handles_a_rewritten_history() -> None:
    conv = PromptConverter()
    conv.convert("r", [SystemMessage("sys"), HumanMessage("q"), AIMessage("long answer")])
    summary = [SystemMessage("sys"), HumanMessage("summary of the conversation so far")]
    assert conv.convert("r", summary) == messages_of(summary)
    assert conv.convert("other", [HumanMessage("x")]) == [Message("user", "x")]
    conv.forget("r")
    assert "r" not in conv._last


def test_prompt_converter_is_bounded() -> None:
    conv = PromptConverter(max_runs=10)
    for i in range(100):
        conv.convert(f"r{i}", [HumanMessage("x")])
    assert len(conv._last) == 10


def test_labels_are_user_keys_of_plain_values_and_the_model_provider() -> None:
    meta = {
        "langgraph_step": 3,
        "langgraph_node": "model",
        "checkpoint_ns": "model:1",
        "ls_provider": "amazon_bedrock",
        "ls_model_name": "m",
        "lc_agent_name": "a",
        "__pregel_task": "x",
        "thread_id": "t-1",
        "tenant": "acme",
        "budget": 2.5,
        "debug": True,
        "config": {"nested": 1},
        "tags": ["a"],
    }
    assert labels_of(meta) == {
        "ls_provider": "amazon_bedrock",
        "thread_id": "t-1",
        "tenant": "acme",
        "budget": 2.5,
        "debug": True,
    }
    assert labels_of({}) is None and labels_of(None) is None
    assert labels_of({"langgraph_step": 1}) is None


def test_labels_follow_each_calls_values_with_the_same_keys() -> None:
    # Which keys may be labels is remembered per key set; the values are each call's own.
    keys = ("langgraph_step", "thread_id", "tenant")
    first, second = (1, "t-1", "acme"), (2, "t-2", {"not": "a label"})
    assert labels_of(dict(zip(keys, first, strict=True))) == {"thread_id": "t-1", "tenant": "acme"}
    assert labels_of(dict(zip(keys, second, strict=True))) == {"thread_id": "t-2"}
    assert labels_of(dict(zip(keys, (3, None, None), strict=True))) is None


def test_label_key_sets_remembered_are_bounded(monkeypatch) -> None:
    monkeypatch.setattr(_convert, "_PLANS", {})
    for i in range(_convert._MAX_PLANS + 50):
        assert labels_of({f"key{i}": i}) == {f"key{i}": i}
    assert len(_convert._PLANS) == _convert._MAX_PLANS
