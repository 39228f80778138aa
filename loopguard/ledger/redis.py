"""redis:// and rediss:// : a fleet of workers sharing budgets; redis+cluster:// for Redis
Cluster (ElastiCache, MemoryDB, Valkey in cluster mode).

Each reservation is ONE EVALSHA of lua/reserve.lua, atomic on the server: it checks every budget
key the call falls under (and its kill switches) and reserves on all of them or none.
Reservations carry an expiry (a sorted set per key), so a worker killed mid-call gives its
reservation back after the TTL; the scripts reclaim expired reservations before they look at a
key. Every script is idempotent per reservation id (lua/reclaim.lua says how), so a call that
timed out on the client but ran on the server can be replayed safely.

On a cluster a script may only touch keys of one hash slot, so `RedisClusterLedger` stores each
key under a hash tag, `{TAG}loopguard:budget:...`, the same tag for every key of a reservation:
`{loopguard}` for all (one slot: every budget works, nothing is spread), or, with
`?shard=LABEL`, the tenant that label names (`{tenant_id=acme}`): tenants spread over the
cluster, and only budgets and trips that live inside one tenant can be kept (tenant and
conversation budgets, tenant trips). Keys shown to users (`budget show`, verdicts) are without
the tag.
"""

from __future__ import annotations

import functools
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, TypeVar, overload
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

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


_T = TypeVar("_T")


class RedisLedger(Ledger):
    cluster = False

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
        self._errors: tuple[type[BaseException], ...] = (
            redis.RedisError,
            redis.exceptions.RedisClusterException,  # not a RedisError (no slot covered, ...)
        )
        self._socket_timeout = socket_timeout
        self._connect()

    def _connect(self) -> None:
        import redis

        self._client: Any = redis.Redis.from_url(self.uri, **self._timeouts(self.uri))
        self._register()

    def _timeouts(self, uri: str) -> dict[str, float]:
        """The socket and connect timeouts: the URI's, else the ledger's. A URI that sets only
        `socket_timeout` sets the connect timeout too, so a host that drops packets is given up
        on as soon as a stalled one (redis-py would keep its own connect timeout)."""
        from redis.connection import parse_url

        options = parse_url(uri)
        timeout = options.get("socket_timeout", self._socket_timeout)
        return {
            "socket_timeout": timeout,
            "socket_connect_timeout": options.get("socket_connect_timeout", timeout),
        }

    def _register(self) -> None:
        # register_script sends EVALSHA and reloads the script after a NOSCRIPT reply.
        self._reserve = self._client.register_script(_script("reserve"))
        self._settle = self._client.register_script(_script("settle"))
        self._usage = self._client.register_script(_script("usage"))
        self._pid = os.getpid()

    # Where keys live. A single server keeps them as named; RedisClusterLedger adds hash tags.

    def _tag(self, keys: Sequence[str]) -> str:
        """The prefix of every key of one script call (all of them in one hash slot)."""
        return ""

    def _stored(self, key: str) -> list[str]:
        """Where logical key `key` is stored (a cluster may need to look)."""
        return [key]

    def _match(self, prefix: str) -> str:
        return _glob_escape(prefix) + "*"

    @staticmethod
    def _logical(stored: str) -> str:
        return stored

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
        keys += trips
        tag = self._tag(keys)
        result = self._call("reserve", [tag + k for k in keys], args)
        kind = int(result[0])
        if kind == 1:
            flat = [int(x) for x in result[1:]]
            return Reservation(used=tuple(zip(flat[0::2], flat[1::2], strict=False)))
        if kind == 2:
            key, reason, at, until, auto = (_text(x) for x in result[1:6])
            return Reservation(
                tripped=Trip(
                    self._logical(key),
                    reason,
                    float(at),
                    float(until) if until else None,
                    auto == "1",
                )
            )
        i = int(result[1]) - 1
        return Reservation(
            Denied(claims[i].key, int(result[2]), int(result[3]), int(result[4]), int(result[5]))
        )

    def trip(self, key: str, reason: str, until: float | None = None) -> Trip:
        found = Trip(key, reason, time.time(), until)
        stored = self._tag([key]) + key

        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(stored)
            pipe.hset(stored, mapping={"reason": reason, "at": repr(found.at), "auto": "0"})
            if until is not None:
                pipe.hset(stored, "until", repr(until))
                pipe.expireat(stored, math.ceil(until))
            pipe.execute()

        self._call(write)
        return found

    def untrip(self, key: str) -> bool:
        def delete() -> int:
            return sum(self._client.delete(k) for k in self._stored(key))

        return bool(self._call(delete))

    def trips(self, prefix: str = TRIP_PREFIX) -> list[Trip]:
        def read() -> list[Trip]:
            found = []
            for stored in self._scan_stored(prefix):
                v = self._client.hmget(stored, "reason", "at", "until", "auto")
                if v[0] is None:
                    continue  # expired meanwhile, or not a trip
                reason, at, until, auto = (_text(x) if x is not None else "" for x in v)
                found.append(
                    Trip(
                        self._logical(stored),
                        reason,
                        float(at or 0),
                        float(until) if until else None,
                        auto == "1",
                    )
                )
            return found

        trips: list[Trip] = self._call(read)
        return trips

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
        keys = _keys(c.key for c in claims)
        tag = self._tag(keys)
        self._call("settle", [tag + k for k in keys], args)

    def usage(self, keys: Sequence[str] | None = None, prefix: str = "") -> list[KeyUsage]:
        def read() -> list[KeyUsage]:
            if keys is None:
                found: dict[str, list[str]] = {}
                for name in self._scan_stored(prefix):
                    found.setdefault(self._logical(name), []).append(name)
            else:
                found = {k: self._stored(k) for k in keys}
            now = repr(time.time())
            names = sorted(found) if keys is None else list(keys)
            stored = [k for name in names for k in found[name]]
            if self.cluster:  # a script reads keys of one slot: one call per stored key
                flat = [x for k in stored for x in self._usage(keys=_keys([k]), args=[now])]
            else:
                flat = self._usage(keys=_keys(stored), args=[now]) if stored else []
            totals = iter([int(x) for x in flat[5 * i : 5 * i + 5]] for i in range(len(stored)))
            out = []
            for name in names:
                total = [0] * 5
                for _ in found[name]:
                    total = [a + b for a, b in zip(total, next(totals), strict=True)]
                out.append(KeyUsage(name, *total))
            return out

        usage: list[KeyUsage] = self._call(read)
        return usage

    def reset(self, prefix: str = "") -> int:
        def delete() -> int:
            stored = self._scan_stored(prefix)
            for k in stored:
                self._client.delete(*_keys([k]))
            return len({self._logical(k) for k in stored})

        deleted: int = self._call(delete)
        return deleted

    def close(self) -> None:
        self._client.close()

    def _scan_stored(self, prefix: str) -> list[str]:
        """The stored names of every key (not its :exp and :ended sets) starting with `prefix`."""
        found = set()
        for k in self._client.scan_iter(match=self._match(prefix), count=1000):
            k = k.decode() if isinstance(k, bytes) else k
            found.add(k.removesuffix(ZSET_SUFFIX).removesuffix(ENDED_SUFFIX))
        return sorted(found)

    @overload
    def _call(self, fn: Callable[[], _T]) -> _T: ...

    @overload
    def _call(self, fn: str, keys: list[str], args: list[Any], /) -> Any: ...

    def _call(self, fn: Callable[[], Any] | str, *args: Any) -> Any:
        """`fn()`, or the script named `fn` on (keys, args); any Redis error is the ledger
        being unavailable."""
        if os.getpid() != self._pid:  # a forked child must not share the parent's sockets
            self._connect()
        try:
            if isinstance(fn, str):
                return getattr(self, f"_{fn}")(keys=args[0], args=args[1])
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


class RedisClusterLedger(RedisLedger):
    """redis+cluster://HOST:PORT[/0][?shard=LABEL] (rediss+cluster:// for TLS), through
    redis-py's RedisCluster: any one node is enough to find the others. See the module's
    docstring for the hash tags and the `shard` trade-off."""

    cluster = True

    @classmethod
    def check_uri(cls, uri: str) -> None:
        base, _ = _cluster_uri(uri)
        if urlsplit(base).path.strip("/") not in ("", "0"):
            raise ValueError(f"{uri!r}: a Redis Cluster has only database 0")
        super().check_uri(base)

    @classmethod
    def check_budgets(cls, uri: str, budgets: Sequence[Any]) -> None:
        _, shard = _cluster_uri(uri)
        if shard is None:
            return
        for i, b in enumerate(budgets):
            if b.scope in ("global", "agent") or (b.scope == "tenant" and b.key != shard):
                raise ValueError(
                    f"budgets.{i}: a ledger sharded by {shard!r} keeps only budgets inside one "
                    f"tenant (scope tenant with key = {shard!r}, or conversation); drop "
                    f"?shard= from the ledger URI to keep {b.scope} budgets (one hash slot)"
                )
        if budgets and not any(b.scope == "tenant" for b in budgets):
            raise ValueError(
                f"budgets: a ledger sharded by {shard!r} needs a tenant budget with "
                f"key = {shard!r} (it names the shard of each call)"
            )

    def __init__(self, uri: str, *, socket_timeout: float = 2.0) -> None:
        self._base, self.shard = _cluster_uri(uri)
        super().__init__(uri, socket_timeout=socket_timeout)

    def _connect(self) -> None:
        from redis.cluster import RedisCluster

        try:  # RedisCluster reaches a node at once, to learn the slots
            self._client = RedisCluster.from_url(self._base, **self._timeouts(self._base))
        except self._errors as exc:
            raise LedgerUnavailable(f"{self.uri}: {exc}") from exc
        self._register()

    def _shard_of(self, key: str) -> str | None:
        if self.shard is None:
            return "loopguard"
        label = re.escape(quote(self.shard, safe="").replace("~", "%7E"))
        found = re.search(rf"(?:^|:)tenant:({label}(?:=[^:]*)?)(?::|$)", key)
        return None if found is None else found.group(1)

    def _tag(self, keys: Sequence[str]) -> str:
        for k in keys:
            shard = self._shard_of(k)
            if shard is not None:
                return "{" + shard + "}"
        raise LedgerUnavailable(
            f"{self.uri}: sharded by {self.shard!r}, but this call falls under no tenant "
            f"budget on that label"
        )

    def _stored(self, key: str) -> list[str]:
        shard = self._shard_of(key)
        if shard is not None:
            return ["{" + shard + "}" + key]
        return [k for k in self._scan_stored(key) if self._logical(k) == key]

    def _match(self, prefix: str) -> str:
        return "{*}" + _glob_escape(prefix) + "*"

    @staticmethod
    def _logical(stored: str) -> str:
        return stored[stored.index("}") + 1 :] if stored.startswith("{") else stored

    def trip(self, key: str, reason: str, until: float | None = None) -> Trip:
        if self._shard_of(key) is None:
            raise ValueError(
                f"{key}: a ledger sharded by {self.shard!r} keeps only trips of one tenant "
                f"(--tenant); drop ?shard= from the ledger URI to trip agents"
            )
        return super().trip(key, reason, until)


def _cluster_uri(uri: str) -> tuple[str, str | None]:
    """(the URI redis-py's RedisCluster reads, the shard label or None)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.removesuffix("+cluster")
    query = parse_qsl(parts.query, keep_blank_values=True)
    shard = next((v for k, v in query if k == "shard"), None)
    rest = urlencode([(k, v) for k, v in query if k != "shard"])
    return urlunsplit((scheme, parts.netloc, parts.path, rest, parts.fragment)), shard or None
