"""What the server advertises through the SDK's extension mechanism (`capabilities.extensions`): the OAuth
client-credentials extension (`io.modelcontextprotocol/oauth-client-credentials`, ext-auth) exactly when some tool,
resource or prompt admits app-only callers, in both eras: `initialize` (2025-11-25) and `server/discover`
(2026-07-28). Real uvicorn, the SDK client, and a raw `server/discover`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from app.catalog.discovery import discover
from app.server.extensions import ClientCredentials, advertised_extensions
from tests.support.calls import MODERN_HEADERS, mcp_client, rpc
from tests.support.servers import ServerThread
from tests.support.values import SUPPORT, TEST_TOOLS

CLIENT_CREDENTIALS = "io.modelcontextprotocol/oauth-client-credentials"
NO_ROLES = SUPPORT / "session_tools"  # scopes only: no app-only caller is admitted


async def _discover(server: ServerThread, bearer: str) -> dict[str, object]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    headers = {**MODERN_HEADERS, "Mcp-Method": "server/discover", "Authorization": f"Bearer {bearer}"}
    async with httpx2.AsyncClient(base_url=server.url, timeout=20) as http:
        response = await http.post("/mcp", json=rpc("server/discover", {"_meta": meta}), headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()["result"]
    return result


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_client_credentials_is_advertised_when_app_callers_are_admitted(
    serve: Callable[..., ServerThread], token: Callable[..., str], mode: str
) -> None:
    server = serve()  # the test tools: probe_app_job declares the Jobs.Run role
    async with mcp_client(server.url, token(), mode=mode) as client:
        assert client.session.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        capabilities = client.session.server_capabilities
    assert capabilities is not None and capabilities.extensions is not None
    assert capabilities.extensions[CLIENT_CREDENTIALS] == {}
    discovered = await _discover(server, token())
    assert discovered["capabilities"]["extensions"] == {CLIENT_CREDENTIALS: {}}  # type: ignore[index]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_it_is_not_advertised_when_no_target_admits_app_callers(
    serve: Callable[..., ServerThread], token: Callable[..., str], mode: str
) -> None:
    server = serve(tools={"dir": NO_ROLES})
    async with mcp_client(server.url, token(), mode=mode) as client:
        capabilities = client.session.server_capabilities
    assert capabilities is not None and not (capabilities.extensions or {}).get(CLIENT_CREDENTIALS)
    assert CLIENT_CREDENTIALS not in ((await _discover(server, token()))["capabilities"].get("extensions") or {})  # type: ignore[attr-defined]


def test_local_mode_never_advertises_it(tmp_path: Path) -> None:
    """Over stdio the signed-in user is the only caller: there is no OAuth to speak of."""
    catalog = discover(TEST_TOOLS)
    assert [type(e) for e in advertised_extensions(catalog, None)] == [ClientCredentials]
    assert advertised_extensions(catalog, None, local=True) == []
