"""A route's `downstream_token(...)` that Entra refuses is answered like a tool's call, never a 500: consent or
Conditional Access the user can satisfy is a 403 with the connect page's link (bound to the caller); any other
failure is a 502 naming the exchange's error code."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx2
import pytest

from app.main import create_app
from tests.support.connect import ALICE, DOWNSTREAM, connect_settings
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread, free_port
from tests.support.values import CLIENT_ID, JWT_SHAPED, TENANT

ROUTE = f'''
from fastapi import APIRouter

from app import Caller, downstream_token, requires

router = APIRouter(prefix="/api")


@router.get("/profile", dependencies=[requires(scopes=["profile.read"])])
async def profile(caller: Caller) -> dict[str, int]:
    """How long the downstream token is (the route never shows it)."""
    return {{"length": len(await downstream_token(["{DOWNSTREAM}"]))}}
'''


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    folder = tmp_path / "routes"
    folder.mkdir()
    (folder / "profile.py").write_text(ROUTE)
    return folder


@pytest.mark.parametrize("connect", [True, False], ids=["connect-page", "no-connect-page"])
async def test_a_route_whose_exchange_needs_consent_is_a_403_with_the_link_or_a_502(
    connect: bool, routes: Path, entra_tls: tuple[EntraStandIn, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    entra, cert = entra_tls
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    entra.consent_required = {DOWNSTREAM}
    port = free_port()
    settings = connect_settings(entra, port, routes={"dir": routes}, connect={"enabled": connect})
    token = entra.token(tenant=TENANT, audience=CLIENT_ID, scopes="profile.read", oid=ALICE)
    with ServerThread(create_app(settings), port=port) as server:
        async with httpx2.AsyncClient(verify=ssl.create_default_context(cafile=str(cert))) as http:
            answer = await http.get(f"{server.url}/api/profile", headers={"authorization": f"Bearer {token}"})
    body = answer.json()
    if connect:
        assert answer.status_code == 403 and body["error"] == "consent_required"
        assert body["connect_url"].startswith(f"{server.url}/connect/")
    else:
        assert answer.status_code == 502 and body["error"] == "downstream_unavailable"
        assert "consent" in body["error_description"]
    assert not JWT_SHAPED.search(answer.text) and "Traceback" not in answer.text
