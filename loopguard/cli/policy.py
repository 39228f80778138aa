"""`loopguard policy check|show`: validate a policy file (in CI, before a deploy) and print the
policy an agent really gets (the default with its overrides applied)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from loopguard.cli._common import (
    EXIT_FINDINGS,
    EXIT_OK,
    UserError,
    add_json_option,
    add_policy_option,
    print_json,
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "policy",
        help="check a policy file, or show the policy an agent gets",
        description="Check a policy file (exit 1 with FILE:LINE: key: reason for each error) or "
        "show the effective policy of an agent as JSON.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext in (
        ("check", "validate a policy file"),
        ("show", "print an agent's effective policy as JSON"),
    ):
        q = sub.add_parser(name, help=helptext)
        q.add_argument(
            "path",
            nargs="?",
            metavar="PATH",
            help="policy file (the same as --policy PATH; '-' reads stdin)",
        )
        add_policy_option(q)
        if name == "show":
            q.add_argument(
                "--agent", help="the agent whose policy to show (default: the default policy)"
            )
            add_json_option(q, "the policy (it is JSON either way)")
        else:
            add_json_option(q, "the outcome (source, ok, agents, errors)")
        q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from loopguard.cli._common import read_policies
    from loopguard.errors import ConfigError

    if args.path is not None and args.policy is not None and args.path != args.policy:
        raise UserError("give the policy file once: as PATH or as --policy, not both")
    path = args.path if args.path is not None else args.policy
    try:
        policies = read_policies(path)
    except ConfigError as exc:
        if args.action == "show":
            raise UserError(str(exc)) from None
        if args.json:
            errors = [
                {"source": e.source, "line": e.line, "key": e.key, "reason": e.reason}
                for e in exc.errors
            ]
            print_json({"source": exc.source, "ok": False, "agents": [], "errors": errors})
        else:
            print(str(exc), file=sys.stderr)
        return EXIT_FINDINGS
    if args.action == "check":
        agents = sorted(policies.agents)
        if args.json:
            print_json({"source": policies.source, "ok": True, "agents": agents, "errors": []})
        else:
            shown = ", ".join(agents) or "none"
            print(f"{policies.source}: ok (a default policy and agent overrides for: {shown})")
        return EXIT_OK
    if args.agent is not None and args.agent not in policies.agents:
        print(
            f"loopguard policy: no overrides for agent {args.agent!r} in {policies.source}; "
            f"it gets the default policy",
            file=sys.stderr,
        )
    print_json(policies.for_agent(args.agent).model_dump(mode="json"))
    return EXIT_OK
