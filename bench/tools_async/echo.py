"""The benchmark's trivial tool as `async def` (`bench/run.py --tool async`): no worker-thread hand-off."""

from app import tool


@tool(scopes=["mcp.read"])
async def echo(text: str) -> str:
    """Echo the text back."""
    return text
