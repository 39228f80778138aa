"""`loopguard pricing [MODEL] [--json]`: the price table, or one model's price."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "pricing",
        help="show model prices (USD per million tokens)",
        description="Show the price table, or the price of one model id in any "
        "of its forms (Bedrock prefixes, -v1:0 suffixes, ARNs).",
    )
    p.add_argument(
        "model",
        nargs="?",
        help="a model id, e.g. us.anthropic.claude-sonnet-4-20250514-v1:0 or claude-sonnet-4-5",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--config",
        help="policy file whose prices and model_aliases apply "
        "(default: $LOOPGUARD_CONFIG or ./loopguard.toml, if any)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from loopguard.config import ConfigError
    from loopguard.policy import PolicySet
    from loopguard.pricing import PolicyPricer, UnknownModel

    try:
        policy = PolicySet.load(args.config).default
    except ConfigError as exc:
        print(f"loopguard pricing: {exc}", file=sys.stderr)
        return 2
    table = PolicyPricer().table_for(policy)
    if args.model:
        try:
            found = table.resolve(args.model, policy.model_aliases)
        except UnknownModel as exc:
            print(f"loopguard pricing: {exc}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps({"model": found.model, **found.price.to_dict()}))
        else:
            _print_rows([_row(found.model, found.price, found.name)])
        return 0
    rows = []
    for entry in table.ids():
        found = table.resolve(entry)
        rows.append(_row(found.model, found.price, found.name))
    if args.json:
        print(json.dumps([{"model": r[0], **r[1].to_dict()} for r in rows], indent=2))
    else:
        _print_rows(rows)
    return 0


def _row(model: str, price: Any, name: str | None) -> tuple[str, Any, str]:
    return model, price, name or ""


def _cells(price: Any) -> list[str]:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:g}"

    cells = [f(price.input), f(price.output), f(price.cache_read), f(price.cache_write)]
    if price.long_context is not None:
        above, tier = price.long_context
        cells.append(f">{above // 1000}K: {f(tier.input)}/{f(tier.output)}")
    else:
        cells.append("")
    return cells


HEADERS = ["model", "input", "output", "cache read", "cache write", "long context"]


def _print_rows(rows: list[tuple[str, Any, str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        Console = None
    if Console is not None and sys.stdout.isatty():
        table = Table(title="USD per million tokens")
        for h in HEADERS:
            table.add_column(h, justify="left" if h == "model" else "right")
        for model, price, _ in rows:
            table.add_row(model, *_cells(price))
        Console().print(table)
        return
    data = [[model, *_cells(price)] for model, price, _ in rows]
    widths = [max(len(h), *(len(r[i]) for r in data)) for i, h in enumerate(HEADERS)]
    print("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=False)).rstrip())
    for r in data:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
    print("(USD per million tokens; '-' = no such price)")
