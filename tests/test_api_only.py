"""The core depends on opentelemetry-api only: a guarded LangChain run, telemetry on (the
default), never imports the OpenTelemetry SDK."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoSdk(importlib.abc.MetaPathFinder):
        # As if opentelemetry-sdk were not installed.
        def find_spec(self, name, path, target=None):
            if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoSdk())

    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.runnables import RunnableLambda

    from loopguard import LoopGuardAbort, LoopGuardCallbackHandler, Policy

    handler = LoopGuardCallbackHandler(policy=Policy(max_model_calls=2))
    assert handler.guard.sinks, "telemetry is on by default"
    model = GenericFakeChatModel(messages=iter([AIMessage(str(i)) for i in range(5)]))
    agent = RunnableLambda(lambda x, config: [model.invoke(x, config) for _ in range(3)])
    try:
        agent.invoke("hi", config={"callbacks": [handler], "run_name": "agent"})
    except LoopGuardAbort as stop:
        print("stopped:", stop.verdict.detector, stop.verdict.step)
    print("sdk imported:", any(m.startswith("opentelemetry.sdk") for m in sys.modules))
    try:
        from loopguard.telemetry import setup
        setup("x")
    except ImportError as exc:
        print("setup:", "langchain-loopguard[telemetry]" in str(exc))
    """
)


def test_a_guarded_run_needs_no_sdk() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "stopped: limits 3" in out.stdout, out.stdout + out.stderr
    assert "sdk imported: False" in out.stdout
    assert "setup: True" in out.stdout
