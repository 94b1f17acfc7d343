"""A protected prompt and resource template with completers that record when they run: for authorization tests."""

import asyncio

from app import completion, prompt, resource, tool
from tests.support import probe


@tool(scopes=["mcp.read"])
def open_read() -> str:
    """Anyone with mcp.read."""
    return "ok"


@tool(scopes=["mcp.read"])
async def slow_read() -> str:
    """Takes a fifth of a second: for concurrency caps."""
    await asyncio.sleep(0.2)
    return "slow ok"


@tool(scopes=["files.write"])
def guarded_write() -> str:
    """Needs files.write."""
    probe.calls.append("guarded_write")
    return "written"


@prompt(scopes=["files.write"])
def guarded_prompt(topic: str) -> str:
    """A prompt only files.write callers may use."""
    return f"plans about {topic}"


@completion("guarded_prompt")
def complete_guarded_prompt(argument: str, value: str, context: dict[str, str]) -> list[str]:
    probe.calls.append("complete:guarded_prompt")
    return ["secret-topic-1", "secret-topic-2"]


@resource("guarded://items/{item}", scopes=["files.write"], mime_type="text/plain")
def guarded_item(item: str) -> str:
    """An item only files.write callers may read."""
    return f"item {item}"


@completion("guarded://items/{item}")
def complete_guarded_item(argument: str, value: str, context: dict[str, str]) -> list[str]:
    probe.calls.append("complete:guarded_item")
    return ["secret-item"]


@resource("open://status", scopes=["mcp.read"], mime_type="text/plain")
def open_status() -> str:
    """Readable with mcp.read."""
    return "fine"
