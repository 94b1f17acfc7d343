"""The SDK client talks to a real uvicorn: both protocol eras, stateless and stateful, and no redirects."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest

from tests.support.calls import MODERN_HEADERS, mcp_client, modern_call, rpc
from tests.support.servers import ServerThread
from tests.support.values import TENANT

READER = "mcp.read"


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_sdk_client_lists_and_calls_tools(app_server: ServerThread, token: Callable[..., str], mode: str) -> None:
    async with mcp_client(app_server.url, token(READER), mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"probe_read", "nested_echo", "probe_whoami"} <= names
        result = await client.call_tool("nested_echo", {"text": "hello"})
        assert not result.is_error
        assert result.structured_content == {"result": "hello"}
        who = await client.call_tool("probe_whoami", {})
        assert who.structured_content is not None
        assert who.structured_content["tid"] == TENANT
        assert who.structured_content["kind"] == "user"
        assert "token" not in str(who.structured_content).lower()


async def test_legacy_handshake_negotiates_2025_11_25(app_server: ServerThread, token: Callable[..., str]) -> None:
    async with mcp_client(app_server.url, token(READER), mode="legacy") as client:
        assert client.session.protocol_version == "2025-11-25"


async def test_stateful_mode_issues_session_ids(serve: Callable[..., ServerThread], token: Callable[..., str]) -> None:
    server = serve(mcp={"stateless": False})
    headers = {"Authorization": f"Bearer {token(READER)}", "Accept": "application/json, text/event-stream"}
    init = rpc(
        "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    )
    async with httpx2.AsyncClient(base_url=server.url, headers=headers) as http:
        response = await http.post("/mcp", json=init)
        assert response.status_code == 200
        session_id = response.headers["mcp-session-id"]
        assert len(session_id) >= 32 and session_id.isascii()
    async with mcp_client(server.url, token(READER), mode="legacy") as client:
        result = await client.call_tool("nested_echo", {"text": "stateful"})
        assert result.structured_content == {"result": "stateful"}


async def test_post_mcp_answers_directly_without_redirect(app_server: ServerThread, token: Callable[..., str]) -> None:
    headers, body = modern_call("nested_echo", {"text": "x"})
    async with httpx2.AsyncClient(base_url=app_server.url, follow_redirects=False) as http:
        response = await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {token(READER)}"})
    assert response.status_code == 200, response.text
    assert response.json()["result"]["structuredContent"] == {"result": "x"}


async def test_modern_server_discover(app_server: ServerThread, token: Callable[..., str]) -> None:
    headers = {**MODERN_HEADERS, "Mcp-Method": "server/discover", "Authorization": f"Bearer {token(READER)}"}
    body = rpc(
        "server/discover",
        {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        },
    )
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        response = await http.post("/mcp", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert "2026-07-28" in response.json()["result"]["supportedVersions"]


async def test_json_rpc_batches_are_refused(app_server: ServerThread, token: Callable[..., str]) -> None:
    headers = {
        "Authorization": f"Bearer {token(READER)}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        response = await http.post("/mcp", json=[rpc("tools/list"), rpc("tools/list", id_=2)], headers=headers)
    assert response.status_code == 400
    assert "batch" in response.json()["error"]["message"].lower()
