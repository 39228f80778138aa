"""A ledger that keeps what was spent when its storage is unreachable.

Settlements and releases that fail are queued and replayed, in order, before the next
operation that reaches the storage; so a spend recorded during an outage is added once the
ledger is back. A reservation that fails is not retried (the caller decides: fail closed or
open), but its release is queued: a reserve that timed out on the client may still run on the
server, and must not hold budget until its TTL. Replays are safe because every ledger
operation is idempotent per reservation id (a settle that did reach the storage before its
timeout is not counted again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

from loopguard import _safe
from loopguard.ledger.base import Claim, Ledger, LedgerUnavailable, Reservation

logger = logging.getLogger("loopguard")
MAX_BACKLOG = 100_000
LOG_EVERY = 60.0  # seconds between warnings about one outage


class Resilient:
    """Wraps the process's shared ledger for `uri`, opened on first use (a ledger that cannot
    even be opened is unreachable like any other)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._shown = _safe.uri(uri)  # as logs show it: without its password
        self._ledger: Ledger | None = None
        self._backlog: deque[tuple[str, str, tuple[Claim, ...]]] = deque()
        self._lock = threading.Lock()
        self._next_log = 0.0

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            from loopguard.ledger import shared_ledger

            try:
                self._ledger = shared_ledger(self.uri)
            except (ValueError, ImportError, OSError) as exc:
                # A budget that cannot be checked is handled like an unreachable one (the
                # policy's on_ledger_error), never skipped.
                raise LedgerUnavailable(f"{self.uri}: {exc}") from exc
        return self._ledger

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def reserve(
        self,
        rid: str,
        claims: Sequence[Claim],
        ttl: float,
        now: float | None = None,
        trips: Sequence[str] = (),
    ) -> Reservation:
        try:
            self._flush()
            return self.ledger.reserve(rid, claims, ttl, now, trips)
        except LedgerUnavailable:
            self._keep("release", rid, tuple(claims))
            raise
        except Exception as exc:  # a budget it cannot check is never skipped: caller decides
            raise LedgerUnavailable(f"{self.uri}: {type(exc).__name__}: {exc}") from exc

    def settle(self, rid: str, claims: Sequence[Claim]) -> None:
        self._do("settle", rid, tuple(claims))

    def release(self, rid: str, claims: Sequence[Claim]) -> None:
        self._do("release", rid, tuple(claims))

    def release_later(self, rid: str, claims: Sequence[Claim]) -> None:
        """Queue a release, replayed before the next operation that reaches the storage: no
        I/O now (the guard evicting a run must not wait for a ledger)."""
        self._keep("release", rid, tuple(claims))

    def _do(self, op: str, rid: str, claims: tuple[Claim, ...]) -> None:
        try:
            self._flush()
            getattr(self.ledger, op)(rid, claims)
        except LedgerUnavailable as exc:
            waiting = self._keep(op, rid, claims)
            now = time.monotonic()
            if now >= self._next_log:  # an outage is told once a minute, not once per call
                self._next_log = now + LOG_EVERY
                logger.warning(
                    "loopguard: ledger %s unreachable (%s); %s of %s kept to replay "
                    "(%d waiting; said again at most once a minute)",
                    self._shown,
                    exc,
                    op,
                    rid,
                    waiting,
                )

    def _keep(self, op: str, rid: str, claims: tuple[Claim, ...]) -> int:
        with self._lock:
            if len(self._backlog) >= MAX_BACKLOG:
                dropped = self._backlog.popleft()
                logger.error(
                    "loopguard: ledger %s backlog full; dropped a %s of %s",
                    self._shown,
                    dropped[0],
                    dropped[1],
                )
            self._backlog.append((op, rid, claims))
            return len(self._backlog)

    def flush(self) -> bool:
        """Replay what was kept now (e.g. before a worker exits); True when nothing is left."""
        try:
            self._flush()
        except LedgerUnavailable:
            return False
        return True

    def _flush(self) -> None:
        if not self._backlog:
            return
        with self._lock:
            while self._backlog:
                op, rid, claims = self._backlog[0]
                getattr(self.ledger, op)(rid, claims)  # raises LedgerUnavailable: stays queued
                self._backlog.popleft()
            self._next_log = 0.0
            logger.warning("loopguard: ledger %s reachable again; backlog replayed", self._shown)
