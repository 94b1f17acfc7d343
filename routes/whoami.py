"""`GET /api/whoami`: the caller's identity as this server sees it, for callers that do not speak MCP."""

from typing import Any

from fastapi import APIRouter

from app import Caller, requires

router = APIRouter(prefix="/api", tags=["identity"])


# Users need the `mcp.read` scope, app-only callers the `mcp.read.all` role: as for the `whoami` tool.
@router.get("/whoami", dependencies=[requires(scopes=["mcp.read"], roles=["mcp.read.all"])])
async def whoami(caller: Caller) -> dict[str, Any]:
    """The caller's object id, tenant, client app, scopes and roles (never the token)."""
    return caller.public_view()
