"""memory:// : one process, a lock. The default; budgets last as long as the process."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from loopguard.ledger.base import Claim, Denied, KeyUsage, Ledger


@dataclass(slots=True)
class _Key:
    spent_n: int = 0
    spent_t: int = 0
    held: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # rid -> (n, t, expiry)
    expire_at: float | None = None

    def reclaim(self, now: float) -> None:
        for rid in [r for r, (_, _, exp) in self.held.items() if exp <= now]:
            del self.held[rid]

    def reserved(self) -> tuple[int, int]:
        return sum(h[0] for h in self.held.values()), sum(h[1] for h in self.held.values())


class MemoryLedger(Ledger):
    def __init__(self, uri: str = "memory://") -> None:
        self.uri = uri
        self._keys: dict[str, _Key] = {}
        self._lock = threading.Lock()

    def reserve(self, rid: str, claims: Sequence[Claim], ttl: float,
                now: float | None = None) -> Denied | None:
        now = time.time() if now is None else now
        with self._lock:
            self._forget_old(now)
            for c in claims:
                k = self._keys.get(c.key) or _Key()
                k.reclaim(now)
                rn, rt = k.reserved()
                if ((c.max_usd_n is not None and k.spent_n + rn + c.usd_n > c.max_usd_n)
                        or (c.max_tokens is not None and k.spent_t + rt + c.tokens > c.max_tokens)):
                    return Denied(c.key, k.spent_n, rn, k.spent_t, rt)
            for c in claims:
                k = self._key(c)
                k.held[rid] = (c.usd_n, c.tokens, now + ttl)
        return None

    def settle(self, rid: str, claims: Sequence[Claim]) -> None:
        with self._lock:
            for c in claims:
                k = self._key(c)
                k.held.pop(rid, None)
                k.spent_n += c.usd_n
                k.spent_t += c.tokens

    def usage(self, keys: Sequence[str] | None = None, prefix: str = "") -> list[KeyUsage]:
        now = time.time()
        with self._lock:
            self._forget_old(now)
            names = list(keys) if keys is not None else sorted(
                k for k in self._keys if k.startswith(prefix))
            out = []
            for name in names:
                k = self._keys.get(name) or _Key()
                k.reclaim(now)
                rn, rt = k.reserved()
                out.append(KeyUsage(name, k.spent_n, rn, k.spent_t, rt, len(k.held)))
            return out

    def reset(self, prefix: str = "") -> int:
        with self._lock:
            doomed = [k for k in self._keys if k.startswith(prefix)]
            for k in doomed:
                del self._keys[k]
            return len(doomed)

    def _key(self, c: Claim) -> _Key:
        k = self._keys.get(c.key)
        if k is None:
            k = self._keys[c.key] = _Key(expire_at=c.expire_at)
        elif k.expire_at is not None:
            k.expire_at = None if c.expire_at is None else max(k.expire_at, c.expire_at)
        return k

    def _forget_old(self, now: float) -> None:
        for name in [n for n, k in self._keys.items()
                     if k.expire_at is not None and k.expire_at < now and not k.held]:
            del self._keys[name]

