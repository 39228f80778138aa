"""Ledgers: budget spend that outlives a run, picked by URI like the `limits` library does.

  memory://             one process (default)
  sqlite:///path.db     survives a restart; several processes on one host
  redis://host:port/db  a fleet of workers (rediss:// for TLS)
  redis+cluster://host:port[?shard=LABEL]   Redis Cluster (rediss+cluster:// for TLS)

`SCHEMES` maps a URI scheme to its class; register another backend by adding to it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit

from loopguard.ledger.base import (
    Claim,
    Denied,
    KeyUsage,
    Ledger,
    LedgerUnavailable,
    Reservation,
    usd_to_nano,
)
from loopguard.ledger.spec import BudgetSpec

# scheme -> "module:Class", imported on first use (redis-py is optional)
SCHEMES: dict[str, str] = {
    "memory": "loopguard.ledger.memory:MemoryLedger",
    "sqlite": "loopguard.ledger.sqlite:SqliteLedger",
    "redis": "loopguard.ledger.redis:RedisLedger",
    "rediss": "loopguard.ledger.redis:RedisLedger",
    "redis+cluster": "loopguard.ledger.redis:RedisClusterLedger",
    "rediss+cluster": "loopguard.ledger.redis:RedisClusterLedger",
}

_open: dict[str, Ledger] = {}
_lock = threading.Lock()


def ledger_class(uri: str) -> type[Ledger]:
    scheme = urlsplit(uri).scheme
    target = SCHEMES.get(scheme)
    if target is None:
        raise ValueError(
            f"unknown ledger URI {uri!r}; accepted schemes: "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Ledger)):
        raise TypeError(f"SCHEMES[{scheme!r}] = {target!r} is not a Ledger subclass")
    return cls


def check_uri(uri: str) -> str:
    """`uri` itself if a ledger can be opened from it; else a ValueError that says why and
    what is accepted."""
    ledger_class(uri).check_uri(uri)
    return uri


def check_budgets(uri: str, budgets: Sequence[BudgetSpec]) -> None:
    """A ValueError when the ledger at `uri` cannot keep these budgets (a sharded cluster)."""
    ledger_class(uri).check_budgets(uri, budgets)


def open_ledger(uri: str) -> Ledger:
    """A new ledger for `uri`."""
    return ledger_class(uri)(uri)


def shared_ledger(uri: str) -> Ledger:
    """The process's one ledger per URI (so memory:// budgets are shared by every guard)."""
    found = _open.get(uri)
    if found is None:
        with _lock:
            found = _open.get(uri)
            if found is None:
                found = _open[uri] = open_ledger(uri)
    return found


__all__ = [
    "SCHEMES",
    "BudgetSpec",
    "Claim",
    "Denied",
    "KeyUsage",
    "Ledger",
    "LedgerUnavailable",
    "Reservation",
    "check_budgets",
    "check_uri",
    "ledger_class",
    "open_ledger",
    "shared_ledger",
    "usd_to_nano",
]
