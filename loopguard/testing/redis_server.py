"""Private redis-servers on loopback for tests and benchmarks of the shared ledgers.

    proc, url = start_redis()                    # redis://127.0.0.1:PORT/0, no persistence
    procs, url = start_cluster(tmp_dir)          # redis+cluster://..., 3 masters, no replicas
    ...
    stop(proc)

Needs `redis-server` (and `redis-cli` for a cluster) on PATH and redis-py (the `redis` extra).
A server that does not answer in time raises `RuntimeError`, after stopping what was started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A loopback TCP port nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_redis(
    *extra: str, port: int | None = None, timeout: float = 10.0
) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server on `port` (default: a free one) of 127.0.0.1, without persistence, with
    `extra` command-line options, answering PING; its process and URI."""
    import redis

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
    # A bounded read: whatever else may hold the port must not hang the wait.
    client = redis.Redis.from_url(url, socket_timeout=1)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.ping()
                return proc, url
            except (redis.ConnectionError, redis.TimeoutError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    stop(proc)
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
    finally:
        client.close()


def start_cluster(
    workdir: Path | str, masters: int = 3, timeout: float = 20.0
) -> tuple[list[subprocess.Popen[bytes]], str]:
    """A Redis Cluster of `masters` primaries on free loopback ports (no replicas, no
    persistence; node files in `workdir`), created with `redis-cli --cluster create`; its
    processes and a redis+cluster:// URI once every node says the cluster is ok."""
    import redis

    ports: list[int] = []
    while len(ports) < masters:  # a node also listens on port + 10000 (the cluster bus)
        port = free_port()
        if port < 55_000 and port not in ports and _is_free(port + 10_000):
            ports.append(port)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            options = ("--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf")
            proc, _ = start_redis(*options, "--dir", str(workdir), port=port, timeout=timeout)
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
        deadline = time.monotonic() + timeout
        for port in ports:
            client = redis.Redis(port=port)
            try:
                while client.cluster("info").get("cluster_state") != "ok":
                    if created.returncode != 0 or time.monotonic() > deadline:
                        raise RuntimeError(f"redis cluster did not form: {created.stdout[-500:]}")
                    time.sleep(0.05)
            finally:
                client.close()
    except BaseException:
        for proc in procs:
            stop(proc)
        raise
    return procs, f"redis+cluster://127.0.0.1:{ports[0]}/0"


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started here, even a paused (SIGSTOP) one."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)  # a paused server cannot exit
        proc.terminate()
    proc.wait(timeout=10)
