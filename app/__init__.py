"""secure-mcp-server framework. Tool authors import from here: `from app import tool, current_principal, secret`."""

from mcp.server.mcpserver.exceptions import ToolError

from app.auth.downstream import DownstreamAuthError, downstream_token
from app.auth.principal import NotAuthenticatedError, Principal, current_principal
from app.catalog.registry import completion, prompt, resource, tool
from app.secrets.store import secret
from app.server.content import untrusted

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
    "untrusted",
]
