"""sqlite:///path.db : budgets that survive a restart, shared by processes on one host.

Every reservation is one `BEGIN IMMEDIATE` transaction (it takes the database's write lock
before it reads, so two processes cannot both read the same total and both reserve). WAL mode
lets readers proceed meanwhile; the busy timeout makes writers queue instead of failing.
The `ended` table makes reserve, settle and release idempotent per reservation id, as on Redis.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import parse_qs, unquote, urlsplit

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
    auto_trip,
    trip_key_of,
)

# budget.res_n / res_t are the sums of the key's live reservations, kept in step with the
# reservation table inside each transaction, so a check does not scan the reservations.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget (
  key TEXT PRIMARY KEY,
  spent_n INTEGER NOT NULL DEFAULT 0,
  spent_t INTEGER NOT NULL DEFAULT 0,
  res_n INTEGER NOT NULL DEFAULT 0,
  res_t INTEGER NOT NULL DEFAULT 0,
  expire_at REAL
);
CREATE TABLE IF NOT EXISTS reservation (
  rid TEXT NOT NULL,
  key TEXT NOT NULL,
  usd_n INTEGER NOT NULL,
  tokens INTEGER NOT NULL,
  expires REAL NOT NULL,
  PRIMARY KEY (rid, key)
);
CREATE INDEX IF NOT EXISTS reservation_by_key ON reservation (key, expires);
CREATE TABLE IF NOT EXISTS ended (
  rid TEXT NOT NULL,
  key TEXT NOT NULL,
  kind TEXT NOT NULL,
  keep_until REAL NOT NULL,
  PRIMARY KEY (rid, key, kind)
);
CREATE INDEX IF NOT EXISTS ended_by_time ON ended (keep_until);
CREATE TABLE IF NOT EXISTS trip (
  key TEXT PRIMARY KEY,
  reason TEXT NOT NULL,
  at REAL NOT NULL,
  until REAL,
  auto INTEGER NOT NULL DEFAULT 0
);
"""


def path_from_uri(uri: str) -> str:
    """sqlite:///relative.db, sqlite:////abs/path.db (as SQLAlchemy spells them)."""
    parts = urlsplit(uri)
    path = unquote(parts.path)
    if parts.netloc:
        raise ValueError(
            f"{uri!r}: a sqlite ledger URI has no host; write sqlite:///file.db "
            f"(relative) or sqlite:////abs/file.db (absolute)"
        )
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise ValueError(f"{uri!r}: no database file; write sqlite:///file.db")
    return path


def timeout_from_uri(uri: str, default: float = 30.0) -> float:
    """The busy timeout in seconds: `?timeout=2` (how long an operation waits for a file that
    another process holds locked; also how long a guarded call can wait for it)."""
    values = parse_qs(urlsplit(uri).query).get("timeout")
    if not values:
        return default
    try:
        timeout = float(values[-1])
    except ValueError:
        timeout = float("nan")
    if not (0 < timeout < float("inf")):
        raise ValueError(f"{uri!r}: timeout must be seconds above 0, got {values[-1]!r}")
    return timeout


class SqliteLedger(Ledger):
    @classmethod
    def check_uri(cls, uri: str) -> None:
        path_from_uri(uri)
        timeout_from_uri(uri)

    def __init__(self, uri: str, *, busy_timeout: float | None = None) -> None:
        self.uri = uri
        self.path = path_from_uri(uri)
        self.busy_timeout = timeout_from_uri(uri) if busy_timeout is None else busy_timeout
        self._local = threading.local()  # one connection per thread (and per process)
        with self._tx() as db:  # create the schema up front, so a bad path fails here
            db.execute("SELECT 1")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():
            try:
                db = sqlite3.connect(
                    self.path,
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
            except sqlite3.Error as exc:
                raise LedgerUnavailable(f"{self.uri}: {exc}") from exc
            self._local.db, self._local.pid = db, os.getpid()
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # locked past the busy timeout, disk gone
            self._drop()
            raise LedgerUnavailable(f"{self.uri}: {exc}") from exc
        try:
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as exc:  # disk full, I/O error, corrupt file, read-only file
            _rollback(db)
            self._drop()
            raise LedgerUnavailable(f"{self.uri}: {exc}") from exc
        except BaseException:
            _rollback(db)
            raise

    def _drop(self) -> None:
        """Forget this thread's connection after a failure, so the next operation opens a new
        one: SQLite opens a file it cannot write read-only, and such a connection stays
        read-only after the file is writable again."""
        db = getattr(self._local, "db", None)
        self._local.db = None
        if db is not None:
            try:
                db.close()
            except sqlite3.Error:
                pass  # it failed already; a new connection replaces it

    def reserve(
        self,
        rid: str,
        claims: Sequence[Claim],
        ttl: float,
        now: float | None = None,
        trips: Sequence[str] = (),
    ) -> Reservation:
        now = time.time() if now is None else now
        with self._tx() as db:
            for name in (*(trip_key_of(c.key) for c in claims), *trips):
                found = _trip(db, name, now)
                if found is not None:
                    return Reservation(tripped=found)
            skip = []
            for c in claims:
                _reclaim(db, c.key, now)
                skip.append(_holds(db, rid, c.key) or _ended(db, rid, c.key) is not None)
                sn, st, rn, rt = _totals(db, c.key)
                if not skip[-1] and (
                    (c.max_usd_n is not None and sn + rn + c.usd_n > c.max_usd_n)
                    or (c.max_tokens is not None and st + rt + c.tokens > c.max_tokens)
                ):
                    if c.trip_until is not None:
                        _set_trip(db, auto_trip(c, now))
                    return Reservation(Denied(c.key, sn, rn, st, rt))
            used = []
            for c, skipped in zip(claims, skip, strict=True):
                _ensure(db, c)
                if not skipped:
                    db.execute(
                        "INSERT INTO reservation VALUES (?, ?, ?, ?, ?)",
                        (rid, c.key, c.usd_n, c.tokens, now + ttl),
                    )
                    db.execute(
                        "UPDATE budget SET res_n = res_n + ?, res_t = res_t + ? WHERE key = ?",
                        (c.usd_n, c.tokens, c.key),
                    )
                sn, st, rn, rt = _totals(db, c.key)
                used.append((sn + rn, st + rt))
        return Reservation(used=tuple(used))

    def settle(self, rid: str, claims: Sequence[Claim], now: float | None = None) -> None:
        self._end("s", rid, claims, now)

    def release(self, rid: str, claims: Sequence[Claim], now: float | None = None) -> None:
        self._end("r", rid, claims, now)

    def _end(self, kind: str, rid: str, claims: Sequence[Claim], now: float | None) -> None:
        """As lua/settle.lua: a settled reservation is never settled again, a released one
        never released again; a settle after a release still adds its spend."""
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute("DELETE FROM ended WHERE keep_until < ?", (now,))
            for c in claims:
                _ensure(db, c)
                was = _ended(db, rid, c.key)
                if was == "s" or (kind == "r" and was == "r"):
                    continue
                _unreserve(db, "rid = ? AND key = ?", (rid, c.key), c.key)
                if kind == "s":
                    db.execute(
                        "UPDATE budget SET spent_n = spent_n + ?, spent_t = spent_t + ? "
                        "WHERE key = ?",
                        (c.usd_n, c.tokens, c.key),
                    )
                db.execute(
                    "INSERT OR REPLACE INTO ended VALUES (?, ?, ?, ?)",
                    (rid, c.key, kind, now + ENDED_KEEP),
                )

    def usage(self, keys: Sequence[str] | None = None, prefix: str = "") -> list[KeyUsage]:
        now = time.time()
        with self._tx() as db:
            for (key,) in db.execute(
                "SELECT DISTINCT key FROM reservation WHERE expires <= ?", (now,)
            ).fetchall():
                _reclaim(db, key, now)
            db.execute(
                "DELETE FROM budget WHERE expire_at < ? AND key NOT IN "
                "(SELECT key FROM reservation)",
                (now,),
            )
            if keys is None:
                keys = [
                    r[0]
                    for r in db.execute(
                        "SELECT key FROM budget WHERE substr(key, 1, ?) = ? ORDER BY key",
                        (len(prefix), prefix),
                    )
                ]
            out = []
            for key in keys:
                sn, st, rn, rt = _totals(db, key)
                (count,) = db.execute(
                    "SELECT COUNT(*) FROM reservation WHERE key = ?", (key,)
                ).fetchone()
                out.append(KeyUsage(key, sn, rn, st, rt, count))
            return out

    def trip(self, key: str, reason: str, until: float | None = None) -> Trip:
        found = Trip(key, reason, time.time(), until)
        with self._tx() as db:
            _set_trip(db, found)
        return found

    def untrip(self, key: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM trip WHERE key = ?", (key,)).rowcount > 0

    def trips(self, prefix: str = TRIP_PREFIX) -> list[Trip]:
        now = time.time()
        with self._tx() as db:
            db.execute("DELETE FROM trip WHERE until <= ?", (now,))
            rows = db.execute(
                "SELECT key, reason, at, until, auto FROM trip WHERE substr(key, 1, ?) = ? "
                "ORDER BY key",
                (len(prefix), prefix),
            ).fetchall()
        return [Trip(k, r, at, until, bool(auto)) for k, r, at, until, auto in rows]

    def reset(self, prefix: str = "") -> int:
        with self._tx() as db:
            n = db.execute(
                "DELETE FROM budget WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
            ).rowcount
            n += db.execute(
                "DELETE FROM trip WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
            ).rowcount
            for table in ("reservation", "ended"):
                db.execute(
                    f"DELETE FROM {table} WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
                )
            return n

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _rollback(db: sqlite3.Connection) -> None:
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # nothing to roll back (the failure ended the transaction)


def _totals(db: sqlite3.Connection, key: str) -> tuple[int, int, int, int]:
    row = db.execute(
        "SELECT spent_n, spent_t, res_n, res_t FROM budget WHERE key = ?", (key,)
    ).fetchone()
    return row if row else (0, 0, 0, 0)


def _trip(db: sqlite3.Connection, key: str, now: float) -> Trip | None:
    row = db.execute(
        "SELECT reason, at, until, auto FROM trip WHERE key = ? AND (until IS NULL OR until > ?)",
        (key, now),
    ).fetchone()
    return None if row is None else Trip(key, row[0], row[1], row[2], bool(row[3]))


def _set_trip(db: sqlite3.Connection, t: Trip) -> None:
    db.execute(
        "INSERT OR REPLACE INTO trip VALUES (?, ?, ?, ?, ?)",
        (t.key, t.reason, t.at, t.until, int(t.auto)),
    )


def _holds(db: sqlite3.Connection, rid: str, key: str) -> bool:
    found = db.execute("SELECT 1 FROM reservation WHERE rid = ? AND key = ?", (rid, key))
    return found.fetchone() is not None


def _ended(db: sqlite3.Connection, rid: str, key: str) -> str | None:
    """'s' if `rid` was settled on `key`, 'r' if only released, None if it has not ended."""
    kinds = {
        k for (k,) in db.execute("SELECT kind FROM ended WHERE rid = ? AND key = ?", (rid, key))
    }
    return "s" if "s" in kinds else "r" if kinds else None


def _reclaim(db: sqlite3.Connection, key: str, now: float) -> None:
    """Give back the key's expired reservations (a worker that died mid-call)."""
    _unreserve(db, "key = ? AND expires <= ?", (key, now), key)


def _unreserve(db: sqlite3.Connection, where: str, args: tuple[str | float, ...], key: str) -> None:
    n, t = db.execute(
        f"SELECT COALESCE(SUM(usd_n), 0), COALESCE(SUM(tokens), 0) FROM reservation WHERE {where}",
        args,
    ).fetchone()
    db.execute(f"DELETE FROM reservation WHERE {where}", args)
    if n or t:
        db.execute(
            "UPDATE budget SET res_n = res_n - ?, res_t = res_t - ? WHERE key = ?", (n, t, key)
        )


def _ensure(db: sqlite3.Connection, c: Claim) -> None:
    db.execute("INSERT OR IGNORE INTO budget (key, expire_at) VALUES (?, ?)", (c.key, c.expire_at))
