"""loopguard.testing.redis_server: a server that cannot start is an error, not a hang."""

from __future__ import annotations

import socket
import time

import pytest

from loopguard.testing import redis_server
from tests.conftest import require


def test_a_server_that_cannot_take_its_port_is_an_error_not_a_hang() -> None:
    require("redis", binary="redis-server")
    with socket.socket() as taken:  # listens but never answers: a PING to it would wait
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(RuntimeError, match=f"did not start on port {port}"):
            redis_server.start_redis(port=port, timeout=5)
    assert time.monotonic() - started < 10


def test_a_server_started_answers_and_stops() -> None:
    redis = require("redis", binary="redis-server")
    proc, url = redis_server.start_redis()
    try:
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.close()
    finally:
        redis_server.stop(proc)
    assert proc.returncode is not None
