"""Replicas: `uvicorn app.main:app` processes configured only through the environment, like a real deployment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

from tests.support.entra import EntraStandIn
from tests.support.redis import RedisServer
from tests.support.servers import free_port
from tests.support.values import CLIENT_ID, REPO, REQUEST_STATE_KEY, TENANT, TEST_TOOLS

# The settings sections a replica sets itself: none of them is inherited from the test run's environment.
SECTIONS = (
    "APP_ENV",
    "AZUREAD__",
    "MCP__",
    "TOOLS__",
    "ROUTES__",
    "RATE_LIMIT__",
    "SECURITY__",
    "DEV_ISSUER__",
    "KEYVAULT__",
    "SERVERS__",
)


class Replica:
    """One app process against the Entra stand-in, counting in `redis`; `env` adds or overrides settings."""

    def __init__(self, entra: EntraStandIn, redis: RedisServer, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        values = {k: v for k, v in os.environ.items() if not k.upper().startswith(SECTIONS)}
        values |= {
            "APP_ENV": "production",
            "AZUREAD__INSTANCE": entra.base,
            "AZUREAD__TENANT_ID": TENANT,
            "AZUREAD__CLIENT_ID": CLIENT_ID,
            "MCP__RESOURCE_HOST": self.url,
            "MCP__REQUEST_STATE_KEYS": REQUEST_STATE_KEY,  # one key ring for every replica
            "TOOLS__DIR": str(TEST_TOOLS),
            "TOOLS__LOCK_MODE": "warn",  # the test tools have no tools.lock
            "RATE_LIMIT__STORAGE_URI": redis.uri,
            "PYTHONPATH": str(REPO),
            **env,
        }
        command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(self.port)]
        self.log = log_path.open("w")
        self.process = subprocess.Popen(
            [*command, "--log-level", "warning"],
            cwd=log_path.parent,
            env=values,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 120) -> None:  # a give-up bound: four test workers on two cores are slow
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                if httpx2.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, f"replica did not become ready:\n{self.log_path.read_text()}"
            time.sleep(0.1)

    def log_count(self, text: str) -> int:
        return self.log_path.read_text().count(text)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@contextmanager
def replicas_ready(
    entra: EntraStandIn, redis: RedisServer, logs: Path, count: int = 2, **env: str
) -> Iterator[list[Replica]]:
    """`count` replicas with the same `env`, each ready (`/readyz`), all stopped on the way out."""
    started = [Replica(entra, redis, logs / f"replica-{i}.log", **env) for i in range(count)]
    try:
        for replica in started:
            replica.wait_ready()
        yield started
    finally:
        for replica in started:
            replica.stop()
