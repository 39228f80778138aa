"""redis:// and rediss:// : a fleet of workers sharing budgets.

Each reservation is ONE EVALSHA of lua/reserve.lua, atomic on the server: it checks every budget
key the call falls under and reserves on all of them or none. Reservations carry an expiry (a
sorted set per key), so a worker killed mid-call gives its reservation back after the TTL; the
scripts reclaim expired reservations before they look at a key. Every script is idempotent
per reservation id (lua/reclaim.lua says how), so a call that timed out on the client but ran
on the server can be replayed safely.

Keys are plain (no hash tags): a reservation spanning several budget keys needs them on one
node, so Redis Cluster is not supported; use a single primary (with replicas) per ledger.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from loopguard.ledger.base import (
    ENDED_KEEP,
    TRIP_PREFIX,
    Claim,
    Denied,
    KeyUsage,
    Ledger,
    LedgerUnavailable,
    Reservation,
    Trip,
    trip_key_of,
)

ZSET_SUFFIX = ":exp"
ENDED_SUFFIX = ":ended"


@functools.cache
def _script(name: str) -> str:
    lua = resources.files("loopguard.ledger").joinpath("lua")
    text = lua.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return lua.joinpath("reclaim.lua").read_text(encoding="utf-8") + "\n" + text


class RedisLedger(Ledger):
    @classmethod
    def check_uri(cls, uri: str) -> None:
        form = "write redis://HOST:PORT/DB (rediss:// for TLS), e.g. redis://localhost:6379/0"
        parts = urlsplit(uri)
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{uri!r}: the port is not a number from 1 to 65535; {form}") from None
        if not parts.hostname:
            raise ValueError(f"{uri!r}: no host; {form}")
        if port == 0:
            raise ValueError(f"{uri!r}: the port is not a number from 1 to 65535; {form}")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ValueError(f"{uri!r}: the database {db!r} is not a number; {form}")
        try:
            from redis.connection import parse_url
        except ImportError:
            return  # opening it will say that redis-py is missing
        try:
            parse_url(uri)  # the query options (socket_timeout=...), as redis-py reads them
        except ValueError as exc:
            raise ValueError(f"{uri!r}: {exc} {form}, options as redis-py reads them") from None

    def __init__(self, uri: str, *, socket_timeout: float = 2.0) -> None:
        try:
            import redis
        except ImportError:
            raise ImportError(
                "the redis:// ledger needs redis-py: pip install 'langchain-loopguard[redis]'"
            ) from None
        self.uri = uri
        # Any server-side refusal (a read-only replica after failover, OOM, auth) counts as
        # unreachable too: the policy's on_ledger_error decides, the guard never guesses.
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self._client = redis.Redis.from_url(
            uri, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        # register_script sends EVALSHA and reloads the script after a NOSCRIPT reply.
        self._reserve = self._client.register_script(_script("reserve"))
        self._settle = self._client.register_script(_script("settle"))
        self._usage = self._client.register_script(_script("usage"))
        self._pid = os.getpid()

    def reserve(
        self,
        rid: str,
        claims: Sequence[Claim],
        ttl: float,
        now: float | None = None,
        trips: Sequence[str] = (),
    ) -> Reservation:
        if not claims and not trips:
            return Reservation()
        now = time.time() if now is None else now
        args: list[Any] = [repr(now), repr(now + ttl), rid, len(claims)]
        keys: list[str] = []
        for c in claims:
            args += [
                c.usd_n,
                c.tokens,
                -1 if c.max_usd_n is None else c.max_usd_n,
                -1 if c.max_tokens is None else c.max_tokens,
                _at(c.expire_at),
                _until(c.trip_until),
                c.key,
            ]
            keys += [*_keys([c.key]), trip_key_of(c.key)]
        result = self._call(self._reserve, keys + list(trips), args)
        kind = int(result[0])
        if kind == 1:
            flat = [int(x) for x in result[1:]]
            return Reservation(used=tuple(zip(flat[0::2], flat[1::2], strict=False)))
        if kind == 2:
            key, reason, at, until, auto = (_text(x) for x in result[1:6])
            return Reservation(
                tripped=Trip(key, reason, float(at), float(until) if until else None, auto == "1")
            )
        i = int(result[1]) - 1
        return Reservation(
            Denied(claims[i].key, int(result[2]), int(result[3]), int(result[4]), int(result[5]))
        )

    def trip(self, key: str, reason: str, until: float | None = None) -> Trip:
        found = Trip(key, reason, time.time(), until)

        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping={"reason": reason, "at": repr(found.at), "auto": "0"})
            if until is not None:
                pipe.hset(key, "until", repr(until))
                pipe.expireat(key, math.ceil(until))
            pipe.execute()

        self._call(write)
        return found

    def untrip(self, key: str) -> bool:
        return bool(self._call(self._client.delete, key))

    def trips(self, prefix: str = TRIP_PREFIX) -> list[Trip]:
        def read() -> list[Trip]:
            found = []
            for key in sorted(self._scan(prefix)):
                v = self._client.hmget(key, "reason", "at", "until", "auto")
                if v[0] is None:
                    continue  # expired meanwhile, or not a trip
                reason, at, until, auto = (_text(x) if x is not None else "" for x in v)
                found.append(
                    Trip(key, reason, float(at or 0), float(until) if until else None, auto == "1")
                )
            return found

        return self._call(read)

    def settle(self, rid: str, claims: Sequence[Claim], now: float | None = None) -> None:
        self._end("s", rid, claims, now)

    def release(self, rid: str, claims: Sequence[Claim], now: float | None = None) -> None:
        self._end("r", rid, claims, now)

    def _end(self, kind: str, rid: str, claims: Sequence[Claim], now: float | None) -> None:
        if not claims:
            return
        now = time.time() if now is None else now
        args: list[Any] = [repr(now), rid, kind, repr(now + ENDED_KEEP)]
        for c in claims:
            args += [c.usd_n, c.tokens, _at(c.expire_at)]
        self._call(self._settle, _keys(c.key for c in claims), args)

    def usage(self, keys: Sequence[str] | None = None, prefix: str = "") -> list[KeyUsage]:
        if keys is None:
            keys = sorted(
                {k.decode() if isinstance(k, bytes) else k for k in self._call(self._scan, prefix)}
            )
        if not keys:
            return []
        flat = self._call(self._usage, _keys(keys), [repr(time.time())])
        return [KeyUsage(k, *(int(x) for x in flat[5 * i : 5 * i + 5])) for i, k in enumerate(keys)]

    def reset(self, prefix: str = "") -> int:
        keys = self._call(self._scan, prefix)
        if keys:
            self._call(self._client.delete, *_keys(keys))
        return len(keys)

    def close(self) -> None:
        self._client.close()

    def _scan(self, prefix: str) -> list[str]:
        found = set()
        for k in self._client.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
            k = k.decode() if isinstance(k, bytes) else k
            found.add(k.removesuffix(ZSET_SUFFIX).removesuffix(ENDED_SUFFIX))
        return sorted(found)

    def _call(self, fn: Any, *args: Any) -> Any:
        if os.getpid() != self._pid:  # a forked child must not share the parent's sockets
            self._client.connection_pool.reset()
            self._pid = os.getpid()
        try:
            if fn in (self._reserve, self._settle, self._usage):
                return fn(keys=args[0], args=args[1])
            return fn(*args)
        except self._errors as exc:
            raise LedgerUnavailable(f"{self.uri}: {exc}") from exc


def _keys(names: Any) -> list[str]:
    out = []
    for name in names:
        out += [name, name + ZSET_SUFFIX, name + ENDED_SUFFIX]
    return out


def _until(trip_until: float | None) -> str:
    if trip_until is None:
        return "0"
    return "-1" if math.isinf(trip_until) else repr(trip_until)


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _at(expire_at: float | None) -> int:
    return 0 if expire_at is None else int(expire_at) + 1


def _glob_escape(s: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in s)
