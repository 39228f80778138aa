"""Fixtures that start the real thing: a redis-server on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_redis(*extra: str, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """A private redis-server on a free loopback port (no persistence), answering PING."""
    redis = require("redis", binary="redis-server")
    port = port or free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    client.close()
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)  # a paused server cannot exit
        proc.terminate()
    proc.wait(timeout=10)


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


def start_cluster(workdir: Path, masters: int = 3) -> tuple[list[subprocess.Popen], str]:
    """A Redis Cluster of `masters` primaries on free loopback ports (no replicas, no
    persistence), created with redis-cli --cluster create; returns its processes and a
    redis+cluster:// URI."""
    redis = require("redis", binary="redis-cli")
    ports: list[int] = []
    while len(ports) < masters:  # a node also listens on port + 10000 (the cluster bus)
        port = free_port()
        if port < 55_000 and port not in ports and _is_free(port + 10_000):
            ports.append(port)
    procs = []
    for port in ports:
        proc, _ = start_redis(
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            f"nodes-{port}.conf",
            "--dir",
            str(workdir),
            port=port,
        )
        procs.append(proc)
    created = subprocess.run(
        [
            "redis-cli",
            "--cluster",
            "create",
            *(f"127.0.0.1:{p}" for p in ports),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    deadline = time.monotonic() + 20
    for port in ports:
        client = redis.Redis(port=port)
        while client.cluster("info").get("cluster_state") != "ok":
            if created.returncode != 0 or time.monotonic() > deadline:
                for p in procs:
                    stop(p)
                pytest.fail(f"redis cluster did not form: {created.stdout[-500:]}")
            time.sleep(0.05)
        client.close()
    return procs, f"redis+cluster://127.0.0.1:{ports[0]}/0"


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private 3-master Redis Cluster for the session, stopped at the end."""
    procs, url = start_cluster(tmp_path_factory.mktemp("cluster"))
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
