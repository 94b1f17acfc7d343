"""Target (a): the bare MCP SDK, no auth."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from bench.servers.common import STATEFUL, echo_tool

server = MCPServer("bench-sdk-bare", log_level="WARNING")


server.tool(name="echo")(echo_tool())


app = server.streamable_http_app(streamable_http_path="/mcp", stateless_http=not STATEFUL, json_response=True)
