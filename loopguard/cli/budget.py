"""`loopguard budget show|reset|trip|untrip`: inspect, clear or shut the budgets in a ledger.

Exit status: 0 done, 1 the ledger is unreachable (or `untrip` found nothing to lift), 2 a usage
or input error (no ledger, a ledger file that does not exist, a memory:// ledger).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

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
from loopguard.ledger.base import TRIP_PREFIX
from loopguard.ledger.spec import PREFIX, agent_trip_key, tenant_trip_key

_DEFAULT_REASON = "tripped with loopguard budget trip"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "budget",
        help="show, reset or trip budgets in a ledger",
        description="Inspect the budgets kept in a ledger (spent and reserved dollars and "
        "tokens per budget key, and the trips in force), reset them, or trip a fleet-wide kill "
        "switch that refuses an agent's or a tenant's next call in every worker sharing it.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="spend and reservations per budget key, and trips")
    reset = actions.add_parser("reset", help="forget the spend (and trips) of matching budgets")
    trip = actions.add_parser("trip", help="refuse every call of an agent or tenant")
    untrip = actions.add_parser("untrip", help="lift a trip")
    for a in (show, reset, trip, untrip):
        a.add_argument(
            "--ledger",
            help="ledger URI, e.g. redis://localhost:6379/0 or "
            "sqlite:///budgets.db (default: the policy's ledger)",
        )
        add_policy_option(a, "policy file to read the ledger URI (and tenant label) from")
    for a in (show, reset):
        a.add_argument(
            "match",
            nargs="?",
            default="",
            help="only keys starting with this, after the 'loopguard:budget:' "
            "prefix, e.g. tenant:tenant_id=acme",
        )
    add_json_option(show)
    add_json_option(trip, "the trip")
    reset.add_argument(
        "--yes", action="store_true", help="required to reset every budget (no MATCH given)"
    )
    for a in (trip, untrip):
        who = a.add_mutually_exclusive_group(required=True)
        who.add_argument("--agent", metavar="NAME", help="the agent's name")
        who.add_argument("--tenant", metavar="VALUE", help="the tenant's id (a string)")
        if a is untrip:
            who.add_argument(
                "--key", help="a trip key as `budget show` lists it (e.g. a budget's own trip)"
            )
        a.add_argument(
            "--label",
            metavar="KEY",
            help="the metadata key holding tenant ids (default: the `key` of the policy's "
            "tenant budgets, when they all use one)",
        )
    trip.add_argument("--reason", default=_DEFAULT_REASON, help="shown in every refusal")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from loopguard.ledger import LedgerUnavailable, open_ledger

    uri = args.ledger
    policies = None
    if uri is None or (getattr(args, "tenant", None) and not args.label):
        policies = load_policies(args.policy)
    if uri is None:
        uri = policies.default.ledger if policies is not None else "memory://"
    if uri.startswith("memory://"):
        raise UserError(
            "a memory:// ledger lives inside one process; pass --ledger "
            "sqlite:///... or redis://... (or set ledger in your policy)"
        )
    _must_exist(uri)
    try:
        ledger = open_ledger(uri)
    except (ValueError, ImportError) as exc:
        raise UserError(str(exc)) from None
    except LedgerUnavailable as exc:
        raise UserError(f"ledger unreachable: {exc}", EXIT_FINDINGS) from None
    try:
        if args.action == "show":
            return _show(ledger, uri, args)
        if args.action == "reset":
            return _reset(ledger, uri, args)
        key = args.key if getattr(args, "key", None) else _trip_key(args, policies)
        if args.action == "trip":
            try:
                found = ledger.trip(key, args.reason)
            except ValueError as exc:  # a ledger that cannot keep this trip (sharded cluster)
                raise UserError(str(exc)) from None
            if args.json:
                print_json(found.to_dict())
            else:
                print(f"tripped {key.removeprefix(TRIP_PREFIX)} in {uri}: {args.reason}")
            return EXIT_OK
        if ledger.untrip(key):
            print(f"untripped {key.removeprefix(TRIP_PREFIX)} in {uri}")
            return EXIT_OK
        print(f"{key.removeprefix(TRIP_PREFIX)} was not tripped in {uri}")
        return EXIT_FINDINGS
    except LedgerUnavailable as exc:
        raise UserError(f"ledger unreachable: {exc}", EXIT_FINDINGS) from None
    finally:
        ledger.close()


def _must_exist(uri: str) -> None:
    """A sqlite ledger that does not exist is a typo here: say so, and create nothing."""
    if not uri.startswith("sqlite:"):
        return
    from loopguard.ledger.sqlite import path_from_uri

    try:
        path = path_from_uri(uri)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not os.path.exists(path):
        raise UserError(f"{path}: no such ledger file (workers create it on their first call)")


def _trip_key(args: argparse.Namespace, policies: Any) -> str:
    if args.agent is not None:
        return agent_trip_key(args.agent)
    label = args.label
    if not label:
        found = {
            b.key
            for p in (policies.default, *policies.agents.values())
            for b in p.budgets
            if b.scope == "tenant" and b.key
        }
        if len(found) != 1:
            raise UserError(
                "pass --label KEY, the metadata key holding tenant ids ("
                + ("no tenant budget in the policy" if not found else f"the policy uses {found}")
                + ")"
            )
        (label,) = found
    return tenant_trip_key(label, args.tenant)


def _reset(ledger: Any, uri: str, args: argparse.Namespace) -> int:
    if not args.match and not args.yes:
        raise UserError("reset without MATCH clears every budget; add --yes")
    prefix = PREFIX + args.match
    n = ledger.reset(prefix)
    n_trips = ledger.reset(f"{TRIP_PREFIX}budget:{args.match}")  # their automatic trips
    print(f"reset {n} budget key(s) matching {prefix!r} in {uri}" + _lifted(n_trips))
    return EXIT_OK


def _lifted(n: int) -> str:
    return f"; lifted {n} automatic trip(s)" if n else ""


def _show(ledger: Any, uri: str, args: argparse.Namespace) -> int:
    prefix = PREFIX + args.match
    rows = ledger.usage(prefix=prefix)
    trips = ledger.trips()
    if args.json:
        print_json({"budgets": [r.to_dict() for r in rows], "trips": [t.to_dict() for t in trips]})
        return EXIT_OK
    if not rows:
        print(f"no budget keys matching {prefix!r} in {uri}")
    else:
        print_table(
            ["key", "spent $", "reserved $", "spent tokens", "reserved tokens", "held"],
            [
                [
                    r.key.removeprefix(PREFIX),
                    f"{r.spent_usd:.6f}",
                    f"{r.reserved_usd:.6f}",
                    str(r.spent_tokens),
                    str(r.reserved_tokens),
                    str(r.reservations),
                ]
                for r in rows
            ],
        )
    if trips:
        import time

        print()
        print_table(
            ["tripped", "since", "until", "reason"],
            [
                [
                    t.key.removeprefix(TRIP_PREFIX),
                    time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t.at)),
                    "lifted"
                    if t.until is None
                    else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t.until)),
                    t.reason,
                ]
                for t in trips
            ],
        )
    return EXIT_OK
