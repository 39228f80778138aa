"""`loopguard budget show|reset`: inspect or clear the budgets in a ledger, by URI."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from loopguard.ledger.spec import PREFIX


def register(sub: Any) -> None:
    p = sub.add_parser(
        "budget",
        help="show or reset budgets in a ledger",
        description="Inspect the budgets kept in a ledger (spent and reserved "
        "dollars and tokens per budget key), or reset them.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="spend and reservations per budget key")
    reset = actions.add_parser("reset", help="forget the spend of matching budget keys")
    for a in (show, reset):
        a.add_argument(
            "--ledger",
            help="ledger URI, e.g. redis://localhost:6379/0 or "
            "sqlite:///budgets.db (default: the policy's ledger)",
        )
        a.add_argument("--config", help="policy file to read the ledger URI from")
        a.add_argument(
            "match",
            nargs="?",
            default="",
            help="only keys starting with this, after the 'loopguard:budget:' "
            "prefix, e.g. tenant:tenant_id=acme",
        )
    show.add_argument("--json", action="store_true", help="print JSON")
    reset.add_argument(
        "--yes", action="store_true", help="required to reset every budget (no MATCH given)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from loopguard.config import ConfigError
    from loopguard.ledger import LedgerUnavailable, open_ledger
    from loopguard.policy import PolicySet

    uri = args.ledger
    if uri is None:
        try:
            uri = PolicySet.load(args.config).default.ledger
        except ConfigError as exc:
            print(f"loopguard budget: {exc}", file=sys.stderr)
            return 2
    if uri.startswith("memory://"):
        print(
            "loopguard budget: a memory:// ledger lives inside one process; pass --ledger "
            "sqlite:///... or redis://... (or set ledger in your policy)",
            file=sys.stderr,
        )
        return 2
    try:
        ledger = open_ledger(uri)
    except (ValueError, ImportError, LedgerUnavailable) as exc:
        print(f"loopguard budget: {exc}", file=sys.stderr)
        return 2
    prefix = PREFIX + args.match
    try:
        if args.action == "reset":
            if not args.match and not args.yes:
                print(
                    "loopguard budget: reset without MATCH clears every budget; add --yes",
                    file=sys.stderr,
                )
                return 2
            n = ledger.reset(prefix)
            print(f"reset {n} budget key(s) matching {prefix!r} in {uri}")
            return 0
        rows = ledger.usage(prefix=prefix)
    except LedgerUnavailable as exc:
        print(f"loopguard budget: ledger unreachable: {exc}", file=sys.stderr)
        return 1
    finally:
        ledger.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return 0
    if not rows:
        print(f"no budget keys matching {prefix!r} in {uri}")
        return 0
    headers = ["key", "spent $", "reserved $", "spent tokens", "reserved tokens", "held"]
    data = [
        [
            r.key.removeprefix(PREFIX),
            f"{r.spent_usd:.6f}",
            f"{r.reserved_usd:.6f}",
            str(r.spent_tokens),
            str(r.reserved_tokens),
            str(r.reservations),
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(d[i]) for d in data)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip())
    for d in data:
        print("  ".join(c.ljust(w) for c, w in zip(d, widths, strict=False)).rstrip())
    return 0
