"""loopguard: a circuit breaker for runaway LLM agents."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopguard.errors import ConfigError, LoopGuardAbort, LoopGuardError
from loopguard.guard import Guard
from loopguard.policy import Policy, PolicySet
from loopguard.verdict import Action, Verdict

if TYPE_CHECKING:  # what the lazy names below are, for type checkers
    from typing import Any

    from loopguard.integrations.langchain import LoopGuardCallbackHandler
    from loopguard.integrations.middleware import LoopGuardMiddleware

__version__ = "0.1.0"


# LangChain adapters load on first use: the engine needs none of it.
def __getattr__(name: str) -> Any:
    if name == "LoopGuardCallbackHandler":
        from loopguard.integrations.langchain import LoopGuardCallbackHandler

        return LoopGuardCallbackHandler
    if name == "LoopGuardMiddleware":
        try:
            from loopguard.integrations.middleware import LoopGuardMiddleware
        except ModuleNotFoundError as exc:
            if exc.name not in ("langchain", "langgraph"):
                raise
            raise ImportError(
                "LoopGuardMiddleware needs LangChain v1 agents: pip install "
                "'langchain-loopguard[agents]'"
            ) from exc
        return LoopGuardMiddleware
    raise AttributeError(f"module 'loopguard' has no attribute {name!r}")


__all__ = [
    "Action",
    "ConfigError",
    "Guard",
    "LoopGuardAbort",
    "LoopGuardCallbackHandler",
    "LoopGuardError",
    "LoopGuardMiddleware",
    "Policy",
    "PolicySet",
    "Verdict",
]
