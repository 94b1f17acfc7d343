"""Tools the tests call: each records that it ran."""

import asyncio
import threading
import time
from typing import Any

import anyio.from_thread
from mcp.server.mcpserver import Context
from mcp.types import TextContent

from app import current_principal, resource, tool, untrusted
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
async def probe_context(ctx: Context, steps: int = 3) -> str:
    """Use the SDK Context: log at two levels and report progress."""
    await ctx.info("probe info")
    await ctx.warning("probe warning")
    for step in range(steps):
        await ctx.report_progress(step + 1, steps, f"step {step + 1}")
    return "done"


_counter = [0]


@resource("probe://counter", scopes=["mcp.read"], mime_type="text/plain")
def probe_counter() -> str:
    """A value that changes when probe_bump runs."""
    return str(_counter[0])


@resource("probe://secret-plans", scopes=["files.write"], mime_type="text/plain")
def probe_secret_plans() -> str:
    """Readable only with files.write."""
    return "plans"


@tool(scopes=["mcp.read"])
async def probe_bump(ctx: Context) -> int:
    """Change probe://counter and tell subscribers."""
    _counter[0] += 1
    await ctx.notify_resource_updated("probe://counter")
    return _counter[0]


_PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000201"
    "e2a8f1f50000000049454e44ae426082"
)


@tool(scopes=["mcp.read"], structured_output=False)
def probe_rich() -> list[object]:
    """Text, an image, audio and an embedded resource in one result."""
    from mcp.server.mcpserver import Audio, Image
    from mcp_types import EmbeddedResource, TextResourceContents

    embedded = EmbeddedResource(
        type="resource", resource=TextResourceContents(uri="probe://counter", text="7", mime_type="text/plain")
    )
    return ["a caption", Image(data=_PNG_1PX, format="png"), Audio(data=b"RIFF....WAVE", format="wav"), embedded]


@tool(scopes=["mcp.read"])
def probe_fail(reason: str) -> str:
    """Fail the way tools should: a ToolError becomes an isError result."""
    from app import ToolError

    raise ToolError(f"cannot do that: {reason}")


@tool(scopes=["mcp.read"])
def probe_crash(secret: str = "") -> str:
    """Fails unexpectedly, so the call answers `isError: true` (HTTP 200)."""
    probe.calls.append("crash")
    raise ValueError("probe failure")


@tool(scopes=["mcp.read"], audit_arguments=True)
def probe_audited(ticket: str = "") -> str:
    """Opts in to raw arguments in the audit log."""
    probe.calls.append(f"audited:{ticket}")
    return "audited ok"


@tool(scopes=["mcp.read"])
async def probe_untrusted(text: str) -> TextContent:
    """Return `text` as untrusted external content."""
    probe.calls.append("untrusted")
    return await untrusted(text, source="https://example.test/page")


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
def probe_thread(seconds: float = 0.0) -> dict[str, Any]:
    """A sync tool reporting where it ran: its thread, whether anyio.from_thread reaches the loop, its caller."""
    time.sleep(seconds)
    loop_thread = anyio.from_thread.run_sync(threading.get_ident)
    return {
        "thread": threading.current_thread().name,
        "loop_reached": loop_thread != threading.get_ident(),
        "caller": current_principal().oid,
    }


@tool(scopes=["mcp.read"])
def probe_big(size: int = 100) -> str:
    """A result of `size` characters: for the result size cap."""
    return "x" * size
