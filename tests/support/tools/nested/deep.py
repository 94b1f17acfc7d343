"""A tool in a subpackage, to show discovery walks subpackages."""

from app import tool


@tool(scopes=["mcp.read"])
def nested_echo(text: str) -> str:
    """Echo text back."""
    return text
