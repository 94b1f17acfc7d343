"""Interop with the reference client: the MCP Inspector CLI lists and calls tools through our auth.

`.ci/run` installs it (Node 22 + @modelcontextprotocol/inspector from npm) into .ci/.node and sets MCP_INSPECTOR;
without MCP_INSPECTOR the tests use that install when there is one, and are skipped (saying why) when not.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable

import pytest

from tests.support.servers import ServerThread
from tests.support.values import REPO

INSPECTOR = os.environ.get("MCP_INSPECTOR") or str(REPO / ".ci" / ".node" / "node_modules" / ".bin" / "mcp-inspector")
pytestmark = pytest.mark.skipif(
    not os.path.exists(INSPECTOR),
    reason=f"the MCP Inspector is not installed at {INSPECTOR}: `bash .ci/run` installs it there from npm (or set "
    "MCP_INSPECTOR to one)",
)


def _inspector(url: str, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    command = [INSPECTOR, "--cli", f"{url}/mcp", "--transport", "http", *args]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    env = {**os.environ, "PATH": f"{os.path.dirname(INSPECTOR)}:{os.environ['PATH']}"}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)


def test_inspector_lists_and_calls_tools(app_server: ServerThread, token: Callable[..., str]) -> None:
    listed = _inspector(app_server.url, token("mcp.read"), "--method", "tools/list")
    assert listed.returncode == 0, listed.stderr
    names = {tool["name"] for tool in json.loads(listed.stdout)["tools"]}
    assert "probe_read" in names and "probe_write" not in names
    called = _inspector(
        app_server.url,
        token("mcp.read"),
        "--method",
        "tools/call",
        "--tool-name",
        "nested_echo",
        "--tool-arg",
        "text=interop",
    )
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["structuredContent"] == {"result": "interop"}


def test_inspector_without_a_token_is_refused(app_server: ServerThread) -> None:
    refused = _inspector(app_server.url, None, "--method", "tools/list")
    assert refused.returncode != 0
