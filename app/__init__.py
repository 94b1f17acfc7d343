"""secure-mcp-server framework. Tool authors import from here: `from app import tool, current_principal, secret`."""

from mcp.server.mcpserver.exceptions import ToolError

from app.auth.principal import NotAuthenticatedError, Principal, current_principal
from app.downstream import DownstreamAuthError, downstream_token
from app.registry import completion, prompt, resource, tool
from app.secrets import secret

__all__ = [
    "DownstreamAuthError",
    "NotAuthenticatedError",
    "Principal",
    "ToolError",
    "completion",
    "current_principal",
    "downstream_token",
    "prompt",
    "resource",
    "secret",
    "tool",
]
