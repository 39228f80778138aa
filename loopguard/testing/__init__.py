"""Test helpers: a fake Amazon Bedrock Runtime for offline tests, demos and CI.

    from loopguard.testing import FakeBedrock, Reply

    with FakeBedrock([Reply.calling("web_search", query="x"), Reply(text="done")]) as fake:
        llm = fake.chat_model()  # langchain-aws ChatBedrockConverse on the fake server

The server itself needs only the standard library; `chat_model()` needs the `aws` extra.
"""

from loopguard.testing.fake_bedrock import DEFAULT_MODEL, Call, FakeBedrock, ScriptError
from loopguard.testing.scenarios import SCENARIOS, Scenario
from loopguard.testing.script import Fault, Reply, Request, ScriptExhausted, ToolUse, cycle

__all__ = [
    "DEFAULT_MODEL",
    "SCENARIOS",
    "Call",
    "FakeBedrock",
    "Fault",
    "Reply",
    "Request",
    "Scenario",
    "ScriptError",
    "ScriptExhausted",
    "ToolUse",
    "cycle",
]
