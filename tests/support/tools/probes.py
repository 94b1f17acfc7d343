"""Tools the tests call: each records that it ran."""

import asyncio
import time
from typing import Any

from app import current_principal, tool
from tests.support import probe


@tool(scopes=["mcp.read"])
def probe_read(note: str = "") -> str:
    """Record a read call."""
    probe.calls.append(f"read:{note}")
    return "read ok"


@tool(scopes=["files.write"])
def probe_write(note: str = "") -> str:
    """Record a call that needs the files.write scope."""
    probe.calls.append(f"write:{note}")
    return "write ok"


@tool(roles=["Jobs.Run"])
def probe_app_job() -> str:
    """Only app callers with the Jobs.Run role may use this."""
    probe.calls.append("app_job")
    return "job ok"


@tool(scopes=["mcp.read"])
def probe_whoami() -> dict[str, Any]:
    """The caller's identity."""
    return current_principal().public_view()


@tool(scopes=["mcp.read"])
async def probe_sleep(seconds: float = 1.0) -> str:
    """Sleep, then answer: for shutdown, timeout and concurrency tests."""
    await asyncio.sleep(seconds)
    probe.calls.append(f"slept:{seconds}")
    return f"slept {seconds}"


@tool(scopes=["mcp.read"], rate="3/minute")
def probe_limited() -> str:
    """A tool with its own per-caller rate limit, tighter than the global one."""
    return "limited ok"


@tool(scopes=["mcp.read"], timeout=0.5)
async def probe_patient(seconds: float = 5.0) -> str:
    """A slow tool with its own short timeout; records only if it was not cancelled."""
    await asyncio.sleep(seconds)
    probe.calls.append(f"patient:{seconds}")
    return "finished"


@tool(scopes=["mcp.read"], timeout=0.5)
def probe_blocking(seconds: float = 2.0) -> str:
    """A sync tool (it runs on a worker thread, which cannot be interrupted) with a short timeout."""
    time.sleep(seconds)
    return "finished"


@tool(scopes=["mcp.read"])
def probe_big(size: int = 100) -> str:
    """A result of `size` characters: for the result size cap."""
    return "x" * size
