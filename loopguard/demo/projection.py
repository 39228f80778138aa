"""What a stopped loop would have cost had it run on to a framework's own limit.

The loop is extended call by call the way it was going: each call's input grows by the average
growth seen so far (the conversation keeps every tool call and result), output stays at the
average seen, and the cached prefix stays what the last call read from the cache. Every call is
priced with loopguard's price table. A call whose input would pass the model's context window
is where the run would have died instead (Bedrock refuses it), so the projection ends there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from loopguard.demo.live import CallRecord
from loopguard.events import Usage

CONTEXT_WINDOW = 200_000
"""Claude's context window on Bedrock (tokens); the demo's models are Claude models."""

AGENT_EXECUTOR_MAX_ITERATIONS = 15
"""langchain-classic AgentExecutor's default `max_iterations`: one model call per iteration."""


@dataclass(frozen=True, slots=True)
class Projection:
    label: str
    model_calls: int  # calls the limit allows
    calls_made: int  # calls that would have gone out (fewer if the context window ends it)
    tokens: int
    cost_usd: float | None
    context_full_at: int | None  # the call the context window would have refused


def model_calls_for_recursion_limit(limit: int) -> int:
    """Model calls a model/tools agent (create_agent, create_react_agent) makes before LangGraph
    raises GraphRecursionError: one super-step per node, model and tools alternating, starting
    with the model, so steps 1, 3, 5, ... are model calls (25 -> 13)."""
    return (limit + 1) // 2


def project(
    calls: Sequence[CallRecord],
    limit: int,
    label: str,
    price: Callable[[Usage], float | None],
    context_window: int = CONTEXT_WINDOW,
) -> Projection:
    """The loop in `calls` run on to `limit` model calls."""
    if not calls:
        raise ValueError("nothing to project: no model call finished")
    made = list(calls[:limit])
    tokens = sum(c.usage.total_tokens for c in made)
    costs = [c.cost_usd for c in made]
    n = len(calls)
    first, last = calls[0].usage, calls[-1].usage
    growth = (last.input_tokens - first.input_tokens) / (n - 1) if n > 1 else 0.0
    output = round(sum(c.usage.output_tokens for c in calls) / n)
    cached = last.cache_read_tokens + last.cache_write_tokens
    full_at = None
    for k in range(n + 1, limit + 1):
        input_tokens = round(last.input_tokens + growth * (k - n))
        if input_tokens > context_window:
            full_at = k
            break
        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=output,
            cache_read_tokens=min(cached, input_tokens),
        )
        tokens += usage.total_tokens
        costs.append(price(usage))
    known = [c for c in costs if c is not None]
    cost = sum(known) if len(known) == len(costs) else None
    calls_made = full_at - 1 if full_at is not None else limit
    return Projection(label, limit, calls_made, tokens, cost, full_at)


__all__ = [
    "AGENT_EXECUTOR_MAX_ITERATIONS",
    "CONTEXT_WINDOW",
    "Projection",
    "model_calls_for_recursion_limit",
    "project",
]
