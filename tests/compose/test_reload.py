"""`make dev` (`python -m app --reload`), for real: a tool added to the tools folder is served without a restart,
while the dev issuer stays up in its own process (a token minted before the reload still works after it, and the
issuer's process is the same); `python -m app.devissuer token` in a shell whose DEV_ISSUER__PORT differs mints for
the running issuer and says so; stopping the server stops the issuer and removes its record."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.calls import mcp_client
from tests.support.servers import free_port, wait_ready
from tests.support.values import REPO

pytestmark = pytest.mark.slow  # a reloading server and an issuer as subprocesses

TOOL = '''from app import tool


@tool(scopes=["mcp.read"])
def {name}() -> str:
    """{name}"""
    return "{name}"
'''


def _env(tmp_path: Path, port: int, issuer_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREAD__", "MCP__", "APP_ENV", "TOOLS__"))}
    return env | {
        "APP_ENV": "development",
        "PYTHONPATH": str(REPO),
        "SERVER__PORT": str(port),
        "DEV_ISSUER__PORT": str(issuer_port),
        "DEV_ISSUER__KEY_DIR": str(tmp_path / ".dev"),
        "TOOLS__DIR": str(tmp_path / "tools"),
        "TOOLS__LOCK_MODE": "off",
        "ROUTES__DIR": str(tmp_path / "routes"),
    }


def _token(env: dict[str, str], cwd: Path) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "app.devissuer", "token", "--scopes", "mcp.read"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip(), done.stderr


async def _names(url: str, token: str) -> set[str]:
    async with mcp_client(url, token) as client:
        return {tool.name for tool in (await client.list_tools()).tools}


async def test_a_new_tool_is_served_without_a_restart_and_the_dev_issuer_stays_up(tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "routes").mkdir()
    (tmp_path / "tools" / "first.py").write_text(TOOL.format(name="first"))
    port, issuer_port = free_port(), free_port()
    env = _env(tmp_path, port, issuer_port)
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "--reload"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url, record = f"http://127.0.0.1:{port}", tmp_path / ".dev" / f"issuer-{issuer_port}.json"
    try:
        await wait_ready(url, server)
        issuer_pid = json.loads(record.read_text())["pid"]
        # A shell that never saw this DEV_ISSUER__PORT: the token is still for the issuer the server trusts.
        token, said = _token(env | {"DEV_ISSUER__PORT": str(free_port())}, tmp_path)
        assert f"token for the running dev issuer at http://127.0.0.1:{issuer_port}/" in said
        assert await _names(url, token) >= {"first"} and "second" not in await _names(url, token)

        (tmp_path / "tools" / "second.py").write_text(TOOL.format(name="second"))
        deadline, last_error = time.monotonic() + 90, None  # a give-up bound: a reload is seconds, more if loaded
        while True:
            try:
                if "second" in await _names(url, token):
                    break
            except Exception as exc:  # mid-restart, the port is briefly closed: try again
                last_error = exc
            assert time.monotonic() < deadline, f"the new tool was not served within 90 s ({last_error!r})"
            await asyncio.sleep(0.5)
        assert json.loads(record.read_text())["pid"] == issuer_pid  # the same issuer process: it stayed up
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert "reloading" in output.lower() and "second.py" in output
    assert "tools and routes are read at startup" not in output  # that hint is for `make run`, which does not reload
    assert not record.exists()  # the issuer stopped with the server and removed its record
    with pytest.raises(ProcessLookupError):
        os.kill(issuer_pid, 0)
    assert token not in output


def test_reload_is_refused_in_production(tmp_path: Path) -> None:
    env = _env(tmp_path, free_port(), free_port()) | {"APP_ENV": "production", "TOOLS__LOCK_MODE": "warn"}
    env |= {"AZUREAD__TENANT_ID": "contoso.onmicrosoft.com", "AZUREAD__CLIENT_ID": "api-client"}
    env |= {"MCP__RESOURCE_HOST": "https://mcp.contoso.com"}
    done = subprocess.run(
        [sys.executable, "-m", "app", "--reload"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "--reload (make dev) is for development only" in done.stderr
    assert "Traceback" not in done.stderr
