"""`python -m app`, the production entry point, as a subprocess against the Entra stand-in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

from tests.support.entra import EntraStandIn
from tests.support.servers import free_port
from tests.support.values import CLIENT_ID, REPO, REQUEST_STATE_KEY, TENANT


@contextmanager
def app_process(entra: EntraStandIn, tmp_path: Path, **env: str) -> Iterator[str]:
    """`python -m app` in production mode against the Entra stand-in; its URL."""
    port = free_port()
    values = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "APP_ENV": "production",
        "LOG_LEVEL": "WARNING",
        "AZUREAD__INSTANCE": entra.base,
        "AZUREAD__TENANT_ID": TENANT,
        "AZUREAD__CLIENT_ID": CLIENT_ID,
        "MCP__RESOURCE_HOST": f"http://127.0.0.1:{port}",
        "MCP__REQUEST_STATE_KEYS": REQUEST_STATE_KEY,
        "TOOLS__DIR": str(REPO / "tests" / "support" / "tools"),
        "TOOLS__LOCK_MODE": "warn",
        "SERVER__PORT": str(port),
        **env,
    }
    log = tmp_path / "app.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=tmp_path, env=values, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a give-up bound; readiness is what is waited on
        while True:
            assert proc.poll() is None, f"app exited: {log.read_text()[-2000:]}"
            try:
                if httpx2.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, f"app did not start: {log.read_text()[-2000:]}"
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_uvicorn(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`uvicorn app.main:app` with only `env`'s app settings (and a free dev-issuer port), run to its exit in `cwd`."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AZUREAD__", "MCP__", "APP_ENV", "TOOLS__", "KEYVAULT__"))
    }
    dev_issuer = {"DEV_ISSUER__PORT": str(free_port())}  # never the default 8001: `make run` may hold it
    return subprocess.run(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", "0"],
        env={**clean, "PYTHONPATH": str(REPO), **dev_issuer, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
