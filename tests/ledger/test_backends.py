"""The ledger contract, the same on every backend (memory, sqlite, redis)."""

from __future__ import annotations

import time
import uuid

import pytest

from loopguard.ledger import Claim, open_ledger, usd_to_nano
from loopguard.ledger.base import ENDED_KEEP, TRIP_PREFIX, Ledger, trip_key_of


@pytest.fixture
def ledger(ledger_uri: str) -> Ledger:
    led = open_ledger(ledger_uri)
    led.reset(_PREFIX)
    yield led
    led.reset(_PREFIX)
    led.close()


_PREFIX = "test:"


def key(name: str) -> str:
    return f"{_PREFIX}{name}"


def rid() -> str:
    return uuid.uuid4().hex


def usage_of(ledger: Ledger, name: str):
    (u,) = ledger.usage([key(name)])
    return u


def test_reserve_settle_release(ledger: Ledger) -> None:
    a = Claim(key("a"), usd_to_nano(0.4), 100, max_usd_n=usd_to_nano(1.0))
    r1, r2 = rid(), rid()
    assert ledger.reserve(r1, [a], ttl=60).ok
    assert ledger.reserve(r2, [a], ttl=60).ok
    u = usage_of(ledger, "a")
    assert (u.reserved_usd_n, u.reserved_tokens, u.reservations) == (usd_to_nano(0.8), 200, 2)
    # a third 0.4 would make 1.2 > 1.0
    denied = ledger.reserve(rid(), [a], ttl=60).denied
    assert denied is not None and denied.key == key("a")
    assert denied.reserved_usd_n == usd_to_nano(0.8)
    ledger.settle(r1, [Claim(key("a"), usd_to_nano(0.25), 80)])
    ledger.release(r2, [a])
    u = usage_of(ledger, "a")
    assert (u.spent_usd_n, u.spent_tokens, u.reserved_usd_n, u.reservations) == (
        usd_to_nano(0.25),
        80,
        0,
        0,
    )


def test_a_reservation_reports_each_keys_total(ledger: Ledger) -> None:
    ledger.settle(rid(), [Claim(key("u:a"), 100, 10)])
    a, b = Claim(key("u:a"), 5, 1, max_usd_n=1000), Claim(key("u:b"), 7, 2, max_tokens=1000)
    assert ledger.reserve(rid(), [a, b], ttl=60).used == ((105, 11), (7, 2))
    assert ledger.reserve(rid(), [a, b], ttl=60).used == ((110, 12), (14, 4))


def test_all_or_none_across_keys(ledger: Ledger) -> None:
    roomy = Claim(key("roomy"), 10, 0, max_usd_n=1000)
    tight = Claim(key("tight"), 10, 0, max_usd_n=5)
    denied = ledger.reserve(rid(), [roomy, tight], ttl=60).denied
    assert denied is not None and denied.key == key("tight")
    assert usage_of(ledger, "roomy").reserved_usd_n == 0  # nothing held on the other key


def test_token_limit(ledger: Ledger) -> None:
    c = Claim(key("t"), 0, 600, max_tokens=1000)
    assert ledger.reserve(rid(), [c], ttl=60).ok
    assert not ledger.reserve(rid(), [c], ttl=60).ok


def test_expired_reservation_is_reclaimed(ledger: Ledger) -> None:
    c = Claim(key("ttl"), 10, 0, max_usd_n=10)
    now = time.time()
    assert ledger.reserve(rid(), [c], ttl=30, now=now).ok
    assert not ledger.reserve(rid(), [c], ttl=30, now=now + 1).ok
    assert ledger.reserve(rid(), [c], ttl=30, now=now + 31).ok  # the first one expired


def test_settle_after_expiry_still_counts(ledger: Ledger) -> None:
    c = Claim(key("late"), 10, 1, max_usd_n=100)
    r = rid()
    now = time.time()
    assert ledger.reserve(r, [c], ttl=1, now=now - 10).ok  # long expired
    ledger.settle(r, [Claim(key("late"), 7, 1)])
    u = usage_of(ledger, "late")
    assert (u.spent_usd_n, u.reserved_usd_n) == (7, 0)


def test_usage_by_prefix_and_reset(ledger: Ledger) -> None:
    ledger.settle(rid(), [Claim(key("p:1"), 5, 1), Claim(key("p:2"), 6, 2)])
    ledger.settle(rid(), [Claim(key("q:1"), 7, 3)])
    found = {u.key: u.spent_usd_n for u in ledger.usage(prefix=key("p:"))}
    assert found == {key("p:1"): 5, key("p:2"): 6}
    assert ledger.reset(key("p:")) == 2
    assert ledger.usage(prefix=key("p:")) == []
    assert usage_of(ledger, "q:1").spent_usd_n == 7


def test_large_amounts_stay_exact(ledger: Ledger) -> None:
    # $5M in nano-USD is 5e15: beyond Lua's %.14g formatting, within doubles' exact range
    big = usd_to_nano(5_000_000)
    c = Claim(key("big"), big, 0, max_usd_n=big + 1)
    r = rid()
    assert ledger.reserve(r, [c], ttl=60).ok
    ledger.settle(r, [Claim(key("big"), big - 3, 0)])
    u = usage_of(ledger, "big")
    assert (u.spent_usd_n, u.reserved_usd_n) == (big - 3, 0)


def test_unknown_scheme_names_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="memory://, sqlite://, redis://, rediss://"):
        open_ledger("mongodb://localhost")


def test_redis_reservation_is_one_evalsha(redis_url: str) -> None:
    ledger = open_ledger(redis_url)
    claims = [Claim(key("one:a"), 1, 1, max_usd_n=100), Claim(key("one:b"), 1, 1, max_tokens=100)]
    ledger.reserve(rid(), claims, ttl=60)  # loads the script (NOSCRIPT, then SCRIPT LOAD)
    client = ledger._client
    sent: list[str] = []
    real = client.execute_command

    def counting(*args, **kwargs):
        sent.append(str(args[0]).upper())
        return real(*args, **kwargs)

    client.execute_command = counting
    for _ in range(10):
        assert ledger.reserve(rid(), claims, ttl=60).ok
    assert sent == ["EVALSHA"] * 10  # one round trip per reservation, whatever the key count
    ledger.reset(key("one:"))


# --- idempotent per reservation id: what makes a replay after a timeout safe -------------------


def test_a_settle_replayed_is_counted_once(ledger: Ledger) -> None:
    c = Claim(key("once"), 10, 2, max_usd_n=100)
    r = rid()
    assert ledger.reserve(r, [c], ttl=60).ok
    ledger.settle(r, [Claim(key("once"), 7, 1)])
    ledger.settle(r, [Claim(key("once"), 7, 1)])
    ledger.release(r, [c])  # a late release of a settled call changes nothing either
    u = usage_of(ledger, "once")
    assert (u.spent_usd_n, u.spent_tokens, u.reserved_usd_n, u.reservations) == (7, 1, 0, 0)


def test_a_settle_without_reservation_replayed_is_counted_once(ledger: Ledger) -> None:
    r = rid()
    for _ in range(3):
        ledger.settle(r, [Claim(key("bare"), 5, 1)])
    assert usage_of(ledger, "bare").spent_usd_n == 5


def test_a_reserve_arriving_after_its_release_holds_nothing(ledger: Ledger) -> None:
    c = Claim(key("late-res"), 10, 1, max_usd_n=100)
    r = rid()
    ledger.release(r, [c])  # the client gave up on the reserve and released it
    assert ledger.reserve(r, [c], ttl=60).ok  # the reserve itself reaches the storage later
    u = usage_of(ledger, "late-res")
    assert (u.reserved_usd_n, u.reservations) == (0, 0)


def test_a_settle_after_a_release_still_counts(ledger: Ledger) -> None:
    # on_ledger_error = "open": the reserve timed out (released), the call went out on the
    # local fallback budget and was paid; its spend reaches the ledger under the same id
    c = Claim(key("paid"), 10, 1, max_usd_n=100)
    r = rid()
    assert ledger.reserve(r, [c], ttl=60).ok
    ledger.release(r, [c])
    ledger.settle(r, [Claim(key("paid"), 6, 1)])
    ledger.settle(r, [Claim(key("paid"), 6, 1)])
    u = usage_of(ledger, "paid")
    assert (u.spent_usd_n, u.reserved_usd_n) == (6, 0)


def test_a_reserve_replayed_holds_once(ledger: Ledger) -> None:
    c = Claim(key("twice"), 10, 1, max_usd_n=15)
    r = rid()
    assert ledger.reserve(r, [c], ttl=60).ok
    assert ledger.reserve(r, [c], ttl=60).ok  # already held: not checked against the cap again
    u = usage_of(ledger, "twice")
    assert (u.reserved_usd_n, u.reservations) == (10, 1)


def test_an_ended_reservation_is_forgotten_after_a_while(ledger: Ledger) -> None:
    r = rid()
    now = time.time()
    ledger.settle(r, [Claim(key("old"), 5, 1)], now=now - ENDED_KEEP - 10)
    ledger.settle(rid(), [Claim(key("old"), 1, 0)], now=now)  # prunes what is past keeping
    ledger.settle(r, [Claim(key("old"), 5, 1)], now=now)
    assert usage_of(ledger, "old").spent_usd_n == 11


# --- trips: a kill switch checked in the reservation itself ----------------------------------


def test_a_trip_refuses_reservations_that_name_it(ledger: Ledger) -> None:
    trip = f"{TRIP_PREFIX}test:{rid()}"
    c = Claim(key("tripped"), 1, 1, max_usd_n=100)
    ledger.trip(trip, "stop it")
    try:
        found = ledger.reserve(rid(), [c], ttl=60, trips=[trip]).tripped
        assert found is not None and (found.key, found.reason, found.auto) == (
            trip,
            "stop it",
            False,
        )
        assert usage_of(ledger, "tripped").reservations == 0  # nothing held
        assert ledger.reserve(rid(), [c], ttl=60).ok  # a call that does not name it goes on
        assert trip in [t.key for t in ledger.trips()]
    finally:
        assert ledger.untrip(trip)
    assert not ledger.untrip(trip)
    assert ledger.reserve(rid(), [c], ttl=60, trips=[trip]).ok


def test_a_trip_lifts_by_itself_when_its_time_is_up(ledger: Ledger) -> None:
    trip = f"{TRIP_PREFIX}test:{rid()}"
    ledger.trip(trip, "for a moment", until=time.time() - 1)
    assert ledger.reserve(rid(), [Claim(key("lifted"), 1, 1)], ttl=60, trips=[trip]).ok
    assert trip not in [t.key for t in ledger.trips()]


def test_an_exhausted_budget_trips_itself_when_asked(ledger: Ledger) -> None:
    until = time.time() + 3600
    c = Claim(key("auto"), 10, 0, max_usd_n=15, trip_until=until)
    assert ledger.reserve(rid(), [c], ttl=60).ok
    assert ledger.reserve(rid(), [c], ttl=60).denied is not None  # exhausted: trips the key
    small = Claim(key("auto"), 1, 0, max_usd_n=15)
    found = ledger.reserve(rid(), [small], ttl=60).tripped  # fits, but the budget is shut
    assert found is not None and found.auto and found.key == trip_key_of(key("auto"))
    assert found.until == pytest.approx(until, abs=1)
    ledger.untrip(found.key)  # resettable
    assert ledger.reserve(rid(), [small], ttl=60).ok
