"""Real nginx (config/nginx.test.conf.template) in front of `python -m app` processes, for the tests that put the
server behind it: each app started in production mode against the Entra stand-in, nginx proxying to two of them, and
the official SDK client connecting from another loopback address. An app built in this process (`create_app` on a
real uvicorn, `InProcessApp`) can stand behind nginx too."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread, free_port
from tests.support.values import CLIENT_ID, REPO, SUPPORT, TENANT

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
TEMPLATE = REPO / "config" / "nginx.test.conf.template"
EDGE_TOOLS = SUPPORT / "edge_tools"
HR_TOOLS = SUPPORT / "hr_tools"  # a second server's tools (SERVERS__HR__TOOLS_DIR)
KEY_RING = [secrets.token_urlsafe(32)]


def require_nginx() -> None:
    """Skip the calling test module when nginx is missing (fail it under CI, where .ci/run installs nginx)."""
    if NGINX is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed: .ci/run installs nginx-light", pytrace=False)
        pytest.skip("nginx is not installed (apt-get install nginx-light)", allow_module_level=True)


class Upstream(Protocol):
    """What nginx proxies to: an app on a loopback port."""

    @property
    def port(self) -> int: ...

    def wait_healthy(self) -> object: ...

    def stop(self) -> None: ...


@dataclass
class AppProcess:
    """One `python -m app` in production mode against the Entra stand-in."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 120.0) -> AppProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx2.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"app did not become healthy:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class InProcessApp:
    """An app built in this process (`create_app(Settings(...))`) on a real uvicorn thread, as an nginx upstream."""

    server: ServerThread

    @property
    def port(self) -> int:
        return self.server.port

    def wait_healthy(self) -> InProcessApp:
        return self  # `ServerThread.start` returns once uvicorn has started

    def stop(self) -> None:
        self.server.stop()


def start_app(entra: EntraStandIn, workdir: Path, public: str | None = None, **env: str) -> AppProcess:
    """Settings come only from this environment (cwd is a temp dir, so no stray .env is read)."""
    port = free_port()
    values = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "APP_ENV": "production",
        "LOG_LEVEL": "WARNING",
        "AZUREAD__INSTANCE": entra.base,
        "AZUREAD__TENANT_ID": TENANT,
        "AZUREAD__CLIENT_ID": CLIENT_ID,
        "AZUREAD__JWKS_REFRESH_SECONDS": "1",
        "MCP__RESOURCE_HOST": public or f"http://127.0.0.1:{port}",
        "MCP__REQUEST_STATE_KEYS": ",".join(KEY_RING),
        "TOOLS__DIR": str(EDGE_TOOLS),
        "TOOLS__LOCK_MODE": "warn",  # test tools have no tools.lock
        "SECURITY__TRUSTED_PROXIES": "127.0.0.1/32",
        "SERVER__HOST": "127.0.0.1",
        "SERVER__PORT": str(port),
        **env,
    }
    log = workdir / f"app-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=workdir, env=values, stdout=out, stderr=subprocess.STDOUT
        )
    return AppProcess(proc, port, log)


@contextmanager
def nginx_in_front(workdir: Path, listen: int, apps: Sequence[Upstream]) -> Iterator[str]:
    """The repo's nginx template on `listen`, proxying to two started apps (the same one twice will do); yields its
    public URL, then stops it (the apps too)."""
    public = f"http://127.0.0.1:{listen}"
    nginx: subprocess.Popen[bytes] | None = None
    try:
        for app in apps:
            app.wait_healthy()
        values = {
            "PREFIX": str(workdir),
            "LISTEN_PORT": str(listen),
            "UPSTREAM_1": f"127.0.0.1:{apps[0].port}",
            "UPSTREAM_2": f"127.0.0.1:{apps[1].port}",
        }
        conf = re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: values[m.group(1)], TEMPLATE.read_text())
        (workdir / "nginx.conf").write_text(conf)
        assert NGINX is not None
        prefix, conf_file, error_log = str(workdir), str(workdir / "nginx.conf"), str(workdir / "error.log")
        nginx = subprocess.Popen(
            [NGINX, "-p", prefix, "-e", error_log, "-c", conf_file, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_listening(public, nginx, workdir / "error.log")
        yield public
    finally:
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)  # graceful nginx stop
            try:
                nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()
        for app in apps:
            app.stop()


def wait_listening(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60  # a give-up bound: nginx listens in well under a second
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            httpx2.get(f"{url}/healthz", timeout=1)
            return
        except httpx2.TransportError:
            time.sleep(0.05)
    raise TimeoutError("nginx did not start")


@asynccontextmanager
async def client(
    url: str,
    token: str,
    source: str = "127.0.0.3",
    headers: dict[str, str] | None = None,
    path: str = "/mcp",
    **kw: Any,
) -> AsyncIterator[tuple[Client, list[httpx2.Response]]]:
    """The official SDK client of the MCP server at `path`, connecting from `source`; also yields every HTTP response
    it got."""
    responses: list[httpx2.Response] = []

    async def record(response: httpx2.Response) -> None:
        responses.append(response)

    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
            transport=httpx2.AsyncHTTPTransport(local_address=source),
            event_hooks={"response": [record]},
            timeout=30,
        ) as http,
        Client(streamable_http_client(f"{url}{path}", http_client=http), **kw) as sdk,
    ):
        yield sdk, responses
