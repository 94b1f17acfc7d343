"""One test per private-SDK assumption in app/core/sdk_private.py: each fails with a message naming the helper.

In-process units against the installed SDK: what is checked is the SDK's own shape, not our code paths.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
from mcp.server import _streamable_http_modern
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.session import ServerSession
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import LoggingLevel

from app.core import sdk_private
from tests.support.values import REPO


def _moved(helper: str, what: str) -> str:
    return f"the SDK changed: app/core/sdk_private.py:{helper} relies on {what}; find the new seam and update it"


def _session(version: str, meta: dict[str, Any] | None = None) -> ServerSession:
    connection = Connection.from_envelope(version, None, None)
    return ServerSession(object(), connection, request_meta=meta)  # type: ignore[arg-type]


def _ctx(session: ServerSession) -> ServerRequestContext[Any, Any]:
    return ServerRequestContext(session=session, lifespan_context=None, protocol_version="2025-11-25", method="x")


def test_lowlevel_server_is_where_handshake_era_handlers_are_added() -> None:
    server: MCPServer[Any] = MCPServer("probe")
    lowlevel = sdk_private.lowlevel_server(server)
    assert isinstance(lowlevel, Server), _moved("lowlevel_server", "MCPServer._lowlevel_server")
    assert callable(getattr(lowlevel, "add_request_handler", None)), _moved("lowlevel_server", "add_request_handler")
    assert lowlevel.middleware is server.middleware, _moved("lowlevel_server", "one middleware list for both")


def test_a_request_session_carries_its_connection() -> None:
    session = _session("2025-11-25")
    connection = sdk_private.request_connection(_ctx(session))
    assert isinstance(connection, Connection), _moved("request_connection", "ServerSession._connection")
    assert callable(getattr(connection, "send_resource_updated", None)), _moved(
        "request_connection", "Connection.send_resource_updated"
    )


def test_log_levels_are_fixed_on_the_session_and_narrowing_them_filters() -> None:
    session = _session("2025-11-25")
    levels = getattr(session, "_allowed_log_levels", None)
    assert isinstance(levels, frozenset), _moved("narrow_log_levels", "ServerSession._allowed_log_levels")
    wanted: frozenset[LoggingLevel] = frozenset({"error", "critical", "alert", "emergency"})
    sdk_private.narrow_log_levels(_ctx(session), wanted)
    assert session._allowed_log_levels == wanted
    source = inspect.getsource(ServerSession.send_log_message)
    assert "self._allowed_log_levels" in source, _moved("narrow_log_levels", "send_log_message reading the set")


def test_the_modern_transport_parses_with_a_module_level_json() -> None:
    assert "json.loads" in inspect.getsource(_streamable_http_modern), _moved(
        "replace_modern_json", "_streamable_http_modern calling json.loads"
    )
    before = sdk_private.modern_json()
    marker = object()
    try:
        sdk_private.replace_modern_json(marker)
        assert _streamable_http_modern.json is marker  # type: ignore[attr-defined]
    finally:
        sdk_private.replace_modern_json(before)
    assert before is json or hasattr(before, "loads")


def test_the_session_manager_keeps_a_session_table() -> None:
    manager = StreamableHTTPSessionManager(Server("probe"))
    table = getattr(manager, "_server_instances", None)
    assert isinstance(table, dict), _moved("open_sessions", "StreamableHTTPSessionManager._server_instances")
    assert sdk_private.open_sessions(manager) == 0
    assert not sdk_private.session_is_open(manager, "no-such-session")
    table["probe-session"] = object()  # keyed by the session id the client sends in Mcp-Session-Id
    assert sdk_private.session_is_open(manager, "probe-session") and sdk_private.open_sessions(manager) == 1


def test_prompts_are_found_by_name() -> None:
    server: MCPServer[Any] = MCPServer("probe")

    @server.prompt(name="hello")
    def hello() -> str:
        return "hi"

    lookup = sdk_private.prompt_lookup(server)
    assert lookup("hello") is not None, _moved("prompt_lookup", "MCPServer._prompt_manager.get_prompt")
    assert lookup("absent") is None


def test_the_span_layer_and_the_async_test_are_where_we_import_them() -> None:
    server: MCPServer[Any] = MCPServer("probe")
    assert any(isinstance(layer, sdk_private.OpenTelemetryMiddleware) for layer in server.middleware), _moved(
        "OpenTelemetryMiddleware", "mcp.server._otel.OpenTelemetryMiddleware in the default chain"
    )

    async def coroutine() -> None:
        return None

    assert sdk_private.is_async_callable(coroutine), _moved("is_async_callable", "mcp.shared._callable_inspection")
    assert not sdk_private.is_async_callable(lambda: None)


@pytest.mark.parametrize("name", ["_lowlevel_server", "_connection", "_allowed_log_levels", "_server_instances"])
def test_no_other_module_reaches_into_these_private_attributes(name: str) -> None:

    app = REPO / "app"
    users = [
        str(path.relative_to(app))
        for path in app.rglob("*.py")
        if path.name != "sdk_private.py" and f".{name}" in path.read_text()
    ]
    assert users == [], f"{name} is used outside app/core/sdk_private.py: {users}"
