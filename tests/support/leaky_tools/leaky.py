"""A resource, a prompt and a tool that fail with a JSON-RPC error whose text and data hold their vault secret."""

from typing import Annotated

from mcp.server.mcpserver.exceptions import ResourceError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

from app import Secret, prompt, resource, tool

SECRET_NAME = "leaky--api-key"


@resource("leaky://failing/{how}", scopes=["mcp.read"], mime_type="text/plain")
def failing_resource(how: str, key: Annotated[str, Secret(SECRET_NAME)]) -> str:
    """Fails reading: `mcp-error` raises MCPError, `resource-error` the SDK's ResourceError, else a ValueError."""
    if how == "mcp-error":
        raise MCPError(code=INTERNAL_ERROR, message=f"upstream refused key {key}", data={"key": key})
    if how == "resource-error":
        raise ResourceError(f"upstream refused key {key}")
    raise ValueError(f"upstream refused key {key}")


@prompt(scopes=["mcp.read"])
def failing_prompt(how: str, key: Annotated[str, Secret(SECRET_NAME)]) -> str:
    """Fails rendering: `mcp-error` raises MCPError, else a ValueError (the SDK turns it into a JSON-RPC error)."""
    if how == "mcp-error":
        raise MCPError(code=INTERNAL_ERROR, message=f"upstream refused key {key}", data={"key": key})
    raise ValueError(f"upstream refused key {key}")


@tool(scopes=["mcp.read"])
def failing_tool(key: Annotated[str, Secret(SECRET_NAME)]) -> str:
    """Raises MCPError (a JSON-RPC error, not a tool result) with the secret in its message and data."""
    raise MCPError(code=INTERNAL_ERROR, message=f"upstream refused key {key}", data={"key": key})
