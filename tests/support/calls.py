"""MCP requests as tests send them: the official SDK client with a bearer token, and raw JSON-RPC bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


@asynccontextmanager
async def mcp_client(
    url: str, token: str | None, mode: str = "legacy", path: str = "/mcp", **kw: Any
) -> AsyncIterator[Client]:
    """The official SDK client over Streamable HTTP at `url` + `path`, with the bearer token on every request."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{url}{path}", http_client=http), mode=mode, **kw) as client,
    ):
        yield client


def rpc(method: str, params: dict[str, Any] | None = None, id_: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        body["params"] = params
    return body


MODERN_HEADERS = {"MCP-Protocol-Version": "2026-07-28", "Accept": "application/json, text/event-stream"}


def modern_call(name: str, arguments: dict[str, Any] | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body of a 2026-07-28 `tools/call`, as a raw HTTP client would send them."""
    headers = {**MODERN_HEADERS, "Mcp-Method": "tools/call", "Mcp-Name": name}
    params = {
        "name": name,
        "arguments": arguments or {},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    }
    return headers, rpc("tools/call", params)


async def call(
    http: httpx2.AsyncClient, token: str | None, tool: str, arguments: dict[str, Any] | None = None, request_id: int = 1
) -> httpx2.Response:
    headers, body = modern_call(tool, arguments)
    body["id"] = request_id
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return await http.post("/mcp", json=body, headers=headers)
