"""Tells callers who the server thinks they are: handy for checking a token end to end."""

from typing import Any

from app import Caller, tool


@tool(scopes=["mcp.read"], roles=["mcp.read.all"])
def whoami(caller: Caller) -> dict[str, Any]:
    """Return the caller's identity as this server sees it (object id, tenant, client app, scopes, roles)."""
    # `caller` is filled in by the framework; it is not a tool argument (absent from the input schema).
    return caller.public_view()
