"""Per-tool authorization before dispatch: app roles vs delegated scopes, step-up, list filtering, sessions."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from tests.support import probe
from tests.support.calls import mcp_client, modern_call, rpc
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread
from tests.support.values import CLIENT_ID, TENANT

APP_ID = "dddddddd-0000-4000-8000-00000000a991"


async def _call(server: ServerThread, token: str, tool: str) -> httpx2.Response:
    headers, body = modern_call(tool)
    async with httpx2.AsyncClient(base_url=server.url) as http:
        return await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {token}"})


async def test_app_only_roles_pass_role_guarded_tools_and_fail_scope_only_tools(
    app_server: ServerThread, entra: EntraStandIn
) -> None:
    app_token = entra.app_token(tenant=TENANT, audience=CLIENT_ID, roles=["Jobs.Run"], app_id=APP_ID)
    before = list(probe.calls)
    assert (await _call(app_server, app_token, "probe_app_job")).status_code == 200
    denied = await _call(app_server, app_token, "probe_read")
    assert denied.status_code == 403
    assert probe.calls == [*before, "app_job"]
    async with mcp_client(app_server.url, app_token) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert names == {"probe_app_job"}


async def test_a_user_cannot_use_an_app_role_tool_even_with_the_role_name_as_a_scope(
    app_server: ServerThread, token: Callable[..., str]
) -> None:
    response = await _call(app_server, token("mcp.read Jobs.Run"), "probe_app_job")
    assert response.status_code == 403


async def test_step_up_lists_every_scope_the_operation_needs_and_the_tool_does_not_run(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(mcp={"required_scopes": ["mcp.access"]})
    before = list(probe.calls)
    response = await _call(server, token("mcp.access"), "probe_write")
    assert response.status_code == 403
    www = response.headers["www-authenticate"]
    app_id_uri = f"{server.url}/mcp"  # scopes are {App ID URI}/{scope}; the URI defaults to the resource
    assert f'scope="{app_id_uri}/files.write {app_id_uri}/mcp.access"' in www
    assert 'error="insufficient_scope"' in www
    assert probe.calls == before
    assert response.json()["scope"] == f"{app_id_uri}/files.write {app_id_uri}/mcp.access"
    # The base scope alone is checked on every request, even ones that name no tool.
    async with httpx2.AsyncClient(base_url=server.url) as http:
        listing = await http.post(
            "/mcp",
            json=rpc("tools/list"),
            headers={
                "Authorization": f"Bearer {token('mcp.read')}",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-11-25",
            },
        )
    assert listing.status_code == 403
    assert f'scope="{app_id_uri}/mcp.access"' in listing.headers["www-authenticate"]


async def test_tools_list_shows_only_callable_tools(app_server: ServerThread, token: Callable[..., str]) -> None:
    async with mcp_client(app_server.url, token("mcp.read")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert "probe_read" in names
    assert "probe_write" not in names and "probe_app_job" not in names


async def test_list_filtering_can_be_turned_off(serve: Callable[..., ServerThread], token: Callable[..., str]) -> None:
    server = serve(tools={"filter_list": False})
    async with mcp_client(server.url, token("mcp.read")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert {"probe_read", "probe_write", "probe_app_job"} <= names
    assert (await _call(server, token("mcp.read"), "probe_write")).status_code == 403  # listing isn't permission


async def test_a_session_presented_by_another_principal_gets_404(
    serve: Callable[..., ServerThread], entra: EntraStandIn
) -> None:
    server = serve(mcp={"stateless": False})
    alice = entra.token(tenant=TENANT, audience=CLIENT_ID, oid="aaaaaaaa-0000-4000-8000-0000000a11ce")
    alice_again = entra.token(tenant=TENANT, audience=CLIENT_ID, oid="aaaaaaaa-0000-4000-8000-0000000a11ce")
    mallory = entra.token(tenant=TENANT, audience=CLIENT_ID, oid="aaaaaaaa-0000-4000-8000-00000000bad0")
    accept = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    init = rpc(
        "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    )
    async with httpx2.AsyncClient(base_url=server.url, headers=accept) as http:
        opened = await http.post("/mcp", json=init, headers={"Authorization": f"Bearer {alice}"})
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (
            await http.post("/mcp", json=initialized, headers={**session, "Authorization": f"Bearer {alice}"})
        ).status_code == 202
        hijack = await http.post(
            "/mcp", json=rpc("tools/list", id_=2), headers={**session, "Authorization": f"Bearer {mallory}"}
        )
        assert hijack.status_code == 404
        no_token = await http.post("/mcp", json=rpc("tools/list", id_=3), headers=session)
        assert no_token.status_code == 401  # the session id alone authenticates nothing
        own = await http.post(
            "/mcp", json=rpc("tools/list", id_=4), headers={**session, "Authorization": f"Bearer {alice_again}"}
        )
        assert own.status_code == 200  # a fresh token for the same user keeps the session


async def test_a_2026_body_is_parsed_once_and_the_sdk_dispatches_what_was_authorized(
    app_server: ServerThread, token: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    headers, body = modern_call("probe_read", {"note": "once"})
    raw = json.dumps(body).encode()
    parses: list[bytes] = []
    real_loads = json.loads

    def counting_loads(data: Any, **options: Any) -> Any:
        if data == raw:
            parses.append(data)
        return real_loads(data, **options)

    monkeypatch.setattr(json, "loads", counting_loads)
    before = list(probe.calls)
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        response = await http.post(
            "/mcp",
            content=raw,
            headers={**headers, "Content-Type": "application/json", "Authorization": f"Bearer {token()}"},
        )
    assert response.status_code == 200 and response.json()["result"]["isError"] is False
    assert probe.calls == [*before, "read:once"]
    assert len(parses) == 1  # authorization's parse; the SDK's transport was handed the same message
