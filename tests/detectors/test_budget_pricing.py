"""A call the guard cannot price is never free under a dollar cap (issues 12 and 14).

Unpriced models are refused before the call; a custom pricer prices both the projection and the
settlement; a refusal by the worst-case projection says what it assumed; a call without
trustworthy usage is settled at its projection.
"""

from __future__ import annotations

import itertools
import logging
import uuid

import pytest

from loopguard import Guard, LoopGuardAbort, LoopGuardCallbackHandler, Policy
from loopguard.events import Message, ModelEnd, ModelStart, RunEnd, Usage
from tests.conftest import require
from tests.ledger._workers import money_policy as policy

UNPRICED = "us.anthropic.claude-unpriced-test-v1:0"  # in no price table
HAIKU = "us.anthropic.claude-3-5-haiku-20241022-v1:0"  # 0.80 in / 4.00 out / 1.00 cache write


def start(run: str, i: int, model: str = HAIKU, max_tokens: int | None = 1000) -> ModelStart:
    # 347 characters: estimate = 4 + ceil(347 / 3.5) = 104 input tokens
    return ModelStart(
        run=run,
        model=model,
        messages=[Message("user", "x" * 347)],
        max_tokens=max_tokens,
        id=f"{run}-{i}",
    )


def end(run: str, i: int, usage: Usage, model: str = HAIKU) -> ModelEnd:
    return ModelEnd(run=run, model=model, usage=usage, id=f"{run}-{i}", text="done")


def mem() -> str:
    return f"memory://{uuid.uuid4().hex}"


# --- issue 14 item 1: an unpriced model under any dollar cap ------------------------------

DOLLAR_CAPS = {
    "run": {"max_cost_usd": 5.0},
    "conversation": {"budgets": [{"scope": "conversation", "period": "total", "max_usd": 5}]},
    "agent": {"budgets": [{"scope": "agent", "period": "day", "max_usd": 5}]},
    "tenant": {"budgets": [{"scope": "tenant", "key": "t", "period": "month", "max_usd": 5}]},
    "global hourly": {"budgets": [{"scope": "global", "period": "hour", "max_usd": 5}]},
}


@pytest.mark.parametrize("caps", DOLLAR_CAPS.values(), ids=DOLLAR_CAPS.keys())
def test_an_unpriced_model_is_refused_under_any_dollar_cap(caps: dict) -> None:
    guard = Guard(policy(ledger=mem(), **caps))
    with pytest.raises(LoopGuardAbort) as info:
        guard.process(start("r", 1, model=UNPRICED))
    v = info.value.verdict
    assert v.detector == "budget" and v.evidence["limit"] == "unknown_model"
    assert v.evidence["model"] == UNPRICED
    # the message names the model and both fixes
    assert UNPRICED in v.reason and "prices" in v.reason and "fallback_price" in v.reason
    assert guard.get_run("r").model_calls == 0  # refused before it went out


def test_an_unpriced_model_goes_through_without_a_dollar_cap_or_when_told_to_warn() -> None:
    token_cap = [{"scope": "agent", "period": "day", "max_tokens": 10_000}]
    for p in (
        policy(max_model_calls=5),
        policy(ledger=mem(), budgets=token_cap),
        policy(max_cost_usd=5.0, unknown_model="warn"),  # the explicit opt-out
    ):
        guard = Guard(p)
        guard.process(start("r", 1, model=UNPRICED))
        guard.process(end("r", 1, Usage(100, 10), model=UNPRICED))
        state = guard.get_run("r")
        assert state.model_calls == 1
        assert state.attributes["loopguard.unpriced_model"] == UNPRICED


def test_fallback_price_prices_an_unknown_model_under_a_cap() -> None:
    guard = Guard(policy(max_cost_usd=5.0, fallback_price={"input": 15, "output": 75}))
    guard.process(start("r", 1, model=UNPRICED))
    guard.process(end("r", 1, Usage(1000, 100), model=UNPRICED))
    assert guard.get_run("r").cost_usd == pytest.approx(0.0225)  # 1000*15 + 100*75


def test_the_default_is_unset_and_reads_as_block_only_under_a_dollar_cap() -> None:
    assert Policy().unknown_model is None
    assert policy(max_cost_usd=1.0).unknown_model_action == "block"
    assert policy(budgets=DOLLAR_CAPS["tenant"]["budgets"]).unknown_model_action == "block"
    assert policy(warn_cost_usd=1.0).unknown_model_action == "warn"  # a warning is no cap
    assert policy(max_cost_usd=1.0, unknown_model="warn").unknown_model_action == "warn"
    assert policy(unknown_model="block").unknown_model_action == "block"


def test_langchain_aws_on_an_unpriced_model_is_refused_before_the_request() -> None:
    require("langchain_aws")
    from loopguard.testing import FakeBedrock

    handler = LoopGuardCallbackHandler(Guard(policy(max_cost_usd=0.10)))
    with FakeBedrock() as fake:
        model = fake.chat_model(model=UNPRICED)
        with pytest.raises(LoopGuardAbort) as info:
            model.invoke("What is 2 + 2?", config={"callbacks": [handler]})
        assert fake.calls == []  # nothing reached Bedrock
    assert UNPRICED in str(info.value) and "fallback_price" in str(info.value)


# --- issue 14 item 3: one pricer for projection and settlement ----------------------------


def test_a_custom_pricer_prices_the_projection_too() -> None:
    guard = Guard(policy(max_cost_usd=2.5), pricer=lambda *_: 1.0)
    went_out = 0
    with pytest.raises(LoopGuardAbort) as info:
        for i in range(5):
            guard.process(start("r", i))
            went_out += 1
            guard.process(end("r", i, Usage(100, 10)))
    assert went_out == 2  # $1 + $1 spent; a third $1 call could reach $3 > $2.50
    assert guard.get_run("r").cost_usd == pytest.approx(2.0)
    assert info.value.verdict.evidence["projected_usd"] == pytest.approx(1.0)


def test_a_custom_pricer_that_knows_no_price_blocks_under_a_cap() -> None:
    guard = Guard(policy(max_cost_usd=2.5), pricer=lambda *_: None)
    with pytest.raises(LoopGuardAbort) as info:
        guard.process(start("r", 1))
    assert info.value.verdict.evidence["limit"] == "unknown_model"


# --- issue 14 item 4: a refusal by the worst-case projection says what it assumed ----------


def test_a_projection_refusal_names_its_assumptions_and_the_two_knobs() -> None:
    # Haiku 3.5: 104 * 1.00 + 4096 * 4.00 = $0.016488 > $0.01, refused at $0 spent
    guard = Guard(policy(max_cost_usd=0.01))
    with pytest.raises(LoopGuardAbort) as info:
        guard.process(start("r", 1, max_tokens=None))
    v = info.value.verdict
    assert v.evidence["spent_usd"] == 0
    assert v.evidence["projected_input_tokens"] == 104
    assert v.evidence["projected_output_tokens"] == 4096
    assert v.evidence["output_tokens_from"] == "output_estimate_tokens"
    assert "104 input tokens (estimated)" in v.reason
    assert "4096 output tokens (output_estimate_tokens" in v.reason
    assert "max_tokens" in v.reason and "output_estimate_tokens" in v.reason

    # with max_tokens on the model, the message says the projection used it
    with pytest.raises(LoopGuardAbort) as info:
        Guard(policy(max_cost_usd=0.001)).process(start("r", 1, max_tokens=2000))
    v = info.value.verdict
    assert v.evidence["output_tokens_from"] == "max_tokens"
    assert "2000 output tokens (the call's max_tokens)" in v.reason


def test_a_budget_refusal_by_projection_says_the_same() -> None:
    budgets = [{"scope": "global", "period": "total", "max_usd": 0.01}]
    guard = Guard(policy(ledger=mem(), budgets=budgets))
    with pytest.raises(LoopGuardAbort) as info:
        guard.process(start("r", 1, max_tokens=None))
    v = info.value.verdict
    assert v.evidence["limit"] == "budget.max_usd"
    assert "4096 output tokens (output_estimate_tokens" in v.reason


# --- issue 12 item 2: no usage, or nonsense usage, is never $0 -----------------------------


def test_calls_without_usage_metadata_are_settled_at_their_projection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A real LangChain chat model that reports no usage_metadata, priced like Claude 3.5 Haiku.
    # Projection per call: 6 input tokens * 0.80 + 100 output * 4.00 = $0.0004048
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    p = policy(
        ledger=mem(),
        budgets=[{"scope": "global", "period": "total", "max_usd": 0.002}],
        output_estimate_tokens=100,
        prices={"GenericFakeChatModel": {"input": 0.8, "output": 4.0}},
    )
    model = GenericFakeChatModel(messages=itertools.repeat(AIMessage("ok")))
    handler = LoopGuardCallbackHandler(Guard(p))
    went_out = 0
    with caplog.at_level(logging.WARNING, logger="loopguard"):
        with pytest.raises(LoopGuardAbort):
            for _ in range(50):
                model.invoke("hello", config={"callbacks": [handler]})
                went_out += 1
    # before: every call settled at $0 and all 50 went out; now 4 fit under $0.002
    assert went_out == 4
    warnings = [r.getMessage() for r in caplog.records if "no usage" in r.getMessage()]
    assert len(warnings) == went_out  # once per run (each invoke is a run), naming the model
    assert all("GenericFakeChatModel" in w and "hello" not in w for w in warnings)


def test_unknown_usage_warns_once_per_run(caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(policy(max_cost_usd=1.0))
    with caplog.at_level(logging.WARNING, logger="loopguard"):
        for i in range(3):
            guard.process(start("r", i))
            guard.process(end("r", i, Usage()))
    assert sum("no usage" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    "usage",
    [Usage(), Usage(input_tokens=0, output_tokens=50)],
    ids=["none", "no input"],
)
def test_unknown_usage_is_charged_the_projection_and_marked(usage: Usage) -> None:
    guard = Guard(policy(max_cost_usd=1.0))
    guard.process(start("r", 1))
    guard.process(end("r", 1, usage))
    state = guard.get_run("r")
    assert state.cost_usd == pytest.approx(0.004104)  # 104 * 1.00 + 1000 * 4.00
    assert state.attributes["loopguard.usage_estimated"] is True


def test_known_usage_is_charged_what_it_reports() -> None:
    guard = Guard(policy(max_cost_usd=1.0))
    guard.process(start("r", 1))
    guard.process(end("r", 1, Usage(100, 500)))
    state = guard.get_run("r")
    assert state.cost_usd == pytest.approx(0.00208)
    assert "loopguard.usage_estimated" not in state.attributes


def test_unknown_usage_counts_against_shared_budgets_and_token_caps() -> None:
    uri = mem()
    budgets = [{"scope": "global", "period": "total", "max_usd": 0.01, "max_tokens": 100_000}]
    guard = Guard(policy(ledger=uri, budgets=budgets))
    went_out = 0
    with pytest.raises(LoopGuardAbort):
        for i in range(10):
            guard.process(start("r", i))
            went_out += 1
            guard.process(end("r", i, Usage()))
    assert went_out == 2  # $0.004104 each: a third would reach $0.012312
    guard.process(RunEnd(run="r", status="aborted"))
