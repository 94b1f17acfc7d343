"""Tools for the reverse-proxy tests: what the request looked like, a streamed progress call, a two-round call."""

import asyncio
import os
from typing import Any

from mcp.server.mcpserver import Context
from mcp_types import InputRequiredResult

from app import tool


@tool(scopes=["mcp.read"])
def edge_seen(ctx: Context) -> dict[str, Any]:
    """The client address, scheme and Host this process saw, after forwarded-header handling."""
    request: Any = ctx.request_context.request
    return {
        "client": request.client.host if request.client else None,
        "scheme": request.url.scheme,
        "host": request.headers.get("host"),
        "pid": os.getpid(),
    }


@tool(scopes=["mcp.read"])
async def edge_progress(ctx: Context, pause: float = 1.0) -> str:
    """Report progress, wait `pause` seconds, then answer: the progress must reach the client before the result."""
    await ctx.report_progress(1, 2, "half way")
    await asyncio.sleep(pause)
    return "done"


@tool(scopes=["mcp.read"])
async def edge_sleep(ctx: Context, seconds: float = 2.0) -> str:
    """An in-flight call for the graceful-shutdown test: progress says it is running, then it sleeps."""
    await ctx.report_progress(0, seconds, "running")
    await asyncio.sleep(seconds)
    return f"slept {seconds} in {os.getpid()}"


@tool(scopes=["mcp.read"])
async def edge_two_rounds(ctx: Context) -> str | InputRequiredResult:
    """Round one hands out a requestState naming this process; round two says who sealed it and who resumed it."""
    if ctx.request_state is None:
        return InputRequiredResult(request_state=f"sealed-by-{os.getpid()}")
    return f"{ctx.request_state} resumed-by-{os.getpid()}"
