"""secure-mcp-server framework. Tool authors import from here: `from app import tool, current_principal, secret`."""

from app.auth.principal import NotAuthenticatedError, Principal, current_principal
from app.registry import prompt, resource, tool
from app.secrets import secret

__all__ = ["NotAuthenticatedError", "Principal", "current_principal", "prompt", "resource", "secret", "tool"]
