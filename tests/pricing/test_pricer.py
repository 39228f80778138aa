"""The guard's default pricer: policy overrides, aliases, unknown models."""

from __future__ import annotations

import logging

import pytest

from loopguard import Policy
from loopguard.events import Usage
from loopguard.pricing import PolicyPricer

MTOK_IN = Usage(input_tokens=1_000_000)


def test_override_and_addition() -> None:
    policy = Policy(
        prices={
            "anthropic.claude-3-haiku-20240307-v1:0": {"input": 1, "output": 2},
            "my-model": {"input": 0.5, "output": 1.5},
        }
    )
    pricer = PolicyPricer()
    assert pricer(policy, "us.anthropic.claude-3-haiku-20240307-v1:0", MTOK_IN) == 1.0
    assert pricer(policy, "my-model", Usage(output_tokens=2_000_000)) == 3.0
    # the default policy still sees the packaged price
    assert pricer(Policy(), "anthropic.claude-3-haiku-20240307-v1:0", MTOK_IN) == 0.25


def test_application_profile_alias() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/xyz"
    policy = Policy(model_aliases={arn: "global.anthropic.claude-sonnet-4-5-20250929-v1:0"})
    assert PolicyPricer()(policy, arn, Usage(input_tokens=100_000)) == pytest.approx(0.3)


def test_unknown_model_warns_once_and_is_not_zero(caplog: pytest.LogCaptureFixture) -> None:
    pricer = PolicyPricer()
    with caplog.at_level(logging.WARNING, logger="loopguard"):
        assert pricer(Policy(), "mystery-1", MTOK_IN) is None
        assert pricer(Policy(), "mystery-1", MTOK_IN) is None
    warnings = [r for r in caplog.records if "mystery-1" in r.getMessage()]
    assert len(warnings) == 1
    assert "unknown_model = 'warn'" in warnings[0].getMessage()


def test_fallback_price(caplog: pytest.LogCaptureFixture) -> None:
    policy = Policy(fallback_price={"input": 10, "output": 30})
    with caplog.at_level(logging.WARNING, logger="loopguard"):
        assert PolicyPricer()(policy, "mystery-2", MTOK_IN) == 10.0
    assert "fallback_price" in caplog.text


def test_price_keys_are_validated() -> None:
    with pytest.raises(ValueError, match="input"):
        Policy(prices={"m": {"output": 1}})
    with pytest.raises(ValueError, match="warn_cost_usd"):
        Policy(max_cost_usd=1, warn_cost_usd=2)
