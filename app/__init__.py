"""secure-mcp-server framework. Tool and route authors import from here: `from app import tool, Caller, requires`."""

from mcp.server.mcpserver.exceptions import ToolError

from app.auth.dependencies import Caller, authenticated, public, requires
from app.auth.downstream import DownstreamAuthError, downstream_token
from app.auth.principal import NotAuthenticatedError, Principal, current_principal
from app.catalog.decorators import completion, prompt, resource, tool
from app.catalog.injection import Downstream, Secret
from app.edge.route_limits import limiter
from app.secrets.store import secret
from app.server.ask import Ask, ask
from app.server.content import untrusted
from app.tasks.progress import Progress, progress

__all__ = [
    "Ask",
    "Caller",
    "Downstream",
    "DownstreamAuthError",
    "NotAuthenticatedError",
    "Principal",
    "Progress",
    "Secret",
    "ToolError",
    "ask",
    "authenticated",
    "completion",
    "current_principal",
    "downstream_token",
    "limiter",
    "progress",
    "prompt",
    "public",
    "requires",
    "resource",
    "secret",
    "tool",
    "untrusted",
]
