"""The newcomer path, for real: `make run`, then `make token`, then `tools/list` with that token; and several workers
sharing a standalone dev issuer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.calls import mcp_client
from tests.support.servers import free_port, wait_ready
from tests.support.values import REPO

pytestmark = pytest.mark.slow  # real make, servers and dev issuers as subprocesses


@pytest.mark.skipif(not (REPO / "Makefile").exists(), reason="needs the repo's Makefile")
async def test_make_run_then_make_token_then_tools_list() -> None:
    port, issuer_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREAD__", "MCP__", "APP_ENV", "TOOLS__"))}
    env |= {"PORT": str(port), "DEV_ISSUER__PORT": str(issuer_port)}
    server = subprocess.Popen(
        ["make", "-s", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}", server, timeout=120)
        minted = subprocess.run(
            ["make", "-s", "token", "SCOPES=mcp.read notes.read"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        token = minted.stdout.strip()
        assert token.count(".") == 2  # stdout is the token alone; which issuer minted it is said on stderr
        assert f"token for the running dev issuer at http://127.0.0.1:{issuer_port}/" in minted.stderr
        async with mcp_client(f"http://127.0.0.1:{port}", token) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            who = await client.call_tool("whoami", {})
        assert {"whoami", "search_notes"} <= names
        assert "create_note" not in names  # the token lacks notes.write, so the list hides it
        assert who.structured_content is not None and who.structured_content["name"] == "Dev User"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert "inspector" in output and "$(make -s token)" in output  # the ready-to-paste command, without a token
    assert token not in output


async def test_several_workers_share_a_standalone_dev_issuer(tmp_path: Path) -> None:
    port, issuer_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREAD__", "MCP__", "APP_ENV", "TOOLS__"))}
    env |= {
        "APP_ENV": "development",
        "DEV_ISSUER__PORT": str(issuer_port),
        "DEV_ISSUER__KEY_DIR": str(tmp_path / ".dev"),
        "PYTHONPATH": str(REPO),
        "DEV_ISSUER__EMBEDDED": "false",
        "SERVER__PORT": str(port),
        "SERVER__WORKERS": "2",
        "MCP__STATELESS": "true",  # sessions live in one worker: two workers need stateless mode
        "LOG_LEVEL": "WARNING",
    }
    issuer = subprocess.Popen(
        [sys.executable, "-m", "app.devissuer", "serve"], cwd=tmp_path, env=env, start_new_session=True
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}", server)
        token = subprocess.run(
            [sys.executable, "-m", "app.devissuer", "token", "--scopes", "mcp.read"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        for _ in range(4):  # connections spread over both workers; each validates against the shared issuer
            async with mcp_client(f"http://127.0.0.1:{port}", token) as client:
                assert "whoami" in {t.name for t in (await client.list_tools()).tools}
    finally:
        for process in (server, issuer):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
