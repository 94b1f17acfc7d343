"""Tools for local mode over stdio: who the caller is, a scope the test user is not granted, a downstream token, and
a tool that prints to stdout (which must never reach the protocol stream)."""

from typing import Annotated, Any

import jwt

from app import Downstream, Principal, downstream_token, prompt, tool

# The test sets AZUREAD__APP_ID_URI=api://{client_id}; the dev server's client id is fixed.
READ_SCOPE = "api://11111111-1111-4111-8111-111111111111/mcp.read"


@tool(scopes=["mcp.read"])
def local_whoami(caller: Principal) -> dict[str, Any]:
    """The caller as the server sees it."""
    return caller.public_view()


@tool(scopes=["mcp.admin"])
def local_admin() -> str:
    """Needs mcp.admin, which the test user is not granted."""
    return "administered"


@tool(scopes=["mcp.read"])
def local_noisy() -> str:
    """Prints to stdout, as careless tool code does."""
    print("noise from a tool on stdout")
    return "printed"


def _shape(token: str) -> dict[str, Any]:
    """What a downstream token is for, never the token itself."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return {"aud": claims.get("aud"), "scp": claims.get("scp"), "oid": claims.get("oid")}


@tool(scopes=["mcp.read"])
def local_downstream(token: Annotated[str, Downstream(scopes=[READ_SCOPE])]) -> dict[str, Any]:
    """An injected downstream token's audience and scopes."""
    return _shape(token)


@tool(scopes=["mcp.read"])
async def local_downstream_call() -> dict[str, Any]:
    """`downstream_token(...)` called directly."""
    return _shape(await downstream_token([READ_SCOPE]))


@prompt(scopes=["mcp.admin"])
def local_admin_prompt() -> str:
    """A prompt only mcp.admin callers may get."""
    return "admin plans"
