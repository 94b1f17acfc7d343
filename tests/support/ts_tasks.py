"""The TypeScript SDK's Tasks client against a served app: tests/support/ts_tasks_client.mjs, run with Node 22, the
SDK v2 client (`@modelcontextprotocol/client`) and the extension's package (`@modelcontextprotocol/ext-tasks`) from
npm, where .ci/run installs them (.ci/.node; MCP_NODE_MODULES / MCP_NODE say otherwise). Without them the tests that
need them are skipped, saying why; under CI (`CI` set) that is a failure instead."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.oauth import NODE, NODE_DIR

NODE_MODULES = Path(os.environ.get("MCP_NODE_MODULES") or NODE_DIR)
PACKAGES = ("@modelcontextprotocol/client", "@modelcontextprotocol/ext-tasks")
TS_TASKS_CLIENT = Path(__file__).resolve().parent / "ts_tasks_client.mjs"
GIVE_UP_SECONDS = 90  # bounds a broken run (the script gives up itself after 60 s); never a timing assertion


def require_ts_tasks() -> None:
    """Skip (fail under CI) unless Node and both npm packages are installed."""
    missing = [name for name in PACKAGES if not (NODE_MODULES / name / "package.json").is_file()]
    if not os.access(NODE, os.X_OK):
        missing.insert(0, "Node 22")
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed at {NODE_MODULES}: `bash .ci/run` installs them"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


async def run_ts_tasks(url: str, token: str, scenario: str, *args: str) -> dict[str, Any]:
    """One scenario of ts_tasks_client.mjs against the MCP endpoint `url`: the JSON line it printed."""
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(TS_TASKS_CLIENT),
        url,
        token,
        scenario,
        *args,
        env={**os.environ, "MCP_NODE_MODULES": str(NODE_MODULES)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), GIVE_UP_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, f"the TypeScript client failed ({process.returncode}): {err.decode()}"
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]
