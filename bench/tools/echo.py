"""The benchmark's trivial tool, the same one every compared server serves."""

from app import tool


@tool(scopes=["mcp.read"])
def echo(text: str) -> str:
    """Echo the text back."""
    return text
