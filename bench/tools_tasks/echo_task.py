"""`echo` that may run as a task (MCP Tasks extension), for `bench/tasks.py`: the same body, so a synchronous call and
a task's creation compare on the same tool. It returns at once, so a task ends (and frees its slot) right away."""

from app import tool


@tool(scopes=["mcp.read"], task="optional")
def echo_task(text: str) -> str:
    """Echo the text back (as a task when the client declares the extension)."""
    return text


@tool(scopes=["mcp.read"])
def echo(text: str) -> str:
    """Echo the text back: the call every bench target is checked with before it is measured."""
    return text
