"""Where the examples' chat model comes from: FakeBedrock by default, real Bedrock on request.

Offline (the default) each example starts loopguard's fake Bedrock server on 127.0.0.1 and
points langchain-aws's real ChatBedrockConverse client at it; the scripted model runs away the
way the scenario says. To use real Amazon Bedrock instead:

    LOOPGUARD_EXAMPLES_REAL_BEDROCK=1 AWS_REGION=us-east-1 python examples/create_agent_handler.py

with AWS credentials in the usual places and access to the model in LOOPGUARD_EXAMPLES_MODEL
(default: Claude Sonnet 4 through the us. inference profile). A real model decides for itself
whether it loops, and every call is billed to your account.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loopguard.demo.run import DEMO_MODEL
from loopguard.testing import FakeBedrock

REAL = os.environ.get("LOOPGUARD_EXAMPLES_REAL_BEDROCK") == "1"
MODEL = os.environ.get("LOOPGUARD_EXAMPLES_MODEL", DEMO_MODEL)


@contextmanager
def chat_model(scenario: str, **kwargs: Any) -> Iterator[Any]:
    """A ChatBedrockConverse: on FakeBedrock serving `scenario`, or on real Bedrock."""
    if not REAL:
        with FakeBedrock(scenario) as fake:
            yield fake.chat_model(MODEL, **kwargs)
        return
    import boto3
    from langchain_aws import ChatBedrockConverse

    if boto3.Session().get_credentials() is None:
        sys.exit("LOOPGUARD_EXAMPLES_REAL_BEDROCK=1, but boto3 found no AWS credentials")
    yield ChatBedrockConverse(
        model=MODEL, region_name=os.environ.get("AWS_REGION", "us-east-1"), **kwargs
    )
