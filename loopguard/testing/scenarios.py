"""Named scripts: how agents run away, and one that does not.

Each scenario is a function of the request (keyed on `request.turn`, so many conversations can
share a server) and calls the tools named in `tools`; the agent under test must offer tools of
those names (`loopguard.demo.tools` has deterministic ones). None of the runaway scenarios ends
by itself: something has to stop them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loopguard.testing.script import Reply, Request, ToolUse


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    task: str
    """A user message that fits the story."""
    tools: tuple[str, ...]
    respond: Callable[[Request], Reply]
    runaway: bool = True


_QUERY = "ACME X100 widget price today"
_URL = "https://shop.example.com/acme-x100"


def _echo(request: Request) -> Reply:
    return Reply(text=f"You said: {request.user_text}")


def _healthy(request: Request) -> Reply:
    if request.turn == 0:
        return Reply.calling("web_search", "I'll look that up.", query=_QUERY)
    if request.turn == 1:
        return Reply.calling("fetch_page", "Let me open the shop's page.", url=_URL)
    return Reply(text="The ACME X100 costs $249.00 at shop.example.com (checked today).")


def _search_loop(request: Request) -> Reply:
    # The classic: results do not satisfy the model, so it runs the very same search again.
    return Reply.calling("web_search", "Let me search for the current price.", query=_QUERY)


def _ping_pong(request: Request) -> Reply:
    if request.turn % 2 == 0:
        return Reply.calling("web_search", "Searching again to be sure.", query=_QUERY)
    return Reply.calling("fetch_page", "Let me open the top result.", url=_URL)


_REWORDED = (
    "ACME X100 widget price today",
    "current price of the ACME X100",
    "how much does an ACME X100 widget cost",
    "ACME X100 cost today",
    "price ACME X100 widget now",
)


def _reworded_search(request: Request) -> Reply:
    # The loop real agents run: the query reworded every time, the same results back. No two
    # calls are alike enough for the repeat detectors; nothing new comes back either.
    query = _REWORDED[request.turn % len(_REWORDED)]
    return Reply.calling("web_search", "Let me search once more, worded differently.", query=query)


def _snowball(request: Request) -> Reply:
    # Never the same call twice, but every page read stays in the context: each call costs
    # more than the one before.
    part = request.turn + 1
    return Reply(
        text=f"Reading part {part} of the report before I answer.",
        tool_calls=[
            ToolUse("fetch_page", {"url": f"https://archive.example.com/report/part-{part}"})
        ],
    )


_REPEAT = (
    "I have checked the order status and the order is on its way.\n"
    "To confirm, let me summarise once more:\n"
)


def _stream_repeat(request: Request) -> Reply:
    # Degenerate decoding: one streamed answer that says the same thing over and over, then
    # asks for the order status again.
    return Reply(
        text=_REPEAT * 40,
        tool_calls=[ToolUse("order_status", {"order_id": "A-1001"})],
        words_per_chunk=3,
    )


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "search-loop",
            "repeats the same web search forever",
            f"What does the {_QUERY.removesuffix(' today')} cost today?",
            ("web_search",),
            _search_loop,
        ),
        Scenario(
            "ping-pong",
            "alternates between searching and fetching the same page",
            f"What does the {_QUERY.removesuffix(' today')} cost today?",
            ("web_search", "fetch_page"),
            _ping_pong,
        ),
        Scenario(
            "reworded-search",
            "rewords the same web search; the same results come back every time",
            f"What does the {_QUERY.removesuffix(' today')} cost today?",
            ("web_search",),
            _reworded_search,
        ),
        Scenario(
            "snowball",
            "reads one long page after another; the context grows every call",
            "Summarise the annual report.",
            ("fetch_page",),
            _snowball,
        ),
        Scenario(
            "stream-repeat",
            "streams the same sentences over and over, then asks again",
            "Where is my order A-1001?",
            ("order_status",),
            _stream_repeat,
        ),
        Scenario(
            "echo",
            "answers at once, repeating the user's first message",
            "Hello!",
            (),
            _echo,
            runaway=False,
        ),
        Scenario(
            "healthy",
            "searches, reads one page, answers",
            f"What does the {_QUERY.removesuffix(' today')} cost today?",
            ("web_search", "fetch_page"),
            _healthy,
            runaway=False,
        ),
    )
}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(
            f"unknown FakeBedrock scenario {name!r}; known: {', '.join(SCENARIOS)}"
        ) from None


__all__ = ["SCENARIOS", "Scenario", "get"]
