"""The demo's closing summary: who stopped the run and why, what it cost, what it would have."""

from __future__ import annotations

import textwrap
from typing import TextIO

from loopguard.demo.live import fmt_usd
from loopguard.demo.projection import (
    AGENT_EXECUTOR_MAX_ITERATIONS,
    CONTEXT_WINDOW,
    Projection,
    model_calls_for_recursion_limit,
    project,
)
from loopguard.demo.run import DemoResult
from loopguard.events import Usage

OLD_LANGGRAPH_DEFAULT = 25
"""LangGraph's default recursion_limit until early 2026 (langgraph PR #6676 raised it)."""


def langgraph_default_recursion_limit() -> tuple[int, str]:
    """The installed LangGraph's default and its version. The constant is private in langgraph
    1.x (it honours $LANGGRAPH_DEFAULT_RECURSION_LIMIT), hence the fallback."""
    from importlib.metadata import version

    try:
        from langgraph._internal._config import DEFAULT_RECURSION_LIMIT
    except ImportError:
        from langchain_core.runnables.config import DEFAULT_RECURSION_LIMIT
    return int(DEFAULT_RECURSION_LIMIT), version("langgraph")


def agent_executor_max_iterations() -> int:
    try:
        from langchain_classic.agents import AgentExecutor
    except ImportError:  # langchain-classic is optional; its default has long been 15
        return AGENT_EXECUTOR_MAX_ITERATIONS
    return int(AgentExecutor.model_fields["max_iterations"].default)


def write_summary(result: DemoResult, out: TextIO) -> None:
    view, verdict = result.view, result.verdict
    final = view.final
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p("")
    if verdict is None:
        p(
            f"The agent finished on its own after {len(view.calls)} model calls; no detector "
            f"stopped it."
        )
        if result.answer:
            p(f"  answer: {result.answer}")
        for detector, state in view.status.items():
            p(f"  note from {detector}: {state}")
    else:
        p(
            f"loopguard stopped the run at model call {verdict.step}: "
            f"[{verdict.detector}] {verdict.reason}"
        )
        # "message" is the nudge a detector would give the model, not evidence.
        evidence = {k: v for k, v in verdict.evidence.items() if k != "message"}
        if evidence:
            shown = ", ".join(f"{k}={_short(v)}" for k, v in evidence.items())
            p(f"  evidence: {shown}")
    u = _usage(view)
    cost = final["cost_usd"] if "cost_usd" in final and view.cost_usd is not None else view.cost_usd
    p(
        f"  spent: {_n(final.get('model_calls', len(view.calls)), 'model call')}, "
        f"{_n(final.get('tool_calls', view.tool_calls), 'tool call')}, {u.total_tokens:,} tokens "
        f"(input {u.input_tokens:,}, of which cache read {u.cache_read_tokens:,} and cache write "
        f"{u.cache_write_tokens:,}; output {u.output_tokens:,}), "
        f"{fmt_usd(cost)} at {result.model} prices, in {result.seconds:.1f} s"
    )
    cut = result.cut_stream
    if cut is not None:
        p(
            f"  the aborted answer: loopguard closed the stream after {view.streamed_chars:,} "
            f"characters; the server saw the client hang up after {cut.events_sent} of "
            f"{cut.events_total} events, so the rest of that answer (it was to be "
            f"{cut.usage.get('outputTokens', 0):,} output tokens) was never sent. A call cut "
            f"mid-stream reports no usage; loopguard counts an estimate of its prompt and of what "
            f"it streamed, included above."
        )
    if verdict is not None and view.calls:
        _projections(result, out)
    elif verdict is not None:
        p("  No model call finished, so there is no per-call pattern to project.")
    p(f"  traces: {_where(result.traces)}")


def _projections(result: DemoResult, out: TextIO) -> None:
    from loopguard.pricing import default_pricer

    pricer, policy, model = default_pricer(), result.policy, result.model
    calls = result.view.calls

    def price(usage: Usage) -> float | None:
        return pricer(policy, model, usage)

    default, lg_version = langgraph_default_recursion_limit()
    rows = [
        (
            f"AgentExecutor's default max_iterations={agent_executor_max_iterations()}",
            agent_executor_max_iterations(),
        ),
        (
            f"LangGraph's old default recursion_limit={OLD_LANGGRAPH_DEFAULT}",
            model_calls_for_recursion_limit(OLD_LANGGRAPH_DEFAULT),
        ),
        (
            f"LangGraph {lg_version}'s default recursion_limit={default:,}",
            model_calls_for_recursion_limit(default),
        ),
    ]
    n = len(calls)
    growth = (calls[-1].usage.input_tokens - calls[0].usage.input_tokens) / max(n - 1, 1)
    print(
        f"\nHad nothing stopped it, the same loop (input growing ~{growth:,.0f} tokens per "
        f"call as it did, output ~{round(sum(c.usage.output_tokens for c in calls) / n):,} "
        f"tokens per call) would have run to:",
        file=out,
    )
    for label, limit in rows:
        proj = project(calls, limit, label, price)
        late = "  (this limit would have stopped it sooner than loopguard did)" if limit < n else ""
        print(f"  {label:<52} {limit:>6,} model calls  {_cost(proj)}{late}", file=out)
    note = (
        "How: AgentExecutor makes one model call per iteration. A model/tools agent makes "
        "one model call per two LangGraph super-steps (model, tools, model, ...), so a "
        "recursion_limit of L allows (L+1)//2 model calls."
    )
    if result.recursion_limit:
        note += (
            f" create_agent compiles its agents with recursion_limit="
            f"{result.recursion_limit:,} "
            f"({model_calls_for_recursion_limit(result.recursion_limit):,}"
            f" model calls)."
        )
    note += (
        f" Prices: loopguard's price table for {result.model}; the context window is taken "
        f"as {CONTEXT_WINDOW:,} tokens."
    )
    print(textwrap.fill(note, width=100, initial_indent="  ", subsequent_indent="  "), file=out)


def _cost(proj: Projection) -> str:
    cost = fmt_usd(proj.cost_usd)
    if proj.context_full_at is None:
        return f"{cost:>10}  ({proj.tokens:,} tokens)"
    return (
        f"{cost:>10}  by call {proj.calls_made:,}: call {proj.context_full_at:,} would "
        f"pass the {CONTEXT_WINDOW:,}-token context window and Bedrock would refuse it"
    )


def _usage(view) -> Usage:
    """What the guard counted for the run (estimates for a stream cut mid-answer included),
    else the sum of the finished calls."""
    final = view.final
    if "input_tokens" in final:
        return Usage(
            final["input_tokens"],
            final["output_tokens"],
            final["cache_read_tokens"],
            final["cache_write_tokens"],
        )
    total = Usage()
    for call in view.calls:
        total.add(call.usage)
    return total


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"


def _where(traces: str) -> str:
    if traces.startswith("OTLP"):
        return f"sent over {traces}"
    return f'Jaeger JSON written to {traces} (Jaeger UI: Search, then the "Upload" tab)'
