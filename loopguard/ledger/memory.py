"""memory:// : one process, a lock. The default; budgets last as long as the process."""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from loopguard.ledger.base import (
    ENDED_KEEP,
    TRIP_PREFIX,
    Claim,
    Denied,
    KeyUsage,
    Ledger,
    Reservation,
    Trip,
    auto_trip,
    trip_key_of,
)


@dataclass(slots=True)
class _Key:
    spent_n: int = 0
    spent_t: int = 0
    res_n: int = 0  # sums of live reservations, kept so a check is O(1)
    res_t: int = 0
    held: dict[str, tuple[int, int]] = field(default_factory=dict)  # rid -> amounts
    expiries: list[tuple[float, str]] = field(default_factory=list)  # heap of (expiry, rid)
    expire_at: float | None = None
    ended: dict[str, str] = field(default_factory=dict)  # rid -> "s" settled / "r" released
    forget: deque[tuple[float, str]] = field(default_factory=deque)  # (keep until, rid)

    def hold(self, rid: str, n: int, t: int, expiry: float) -> None:
        self.held[rid] = (n, t)
        self.res_n += n
        self.res_t += t
        heapq.heappush(self.expiries, (expiry, rid))

    def drop(self, rid: str) -> None:
        amounts = self.held.pop(rid, None)
        if amounts is not None:
            self.res_n -= amounts[0]
            self.res_t -= amounts[1]
        # its heap entry is skipped when it comes up (lazy deletion)

    def reclaim(self, now: float) -> None:
        heap = self.expiries
        while heap and heap[0][0] <= now:
            self.drop(heapq.heappop(heap)[1])
        if not self.held:
            heap.clear()
        while self.forget and self.forget[0][0] <= now:
            self.ended.pop(self.forget.popleft()[1], None)

    def end(self, rid: str, kind: str, keep_until: float) -> bool:
        """Record that `rid` ended; False when that changes nothing (see lua/settle.lua)."""
        was = self.ended.get(rid)
        if was == "s" or (kind == "r" and was == "r"):
            return False
        self.drop(rid)
        self.ended[rid] = kind
        self.forget.append((keep_until, rid))
        return True


class MemoryLedger(Ledger):
    def __init__(self, uri: str = "memory://") -> None:
        self.uri = uri
        self._keys: dict[str, _Key] = {}
        self._trips: dict[str, Trip] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def reserve(
        self,
        rid: str,
        claims: Sequence[Claim],
        ttl: float,
        now: float | None = None,
        trips: Sequence[str] = (),
    ) -> Reservation:
        now = time.time() if now is None else now
        with self._lock:
            self._forget_old(now)
            for name in (*(trip_key_of(c.key) for c in claims), *trips):
                found = self._trip(name, now)
                if found is not None:
                    return Reservation(tripped=found)
            skip = []
            for c in claims:
                k = self._keys.get(c.key) or _Key()
                k.reclaim(now)
                skip.append(rid in k.held or rid in k.ended)
                if not skip[-1] and (
                    (c.max_usd_n is not None and k.spent_n + k.res_n + c.usd_n > c.max_usd_n)
                    or (c.max_tokens is not None and k.spent_t + k.res_t + c.tokens > c.max_tokens)
                ):
                    if c.trip_until is not None:
                        t = auto_trip(c, now)
                        self._trips[t.key] = t
                    return Reservation(Denied(c.key, k.spent_n, k.res_n, k.spent_t, k.res_t))
            used = []
            for c, skipped in zip(claims, skip, strict=True):
                k = self._key(c)
                if not skipped:
                    k.hold(rid, c.usd_n, c.tokens, now + ttl)
                used.append((k.spent_n + k.res_n, k.spent_t + k.res_t))
        return Reservation(used=tuple(used))

    def settle(self, rid: str, claims: Sequence[Claim], now: float | None = None) -> None:
        self._end("s", rid, claims, now)

    def release(self, rid: str, claims: Sequence[Claim], now: float | None = None) -> None:
        self._end("r", rid, claims, now)

    def _end(self, kind: str, rid: str, claims: Sequence[Claim], now: float | None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            for c in claims:
                k = self._key(c)
                k.reclaim(now)
                if k.end(rid, kind, now + ENDED_KEEP) and kind == "s":
                    k.spent_n += c.usd_n
                    k.spent_t += c.tokens

    def usage(self, keys: Sequence[str] | None = None, prefix: str = "") -> list[KeyUsage]:
        now = time.time()
        with self._lock:
            self._next_sweep = 0.0
            self._forget_old(now)
            names = (
                list(keys)
                if keys is not None
                else sorted(k for k in self._keys if k.startswith(prefix))
            )
            out = []
            for name in names:
                k = self._keys.get(name) or _Key()
                k.reclaim(now)
                out.append(KeyUsage(name, k.spent_n, k.res_n, k.spent_t, k.res_t, len(k.held)))
            return out

    def trip(self, key: str, reason: str, until: float | None = None) -> Trip:
        found = Trip(key, reason, time.time(), until)
        with self._lock:
            self._trips[key] = found
        return found

    def untrip(self, key: str) -> bool:
        with self._lock:
            return self._trips.pop(key, None) is not None

    def trips(self, prefix: str = TRIP_PREFIX) -> list[Trip]:
        now = time.time()
        with self._lock:
            found = [self._trip(k, now) for k in sorted(self._trips) if k.startswith(prefix)]
        return [t for t in found if t is not None]

    def reset(self, prefix: str = "") -> int:
        with self._lock:
            doomed = [k for k in self._keys if k.startswith(prefix)]
            for k in doomed:
                del self._keys[k]
            gone = [k for k in self._trips if k.startswith(prefix)]
            for k in gone:
                del self._trips[k]
            return len(doomed) + len(gone)

    def _trip(self, key: str, now: float) -> Trip | None:
        found = self._trips.get(key)
        if found is not None and found.until is not None and found.until <= now:
            del self._trips[key]
            return None
        return found

    def _key(self, c: Claim) -> _Key:
        k = self._keys.get(c.key)
        if k is None:
            k = self._keys[c.key] = _Key(expire_at=c.expire_at)
        elif k.expire_at is not None:
            k.expire_at = None if c.expire_at is None else max(k.expire_at, c.expire_at)
        return k

    def _forget_old(self, now: float) -> None:
        if now < self._next_sweep:  # sweep old windows at most once a minute
            return
        self._next_sweep = now + 60
        for name in [
            n
            for n, k in self._keys.items()
            if k.expire_at is not None and k.expire_at < now and not k.held
        ]:
            del self._keys[name]
