"""`loopguard pricing [MODEL | --list] [--json] [--policy FILE]`: one model's price, or the table.

Exit status: 0 found, 1 no price for the model, 2 a usage or input error (bad policy file).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from loopguard.cli._common import (
    EXIT_FINDINGS,
    EXIT_OK,
    UserError,
    add_json_option,
    add_policy_option,
    load_policies,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from loopguard.pricing import Price, PriceTable


def register(sub: Any) -> None:
    p = sub.add_parser(
        "pricing",
        help="show model prices (USD per million tokens)",
        description="Show the price of one model id in any of its forms (Bedrock profile "
        "prefixes, -v1:0 suffixes, ARNs), or list the whole table with its sources. "
        "Exit status: 0 found, 1 no price for the model, 2 usage or input error.",
    )
    p.add_argument(
        "model",
        nargs="?",
        help="a model id, e.g. us.anthropic.claude-opus-4-6-v1 or claude-sonnet-4-6",
    )
    p.add_argument("--list", action="store_true", help="list every priced model (the default)")
    add_json_option(p)
    add_policy_option(p, "policy file whose prices and model_aliases apply")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from loopguard.pricing import PolicyPricer, UnknownModel

    if args.model and args.list:
        raise UserError("give a MODEL or --list, not both")
    policy = load_policies(args.policy).default
    table = PolicyPricer().table_for(policy)
    if args.model:
        try:
            found = table.resolve(args.model, policy.model_aliases)
        except UnknownModel as exc:
            raise UserError(str(exc), EXIT_FINDINGS) from None
        if args.json:
            print(json.dumps(_record(table, found.model, found.entry, found.price)))
        else:
            _print_rows([(found.model, found.price)])
            origin = table.origin(found.entry)
            if origin is not None:
                print(_origin_line(origin))
        return EXIT_OK
    entries = table.ids()
    if args.json:
        print_json([_record(table, e, e, table.resolve(e).price) for e in entries])
    else:
        _print_rows([(e, table.resolve(e).price) for e in entries])
    return EXIT_OK


def _record(table: PriceTable, model: str, entry: str, price: Price) -> dict[str, Any]:
    record: dict[str, Any] = {"model": model, "entry": entry, "name": table.name(entry)}
    record.update(price.to_dict())
    origin = table.origin(entry)
    aliases = table.aliases_of(entry)
    if aliases:
        record["aliases"] = aliases
    if origin is not None:
        record["source"] = origin.source
        record["checked"] = origin.checked
        if origin.note:
            record["note"] = origin.note
    return record


def _origin_line(origin: Any) -> str:
    checked = f", checked {origin.checked}" if origin.checked else ""
    line = f"source: {origin.source}{checked}"
    return f"{line}\nnote: {origin.note}" if origin.note else line


def _cells(price: Price) -> list[str]:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:g}"

    cells = [
        f(price.input),
        f(price.output),
        f(price.cache_read),
        f(price.cache_write),
        f(price.cache_write_1h),
    ]
    if price.long_context is not None:
        above, tier = price.long_context
        cells.append(f">{above // 1000}K: {f(tier.input)}/{f(tier.output)}")
    else:
        cells.append("")
    return cells


HEADERS = ["model", "input", "output", "cache read", "5m write", "1h write", "long context"]


def _print_rows(rows: list[tuple[str, Price]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        rich = False
    else:
        rich = True
    if rich and sys.stdout.isatty():
        table = Table(title="USD per million tokens")
        for h in HEADERS:
            table.add_column(h, justify="left" if h == "model" else "right")
        for model, price in rows:
            table.add_row(model, *_cells(price))
        Console().print(table)
        return
    data = [[model, *_cells(price)] for model, price in rows]
    print_table(HEADERS, data)
    print("(USD per million tokens; '-' = no such price)")
