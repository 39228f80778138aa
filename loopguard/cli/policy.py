"""`loopguard policy check|show`: validate a policy file (in CI, before a deploy) and print the
policy an agent really gets (the default with its overrides applied)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "policy",
        help="check a policy file, or show the policy an agent gets",
        description="Check a policy file (exit 1 with FILE:LINE: key: reason when it is bad) or "
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
            help="policy file (default: $LOOPGUARD_CONFIG, ./loopguard.toml, "
            "./loopguard.yaml, [tool.loopguard] in ./pyproject.toml)",
        )
        if name == "show":
            q.add_argument(
                "--agent", help="the agent whose policy to show (default: the default policy)"
            )
        q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from loopguard.config import ConfigError
    from loopguard.policy import PolicySet

    try:
        policies = PolicySet.load(args.path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if args.action == "check":
        agents = ", ".join(sorted(policies.agents)) or "none"
        print(f"{policies.source}: ok (a default policy and agent overrides for: {agents})")
        return 0
    if args.agent is not None and args.agent not in policies.agents:
        print(
            f"loopguard policy: no overrides for agent {args.agent!r} in {policies.source}; "
            f"it gets the default policy",
            file=sys.stderr,
        )
    policy = policies.for_agent(args.agent)
    json.dump(policy.model_dump(mode="json"), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
