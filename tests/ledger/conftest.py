"""Fixtures that start the real thing: a redis-server on a free loopback port."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopguard.testing import redis_server
from loopguard.testing.redis_server import free_port, stop
from tests.conftest import require

__all__ = ["free_port", "start_redis", "stop"]  # the other test packages use them too


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    """A private redis-server on a free loopback port (no persistence), answering PING."""
    require("redis", binary="redis-server")
    try:
        return redis_server.start_redis()
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server for the session, stopped at the end."""
    proc, url = start_redis()
    try:
        yield url
    finally:
        stop(proc)


@pytest.fixture
def own_redis() -> Iterator[tuple[subprocess.Popen, str]]:
    """A redis-server for one test, which may pause (SIGSTOP) or kill it."""
    proc, url = start_redis()
    try:
        yield proc, url
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private 3-master Redis Cluster for the session, stopped at the end."""
    require("redis", binary="redis-server")
    require(binary="redis-cli")
    try:
        procs, url = redis_server.start_cluster(tmp_path_factory.mktemp("cluster"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url
    finally:
        for proc in procs:
            stop(proc)


@pytest.fixture(params=["memory", "sqlite", "redis", "cluster"])
def ledger_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex}"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    return request.getfixturevalue(f"{request.param}_url")
