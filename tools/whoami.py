"""Tells callers who the server thinks they are: handy for checking a token end to end."""

from typing import Any

from app import current_principal, tool


@tool(scopes=["mcp.read"], roles=["mcp.read.all"])
def whoami() -> dict[str, Any]:
    """Return the caller's identity as this server sees it (object id, tenant, client app, scopes, roles)."""
    return current_principal().public_view()
