"""Every use this project makes of the MCP SDK's private attributes, in one place.

Each helper names the public seam it lacks; tests/test_sdk_private.py checks each assumption against the installed
SDK and fails with a message that names the helper, so an SDK upgrade that moves one is found at once, not in
production. Anything a public SDK seam can do does not belong here (e.g. `MCPServer.middleware` is public).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mcp.server import _streamable_http_modern
from mcp.server._otel import OpenTelemetryMiddleware as OpenTelemetryMiddleware  # no public name for the span layer
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared._callable_inspection import is_async_callable as is_async_callable  # the SDK's own sync/async test
from mcp_types import LoggingLevel


def lowlevel_server(server: MCPServer[Any]) -> Server[Any]:
    """The low-level server: the SDK documents `add_request_handler` there for handshake-era methods
    (`logging/setLevel`, `resources/subscribe`), but `MCPServer` exposes it by no public name."""
    return server._lowlevel_server


def request_connection(ctx: ServerRequestContext[Any, Any]) -> Connection:
    """The connection a request arrived on (per session; one per request when stateless). `ServerSession` keeps it
    private; it is the one object that lives exactly as long as a handshake-era session and can notify it."""
    return ctx.session._connection


def narrow_log_levels(ctx: ServerRequestContext[Any, Any], wanted: frozenset[LoggingLevel]) -> None:
    """Drop the levels a `logging/setLevel` excluded from what this request may deliver. The SDK fixes each request's
    deliverable levels on its session and leaves setLevel filtering to the application, with no public setter."""
    ctx.session._allowed_log_levels = ctx.session._allowed_log_levels & wanted


def replace_modern_json(parser: Any) -> None:
    """Hand the 2026-07-28 transport a `json` stand-in, so it dispatches the body our authorization parsed (no
    public seam for an already-parsed body)."""
    _streamable_http_modern.json = parser  # type: ignore[attr-defined]


def modern_json() -> Any:
    """What the 2026-07-28 transport parses bodies with (the module `json`, unless replaced)."""
    return getattr(_streamable_http_modern, "json", json)


def open_sessions(manager: StreamableHTTPSessionManager) -> int:
    """Open stateful sessions: the manager's session table is the only exact count (no public counter)."""
    return len(manager._server_instances)


def session_is_open(manager: StreamableHTTPSessionManager, session_id: str) -> bool:
    """Whether the manager still holds this session (the SDK forgets it on DELETE and on its idle timeout; no public
    lookup)."""
    return session_id in manager._server_instances


def prompt_lookup(server: MCPServer[Any]) -> Callable[[str], Any]:
    """Finds a registered prompt by name (`MCPServer` has no public `get_prompt` definition lookup)."""
    return server._prompt_manager.get_prompt
