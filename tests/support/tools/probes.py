"""Tools the tests call: each records that it ran."""

import asyncio
from typing import Any

from mcp.types import TextContent

from app import current_principal, tool, untrusted
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


@tool(scopes=["mcp.read"])
async def probe_untrusted(text: str) -> TextContent:
    """Return `text` as untrusted external content."""
    probe.calls.append("untrusted")
    return await untrusted(text, source="https://example.test/page")
