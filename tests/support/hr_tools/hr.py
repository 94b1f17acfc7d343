"""The tools of a second MCP server (`SERVERS__HR__*`), for the tests that serve several from one app: names and a
scope of its own, so a caller can tell which server answered."""

from typing import Any

from mcp.server.mcpserver import Context

from app import tool


@tool(scopes=["hr.read"])
def hr_headcount(ctx: Context, team: str) -> dict[str, Any]:
    """How many people a team has (a fixed answer), and the Host this server saw after forwarded-header handling."""
    request: Any = ctx.request_context.request
    return {"server": "hr", "team": team, "headcount": 7, "host": request.headers.get("host")}
