"""Deterministic tools for the FakeBedrock scenarios (same input, same output, no network)."""

from __future__ import annotations

import hashlib

from langchain_core.tools import BaseTool, tool

_PARAGRAPH = ("Revenue grew in every region, led by the industrial segment; operating costs "
              "rose with freight and energy prices, and the board kept the dividend unchanged. ")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@tool
def web_search(query: str) -> str:
    """Search the web and return the top results with their URLs."""
    return (f"Results for {query!r}:\n"
            "1. ACME X100 - shop.example.com/acme-x100 - price shown on the product page\n"
            "2. ACME X100 review - reviews.example.com/x100 - 'a solid widget'\n"
            f"3. Price history - prices.example.com/x100?ref={_digest(query)} - chart only")


@tool
def fetch_page(url: str) -> str:
    """Fetch a web page and return its text."""
    if "archive.example.com/report" in url:
        # Report pages are long: a model that reads them all fills its context fast.
        return f"{url}\n" + _PARAGRAPH * 40
    return f"{url}\nACME X100 widget. Price: $249.00. In stock. Ships in 2 days."


@tool
def order_status(order_id: str) -> str:
    """Look up the shipping status of an order."""
    return f"Order {order_id}: shipped, in transit, tracking {_digest(order_id).upper()}."


TOOLS: dict[str, BaseTool] = {t.name: t for t in (web_search, fetch_page, order_status)}


def tools_for(names: tuple[str, ...] | list[str]) -> list[BaseTool]:
    """The tools a scenario calls, in its order."""
    return [TOOLS[n] for n in names]
