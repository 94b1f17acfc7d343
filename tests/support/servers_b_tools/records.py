"""The tools of a second MCP server of one app (`SERVERS__B__*`): names and a scope the first server does not have."""

from typing import Any

from app import Caller, tool


@tool(scopes=["records.read"])
def b_records(caller: Caller) -> dict[str, Any]:
    """Server B's own tool: says it is B's, and who called (as B sees the caller)."""
    return {"server": "b", **caller.public_view()}


@tool(scopes=["records.write"])
def b_file_record(title: str) -> str:
    """Needs B's records.write scope."""
    return f"filed {title}"
