"""What a ledger is: budget keys holding spend and time-limited reservations.

Amounts are integers: dollars in nano-USD (1e-9), tokens as counts, so every backend compares
exactly (no float drift between Python, SQLite and Lua). A reservation is all or none: it is
recorded against every key it names only if none of them would go over its limit.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loopguard.errors import LedgerUnavailable as LedgerUnavailable  # its home before 0.2

NANO = 1_000_000_000
ENDED_KEEP = 3600.0
"""Seconds a ledger remembers that a reservation ended (settled or released), so that a replay
of the same settle or release within that time changes nothing."""


def usd_to_nano(usd: float, *, up: bool = False) -> int:
    """Reservations round up (a cap is never overshot by rounding); settlements round."""
    return math.ceil(usd * NANO - 1e-6) if up else round(usd * NANO)


@dataclass(frozen=True, slots=True)
class Claim:
    """An amount against one budget key, with that key's limits (None = no limit)."""

    key: str
    usd_n: int = 0
    tokens: int = 0
    max_usd_n: int | None = None
    max_tokens: int | None = None
    expire_at: float | None = None
    """When the key itself may be forgotten (its window is long past); None = never."""
    trip_until: float | None = None
    """Trip this key (see `Trip`) until then when a reservation is refused on it: a budget
    that stays shut for the rest of its window once exhausted (math.inf: until untripped).
    None = no automatic trip."""


TRIP_PREFIX = "loopguard:trip:"


def trip_key_of(key: str) -> str:
    """The trip key that shuts budget key `key` (its automatic trip)."""
    return f"{TRIP_PREFIX}budget:{key.removeprefix('loopguard:budget:')}"


@dataclass(frozen=True, slots=True)
class Trip:
    """A kill switch: while a trip key is set, every reservation that names it is refused.
    Keys: `loopguard:trip:agent=NAME`, `loopguard:trip:tenant:LABEL=VALUE` (set by hand, e.g.
    `loopguard budget trip`) and `loopguard:trip:budget:...` (a budget's automatic trip)."""

    key: str
    reason: str
    at: float
    until: float | None = None
    """When it lifts by itself; None = when untripped."""
    auto: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "reason": self.reason,
            "at": self.at,
            "until": self.until,
            "auto": self.auto,
        }


def auto_trip(claim: Claim, now: float) -> Trip:
    """The trip a refusal sets on a claim's key when the claim asks for one."""
    until = None if claim.trip_until is None or math.isinf(claim.trip_until) else claim.trip_until
    return Trip(trip_key_of(claim.key), f"budget exhausted on {claim.key}", now, until, True)


@dataclass(frozen=True, slots=True)
class Denied:
    """Why a reservation was refused: the first key that would go over, and its totals."""

    key: str
    spent_usd_n: int
    reserved_usd_n: int
    spent_tokens: int
    reserved_tokens: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a reserve call did. `denied` is None when every claim was reserved; `used` then
    holds, per claim, its key's spent + reserved (usd_n, tokens), this reservation included."""

    denied: Denied | None = None
    used: tuple[tuple[int, int], ...] = ()
    tripped: Trip | None = None
    """The first trip key that was set; nothing was reserved."""

    @property
    def ok(self) -> bool:
        return self.denied is None and self.tripped is None


@dataclass(frozen=True, slots=True)
class KeyUsage:
    key: str
    spent_usd_n: int = 0
    reserved_usd_n: int = 0
    spent_tokens: int = 0
    reserved_tokens: int = 0
    reservations: int = 0

    @property
    def spent_usd(self) -> float:
        return self.spent_usd_n / NANO

    @property
    def reserved_usd(self) -> float:
        return self.reserved_usd_n / NANO

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "spent_usd": self.spent_usd,
            "reserved_usd": self.reserved_usd,
            "spent_tokens": self.spent_tokens,
            "reserved_tokens": self.reserved_tokens,
            "reservations": self.reservations,
        }


class Ledger(ABC):
    """Storage of budget spend. Backends register a URI scheme in `loopguard.ledger`."""

    uri: str

    def __init__(self, uri: str) -> None:
        """Open the ledger at `uri`: `open_ledger` builds every backend from its URI alone."""
        self.uri = uri

    @classmethod
    def check_uri(cls, uri: str) -> None:
        """Raise ValueError, naming what is accepted, when no ledger can be opened from `uri`
        (checked when a policy loads, before any call depends on it). Any URI by default."""
        return None

    @classmethod
    def check_budgets(cls, uri: str, budgets: Sequence[Any]) -> None:
        """Raise ValueError when this ledger cannot keep `budgets` (BudgetSpecs). Any by
        default."""
        return None

    @abstractmethod
    def reserve(
        self,
        rid: str,
        claims: Sequence[Claim],
        ttl: float,
        now: float | None = None,
        trips: Sequence[str] = (),
    ) -> Reservation:
        """Reserve every claim under reservation id `rid` for `ttl` seconds, or none of them;
        when refused, `denied` names the first key that would go over its limit (and a claim
        with `trip_until` trips its key), or `tripped` the first of `trips` that is set. A key
        that already holds `rid`, or on which `rid` has ended, is left as it is (idempotent)."""

    @abstractmethod
    def trip(self, key: str, reason: str, until: float | None = None) -> Trip:
        """Set trip key `key` (a `TRIP_PREFIX` key): reservations naming it are refused."""

    @abstractmethod
    def untrip(self, key: str) -> bool:
        """Lift trip `key`; False if it was not set."""

    @abstractmethod
    def trips(self, prefix: str = TRIP_PREFIX) -> list[Trip]:
        """The trips set now whose key starts with `prefix`."""

    @abstractmethod
    def settle(self, rid: str, claims: Sequence[Claim], now: float | None = None) -> None:
        """End reservation `rid` on each claim's key and add the claim's amounts as spent.
        A reservation already expired (or never made) is not an error: the spend is added.
        Idempotent per `rid`: settling it again (a retry after a timeout whose first try did
        reach the storage) adds nothing."""

    @abstractmethod
    def release(self, rid: str, claims: Sequence[Claim], now: float | None = None) -> None:
        """End reservation `rid` on the claims' keys without spending (the call failed or
        never went out). A reserve of `rid` arriving after its release holds nothing; a
        settle after it still adds its spend."""

    @abstractmethod
    def usage(self, keys: Sequence[str] | None = None, prefix: str = "") -> list[KeyUsage]:
        """Totals of `keys`, or of every key starting with `prefix`; expired reservations are
        reclaimed first."""

    @abstractmethod
    def reset(self, prefix: str = "") -> int:
        """Forget every key starting with `prefix` (spend, reservations, trips); returns how
        many."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""
