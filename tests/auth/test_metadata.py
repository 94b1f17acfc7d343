"""RFC 9728 Protected Resource Metadata: right fields, no token needed, and the 401 challenge points at it."""

from __future__ import annotations

from collections.abc import Callable

import httpx2

from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread
from tests.support.values import TENANT


async def test_prm_fields(app_server: ServerThread, entra: EntraStandIn) -> None:
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        response = await http.get("/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert doc["resource"] == f"{app_server.url}/mcp"
    assert doc["authorization_servers"] == [f"{entra.base}{TENANT}/v2.0"]
    assert doc["bearer_methods_supported"] == ["header"]
    resource = f"{app_server.url}/mcp"  # scopes are {App ID URI}/{scope}; the App ID URI defaults to the resource
    assert set(doc["scopes_supported"]) == {f"{resource}/mcp.read", f"{resource}/files.write"}
    assert all(value not in ([], "", None) for value in doc.values())


async def test_401_resource_metadata_url_serves_the_prm(app_server: ServerThread) -> None:
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        challenge = await http.post("/mcp", json={})
        www = challenge.headers["www-authenticate"]
        url = www.split('resource_metadata="', 1)[1].split('"', 1)[0]
        doc = (await http.get(url)).json()
    assert doc["resource"] == f"{app_server.url}/mcp"


async def test_resource_identifier_is_normalised(serve: object) -> None:
    from tests.support.entra import EntraStandIn as _E
    from tests.support.values import settings_for

    settings = settings_for(
        _E(base="https://login.microsoftonline.com/"), 443, mcp={"resource_host": "HTTPS://MCP.Contoso.COM/"}
    )
    assert settings.resource == "https://mcp.contoso.com/mcp"
    assert settings.resource_metadata_url == "https://mcp.contoso.com/.well-known/oauth-protected-resource/mcp"


async def test_prm_is_also_at_the_root_and_offline_access_appears_nowhere(serve: Callable[..., ServerThread]) -> None:
    """Even when configured as a required scope, offline_access is the client's to add (MCP 2026-07-28)."""
    server = serve(mcp={"required_scopes": ["offline_access", "mcp.read"]})
    async with httpx2.AsyncClient(base_url=server.url) as http:
        at_path = await http.get("/.well-known/oauth-protected-resource/mcp")
        at_root = await http.get("/.well-known/oauth-protected-resource")
        challenge = await http.post("/mcp", json={})
        route_challenge = await http.get("/api/whoami")
    assert at_root.status_code == 200 and at_root.json() == at_path.json()
    assert f"{server.url}/mcp/mcp.read" in at_path.json()["scopes_supported"]
    for text in (at_path.text, challenge.headers["www-authenticate"], route_challenge.headers["www-authenticate"]):
        assert "offline_access" not in text
    assert 'scope="' in challenge.headers["www-authenticate"]  # the 401 names the scopes PRM lists (2025-11-25)
