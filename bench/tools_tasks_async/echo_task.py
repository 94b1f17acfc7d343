"""`async def echo_task` for `bench/tasks.py --tool async`: no worker-thread hand-off, in a task or not."""

from app import tool


@tool(scopes=["mcp.read"], task="optional")
async def echo_task(text: str) -> str:
    """Echo the text back (as a task when the client declares the extension)."""
    return text


@tool(scopes=["mcp.read"])
async def echo(text: str) -> str:
    """Echo the text back: the call every bench target is checked with before it is measured."""
    return text
