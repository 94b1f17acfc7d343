"""secure-mcp-server framework. Tool authors import from here: `from app import tool, current_principal`."""

from app.auth.principal import NotAuthenticatedError, Principal, current_principal
from app.content import untrusted
from app.registry import prompt, resource, tool

__all__ = ["NotAuthenticatedError", "Principal", "current_principal", "prompt", "resource", "tool", "untrusted"]
