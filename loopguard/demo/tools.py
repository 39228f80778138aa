"""Deterministic tools for the FakeBedrock scenarios (same input, same output, no network)."""

from __future__ import annotations

import hashlib
import random

from langchain_core.tools import BaseTool, tool

_REGIONS = (
    "Nordics Iberia Benelux Baltics Anatolia Levant Maghreb Andes Patagonia Cascadia Yukon "
    "Bavaria Silesia Moravia Tuscany Provence Flanders Wallonia Galicia Catalonia"
).split()
_SEGMENTS = (
    "industrial, marine, aerospace, rail, mining, agriculture, medical, packaging, textiles, "
    "construction, energy, logistics"
).split(", ")


def _report_page(url: str) -> str:
    """One page of a long annual report: forty sentences, each naming a region, a segment and
    a figure, so every page says something the earlier ones did not (a reader that keeps them
    all in its context re-sends more with every call). The same URL, the same page."""
    rng = random.Random(url)  # a str seed is hashed with SHA-512: the same on every run
    return " ".join(
        f"In {rng.choice(_REGIONS)}, the {rng.choice(_SEGMENTS)} segment reported revenue of "
        f"{rng.randint(10, 120)}.{rng.randint(0, 9)} million, with operating costs driven by "
        "freight and energy prices."
        for _ in range(40)
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


_RESULTS = (
    (
        "ACME X100 widget",
        "shop.example.com/acme-x100",
        "The ACME X100 is our best-selling general purpose widget. See the product page for the "
        "current price, stock and delivery times. Free returns within 30 days.",
    ),
    (
        "ACME X100 review: a solid widget",
        "reviews.example.com/x100",
        "We tested the X100 for three months. Build quality is excellent, the price is fair for "
        "what you get, and the two-year warranty is better than most competitors offer.",
    ),
    (
        "X100 price history",
        "prices.example.com/x100",
        "Price history chart for the ACME X100 across twelve shops. Interactive chart only; "
        "enable JavaScript to see prices.",
    ),
    (
        "ACME X100 vs X200: which should you buy?",
        "blog.example.com/x100-vs-x200",
        "The X200 adds a second motor and a bigger tank. For most homes the X100 is enough; "
        "we compare noise, power draw, size and the price of spare parts.",
    ),
    (
        "ACME X100 manual (PDF)",
        "acme.example.com/manuals/x100.pdf",
        "Installation, safety notes, maintenance schedule and troubleshooting for the X100 "
        "widget, model years 2024 to 2026.",
    ),
)


@tool
def web_search(query: str) -> str:
    """Search the web and return the top results with their URLs and snippets."""
    lines = [f"Top results for {query!r} (search id {_digest(query)}):"]
    for n, (title, url, snippet) in enumerate(_RESULTS, 1):
        lines.append(f"{n}. {title}\n   https://{url}\n   {snippet}")
    return "\n".join(lines)


@tool
def fetch_page(url: str) -> str:
    """Fetch a web page and return its text."""
    if "archive.example.com/report" in url:
        # Report pages are long: a model that reads them all fills its context fast.
        return f"{url}\n" + _report_page(url)
    return f"{url}\nACME X100 widget. Price: $249.00. In stock. Ships in 2 days."


@tool
def order_status(order_id: str) -> str:
    """Look up the shipping status of an order."""
    return f"Order {order_id}: shipped, in transit, tracking {_digest(order_id).upper()}."


TOOLS: dict[str, BaseTool] = {t.name: t for t in (web_search, fetch_page, order_status)}


def tools_for(names: tuple[str, ...] | list[str]) -> list[BaseTool]:
    """The tools a scenario calls, in its order."""
    return [TOOLS[n] for n in names]
