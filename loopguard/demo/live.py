"""The demo's view of a guarded run: a guard sink that keeps per-call numbers and shows them,
live with rich on a terminal, one plain line per model call otherwise."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from loopguard.events import Event, ModelEnd, ModelStart, RunEnd, Token, ToolStart, Usage
from loopguard.verdict import Action

if TYPE_CHECKING:
    from loopguard.state import RunState
    from loopguard.verdict import Verdict


@dataclass(slots=True)
class CallRecord:
    """One finished model call."""

    step: int
    model: str
    usage: Usage
    cost_usd: float | None
    tools: list[str]
    seconds: float


@dataclass
class RunView:
    """What the view knows; filled by `LiveSink`, read by the renderers and the summary, so the
    panel, the plain lines and the summary show the same numbers."""

    detectors: list[str]
    calls: list[CallRecord] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)  # detector -> its latest verdict
    attributes: dict[str, Any] = field(default_factory=dict)
    verdict: Verdict | None = None
    final: dict[str, Any] = field(default_factory=dict)  # usage_snapshot() at the run's end
    streamed_chars: int = 0
    model: str = ""
    model_starts: int = 0
    tool_calls: int = 0
    ended: str | None = None
    usage: Usage = field(default_factory=Usage)
    """What the guard counted for the run so far (a stream cut mid-answer: its estimate)."""
    run_cost_usd: float = 0.0
    """What the guard charged the run so far."""
    elapsed: float = 0.0
    """Seconds from the run's first event to its latest (event times, as the guard keeps)."""

    @property
    def tokens(self) -> int:
        return self.usage.total_tokens

    @property
    def cost_usd(self) -> float | None:
        """The run's cost; None when a finished call could not be priced."""
        if any(c.cost_usd is None for c in self.calls):
            return None
        return self.run_cost_usd

    @property
    def tokens_per_minute(self) -> float:
        return self.tokens * 60.0 / max(self.elapsed, 1e-3)


class LiveSink:
    """A guard sink feeding a `RunView` and redrawing a renderer. Observes; never decides."""

    def __init__(self, view: RunView, renderer: Any) -> None:
        self.view = view
        self.renderer = renderer
        self._call_started = time.monotonic()

    def on_event(self, state: RunState, event: Event) -> None:
        view = self.view
        if isinstance(event, ModelStart):
            view.model = event.model
            view.model_starts += 1
            self._call_started = time.monotonic()
        elif isinstance(event, Token):
            view.streamed_chars += len(event.text)
            self.renderer.tick(view)
            return
        elif isinstance(event, ToolStart):
            view.tool_calls += 1
        elif isinstance(event, ModelEnd):
            view.calls.append(
                CallRecord(
                    step=state.model_calls,
                    model=event.model,
                    usage=event.usage,
                    cost_usd=state.last_call_cost,
                    tools=[c.name for c in event.tool_calls],
                    seconds=time.monotonic() - self._call_started,
                )
            )
        view.usage = Usage(
            state.usage.input_tokens,
            state.usage.output_tokens,
            state.usage.cache_read_tokens,
            state.usage.cache_write_tokens,
        )
        view.run_cost_usd = state.cost_usd
        view.elapsed = state.elapsed
        view.attributes = {k.removeprefix("loopguard."): v for k, v in state.attributes.items()}
        if isinstance(event, ModelEnd):
            self.renderer.call_done(view)

    def on_verdict(self, state: RunState, event: Event, verdict: Verdict) -> None:
        label = str(verdict.action) if verdict.enforced else f"would {verdict.action}"
        self.view.status[verdict.detector] = f"{label}: {verdict.reason}"
        if verdict.action is Action.ABORT:
            self.view.verdict = verdict
        self.renderer.verdict(self.view, verdict)

    def on_run_end(self, state: RunState, event: RunEnd) -> None:
        view = self.view
        view.final = state.usage_snapshot()
        view.usage = Usage(
            state.usage.input_tokens,
            state.usage.output_tokens,
            state.usage.cache_read_tokens,
            state.usage.cache_write_tokens,
        )
        view.run_cost_usd, view.elapsed = state.cost_usd, state.elapsed
        view.ended = event.status
        self.renderer.tick(view)


# --- renderers --------------------------------------------------------------------------------


def fmt_usd(value: float | None) -> str:
    if value is None:
        return "unpriced"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def fmt_value(key: str, value: Any) -> str:
    """A number as people read it: dollars as money, rates and ratios to a few digits, counts
    with thousands separators; lists item by item; anything else as text."""
    if isinstance(value, bool) or not isinstance(value, (int, float, list, tuple)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt_value(key, v) for v in value) + "]"
    if "usd" in key or "cost" in key:
        return fmt_usd(value)
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _call_line(view: RunView, call: CallRecord) -> str:
    u = call.usage
    cache = (
        f" (cache read {u.cache_read_tokens:,}, write {u.cache_write_tokens:,})"
        if u.cache_read_tokens or u.cache_write_tokens
        else ""
    )
    tools = ", ".join(call.tools) or "answer"
    return (
        f"step {call.step:>3}  {call.model}  in {u.input_tokens:,}{cache}  out "
        f"{u.output_tokens:,}  {fmt_usd(call.cost_usd)}  run {fmt_usd(view.cost_usd)}  "
        f"{view.tokens_per_minute:,.0f} tok/min  -> {tools}"
    )


class PlainRenderer:
    """One line per model call and per verdict: for logs, pipes and tests."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __enter__(self) -> PlainRenderer:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def tick(self, view: RunView) -> None:
        pass

    def call_done(self, view: RunView) -> None:
        print(_call_line(view, view.calls[-1]), file=self.out, flush=True)

    def verdict(self, view: RunView, verdict: Verdict) -> None:
        label = str(verdict.action).upper() if verdict.enforced else f"WOULD {verdict.action}"
        print(
            f"          loopguard {label} [{verdict.detector}] {verdict.reason}",
            file=self.out,
            flush=True,
        )


class RichRenderer:
    """A live panel: the current step, model, tokens, cost, tokens per minute and every
    detector's state, redrawn as events arrive (rich caps the redraw rate)."""

    def __init__(self, out: TextIO, title: str) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=out)
        self.title = title
        self.view: RunView | None = None
        self.live = Live(
            console=self.console,
            refresh_per_second=12,
            transient=False,
            get_renderable=self._render,
        )

    def __enter__(self) -> RichRenderer:
        self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.refresh()
        self.live.stop()

    def tick(self, view: RunView) -> None:
        self.view = view

    call_done = tick

    def verdict(self, view: RunView, verdict: Verdict) -> None:
        self.view = view

    def _render(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        view = self.view
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        if view is None:
            grid.add_row("starting", "")
            return Panel(grid, title=self.title)
        last = view.calls[-1] if view.calls else None
        busy = view.model_starts > len(view.calls) and view.ended is None
        grid.add_row(
            "step",
            f"model call {view.model_starts}"
            + (" (answering)" if busy else "")
            + f", {view.tool_calls} tool calls",
        )
        grid.add_row("model", view.model or "-")
        if last is not None:
            u = last.usage
            grid.add_row(
                "last call",
                f"in {u.input_tokens:,} (cache read "
                f"{u.cache_read_tokens:,}, write {u.cache_write_tokens:,})  out "
                f"{u.output_tokens:,}  {fmt_usd(last.cost_usd)}",
            )
        grid.add_row("tokens", f"{view.tokens:,}  ({view.tokens_per_minute:,.0f} per minute)")
        grid.add_row("cost", fmt_usd(view.cost_usd))
        grid.add_row("streamed", f"{view.streamed_chars:,} characters")
        detectors = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
        detectors.add_column("detector")
        detectors.add_column("state")
        for name in view.detectors:
            state = view.status.get(name, "ok")
            style = (
                "bold red" if state.startswith("abort") else "yellow" if state != "ok" else "green"
            )
            detectors.add_row(name, Text(_clip(state, 90), style=style))
        if view.attributes:
            shown = ", ".join(f"{k}={fmt_value(k, v)}" for k, v in sorted(view.attributes.items()))
            detectors.add_row("published", Text(_clip(shown, 90)))

        return Panel(Group(grid, "", detectors), title=self.title)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
