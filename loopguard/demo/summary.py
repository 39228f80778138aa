"""The demo's closing summary: who stopped the run and why, what it cost, what it would have."""

from __future__ import annotations

import importlib
from typing import Any, TextIO

from loopguard.demo.live import fmt_usd, fmt_value
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
        source = importlib.import_module("langgraph._internal._config")
    except ImportError:
        source = importlib.import_module("langchain_core.runnables.config")
    return int(source.DEFAULT_RECURSION_LIMIT), version("langgraph")


def agent_executor_max_iterations() -> int:
    try:
        from langchain_classic.agents import AgentExecutor
    except ImportError:  # langchain-classic is optional; its default has long been 15
        return AGENT_EXECUTOR_MAX_ITERATIONS
    return int(AgentExecutor.model_fields["max_iterations"].default)


def write_summary(result: DemoResult, out: TextIO, *, width: int | None = None) -> None:
    """The summary, rendered by rich to fit the terminal (or `width`, else 80 columns when
    `out` is not a terminal): lines break between words, never inside a number."""
    from rich.console import Console

    console = Console(
        file=out, width=width, markup=False, highlight=False, emoji=False, soft_wrap=False
    )
    with console.capture() as captured:
        _summary(result, console)
    # rich pads wrapped lines to the width; a terminal does not need the trailing blanks.
    out.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    out.flush()


def _summary(result: DemoResult, console: Any) -> None:
    view, verdict = result.view, result.verdict
    final = view.final
    say = _printer(console)
    console.print()
    if verdict is None:
        say(
            f"The agent finished on its own after {len(view.calls)} model calls; no detector "
            f"stopped it."
        )
        if result.answer:
            say(f"answer: {result.answer}", 2)
        for detector, state in view.status.items():
            say(f"note from {detector}: {state}", 2)
    else:
        say(
            f"loopguard stopped the run at model call {verdict.step}: "
            f"[{verdict.detector}] {verdict.reason}"
        )
        # "message" is the nudge a detector would give the model, not evidence.
        evidence = {k: v for k, v in verdict.evidence.items() if k != "message"}
        if evidence:
            shown = ", ".join(_evidence(k, v) for k, v in evidence.items())
            say(f"evidence: {shown}", 2)
    u = view.usage
    say(
        f"spent: {_n(final.get('model_calls', len(view.calls)), 'model call')}, "
        f"{_n(final.get('tool_calls', view.tool_calls), 'tool call')}, {u.total_tokens:,} tokens "
        f"(input {u.input_tokens:,}, of which cache read {u.cache_read_tokens:,} and cache write "
        f"{u.cache_write_tokens:,}; output {u.output_tokens:,}; "
        f"{view.tokens_per_minute:,.0f} tokens per minute), "
        f"{fmt_usd(view.cost_usd)} at {result.model} prices, in {result.seconds:.1f} s",
        2,
    )
    cut = result.cut_stream
    if cut is not None:
        say(
            f"the aborted answer: loopguard closed the stream after {view.streamed_chars:,} "
            f"characters; the server saw the client hang up after {cut.events_sent} of "
            f"{cut.events_total} events, so the rest of that answer (it was to be "
            f"{cut.usage.get('outputTokens', 0):,} output tokens) was never sent. A call cut "
            f"mid-stream reports no usage; loopguard counts an estimate of its prompt and of what "
            f"it streamed, included above.",
            2,
        )
    if verdict is not None and view.calls:
        _projections(result, console)
    elif verdict is not None:
        say("No model call finished, so there is no per-call pattern to project.", 2)
    if result.traces_error is not None:
        say(f"traces: NOT delivered: {result.traces_error}", 2)
    else:
        say(f"traces: {_where(result.traces)}", 2)


def _printer(console: Any) -> Any:
    """print(text, indent): a paragraph wrapped to the console's width, indented."""
    from rich.padding import Padding
    from rich.text import Text

    def say(text: str, indent: int = 0) -> None:
        console.print(Padding(Text(text), (0, 0, 0, indent), expand=False))

    return say


def projections(result: DemoResult) -> list[Projection]:
    """What the loop the demo stopped would have cost under the usual iteration limits."""
    from loopguard.pricing import default_pricer

    pricer, policy, model = default_pricer(), result.policy, result.model

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
    return [project(result.view.calls, limit, label, price) for label, limit in rows]


def summary_dict(result: DemoResult) -> dict[str, Any]:
    """The summary as data (`loopguard demo --json`): the same numbers the text gives."""
    view, verdict = result.view, result.verdict
    stopped = verdict is not None
    return {
        "scenario": result.scenario.name,
        "model": result.model,
        "stopped": stopped,
        "verdict": None
        if verdict is None
        else {
            "detector": verdict.detector,
            "reason": verdict.reason,
            "step": verdict.step,
            "evidence": {k: v for k, v in verdict.evidence.items() if k != "message"},
        },
        "answer": result.answer,
        "spent": {
            "model_calls": view.final.get("model_calls", len(view.calls)),
            "tool_calls": view.final.get("tool_calls", view.tool_calls),
            **view.usage.to_dict(),
            "total_tokens": view.tokens,
            "cost_usd": None if view.cost_usd is None else round(view.cost_usd, 6),
            "tokens_per_minute": round(view.tokens_per_minute),
            "seconds": round(result.seconds, 3),
        },
        "projections": [
            {
                "label": p.label,
                "model_calls": p.model_calls,
                "calls_made": p.calls_made,
                "tokens": p.tokens,
                "cost_usd": None if p.cost_usd is None else round(p.cost_usd, 6),
                "context_full_at": p.context_full_at,
            }
            for p in (projections(result) if stopped and view.calls else [])
        ],
        "traces": {
            "where": result.traces,
            "delivered": result.traces_error is None and not result.traces.startswith("off"),
            "error": result.traces_error,
        },
    }


def _projections(result: DemoResult, console: Any) -> None:
    calls = result.view.calls
    say = _printer(console)
    n = len(calls)
    growth = (calls[-1].usage.input_tokens - calls[0].usage.input_tokens) / max(n - 1, 1)
    console.print()
    say(
        f"Had nothing stopped it, the same loop (input growing ~{growth:,.0f} tokens per "
        f"call as it did, output ~{round(sum(c.usage.output_tokens for c in calls) / n):,} "
        f"tokens per call) would have run to:"
    )
    for proj in projections(result):
        late = (
            "; this limit would have stopped it sooner than loopguard did"
            if proj.model_calls < n
            else ""
        )
        say(
            f"- {proj.label}: {proj.model_calls:,} model calls, {fmt_usd(proj.cost_usd)} "
            f"{_cost(proj)}{late}",
            2,
        )
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
    say(note, 2)


def _cost(proj: Projection) -> str:
    """What the projection's cost column needs said beside it."""
    if proj.context_full_at is None:
        return f"({proj.tokens:,} tokens)"
    return (
        f"by call {proj.calls_made:,}: call {proj.context_full_at:,} would pass the "
        f"{CONTEXT_WINDOW:,}-token context window and Bedrock would refuse it"
    )


def _evidence(key: str, value: object) -> str:
    text = f"{key}={_short(fmt_value(key, value))}"
    if key == "repeats" and isinstance(value, int) and not isinstance(value, bool):
        # Detectors count repeats after the first; their reasons count every time ("4 times").
        text += f" ({times(value + 1)} in all)"
    return text


def times(count: int) -> str:
    """ "1 time", "4 times"."""
    return f"{count:,} time" + ("" if count == 1 else "s")


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"


def _where(traces: str) -> str:
    if traces.startswith("off"):
        return traces
    if traces.startswith("OTLP"):
        return f"sent over {traces}"
    return f'Jaeger JSON written to {traces} (Jaeger UI: Search, then the "Upload" tab)'
