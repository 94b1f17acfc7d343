"""No token passthrough: the example tool reaches a downstream API with an on-behalf-of token from MSAL.

The caller's token must go to exactly one place, the token endpoint, as the OBO assertion.
"""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from app.main import create_app
from tests.support.calls import mcp_client, modern_call
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread, free_port
from tests.support.tls import certificate, private_pem
from tests.support.values import CLIENT_ID, CLIENT_SECRET, REPO, TENANT, settings_for


async def test_obo_sends_the_inbound_token_only_to_the_token_endpoint(
    entra_tls: tuple[EntraStandIn, Path],
    profile_api: tuple[str, list[dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entra, cert = entra_tls
    api_url, api_seen = profile_api
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # httpx2 (JWKS) trusts the stand-in's certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # so does MSAL's requests session
    monkeypatch.setenv("PROFILE_API__BASE_URL", api_url)
    port = free_port()
    settings = settings_for(entra, port, azuread={"client_secret": CLIENT_SECRET}, tools={"dir": REPO / "tools"})
    inbound = entra.token(tenant=TENANT, audience=CLIENT_ID, scopes="profile.read")

    with ServerThread(create_app(settings), port=port) as server:
        async with mcp_client(server.url, inbound) as client:
            first = await client.call_tool("my_profile", {})
            second = await client.call_tool("my_profile", {})

    assert not first.is_error, first.content
    assert first.structured_content == {
        "displayName": "Alice Example",
        "mail": "alice@contoso.example",
        "jobTitle": "SRE",
    }
    assert second.structured_content == first.structured_content
    # One exchange: MSAL served the second call from its token cache.
    assert len(entra.token_requests) == 1
    exchange = entra.token_requests[0]
    assert exchange["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert exchange["requested_token_use"] == "on_behalf_of"
    assert exchange["assertion"] == inbound
    assert exchange["client_id"] == CLIENT_ID
    assert exchange["client_secret"] == CLIENT_SECRET
    assert "https://graph.microsoft.com/User.Read" in exchange["scope"]
    # The downstream API saw only the exchanged token, never the caller's.
    assert len(api_seen) == 2
    for headers in api_seen:
        assert headers["authorization"].startswith("Bearer downstream-")
        assert inbound not in " ".join(headers.values())


async def test_obo_is_never_attempted_for_app_only_callers(
    entra_tls: tuple[EntraStandIn, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app-only token (`idtyp: app`) is an app even when it also carries `scp`: `my_profile` declares no app role,
    so the call is refused before dispatch, and no exchange reaches the token endpoint. (Read by the old `oid == sub`
    rule alone, this token passed as a user's; the downstream refusal of app callers inside a tool that admits them
    is tests/catalog/test_injection.py::test_app_only_callers_get_the_same_error_as_downstream_token.)"""
    entra, cert = entra_tls
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    port = free_port()
    settings = settings_for(
        entra, port, azuread={"client_secret": CLIENT_SECRET}, tools={"dir": REPO / "tools"}, mcp={"required_roles": []}
    )
    app_token = entra.app_token(
        tenant=TENANT, audience=CLIENT_ID, roles=["profile.read"], app_id="app-1", scp="profile.read"
    )
    headers, body = modern_call("my_profile")
    with ServerThread(create_app(settings), port=port) as server:
        async with httpx2.AsyncClient(base_url=server.url) as http:
            refused = await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {app_token}"})
    assert refused.status_code == 403 and "app role" in refused.json()["error_description"]
    assert entra.token_requests == []


def _client_certificate(directory: Path) -> Path:
    """One PEM with an RSA key and its self-signed certificate: the form AZUREAD__CLIENT_CERTIFICATE_PATH takes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "client.pem"
    path.write_bytes(private_pem(key) + certificate(key, "secure-mcp-server").public_bytes(serialization.Encoding.PEM))
    return path


async def test_obo_with_a_certificate_sends_a_signed_client_assertion_not_a_secret(
    entra_tls: tuple[EntraStandIn, Path],
    profile_api: tuple[str, list[dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import jwt

    entra, cert = entra_tls
    api_url, _ = profile_api
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("PROFILE_API__BASE_URL", api_url)
    port = free_port()
    settings = settings_for(
        entra, port, azuread={"client_certificate_path": _client_certificate(tmp_path)}, tools={"dir": REPO / "tools"}
    )
    inbound = entra.token(tenant=TENANT, audience=CLIENT_ID, scopes="profile.read")
    with ServerThread(create_app(settings), port=port) as server:
        async with mcp_client(server.url, inbound) as client:
            result = await client.call_tool("my_profile", {})
    assert not result.is_error, result.content
    (exchange,) = entra.token_requests
    assert exchange["assertion"] == inbound
    assert "client_secret" not in exchange
    assert exchange["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    header = jwt.get_unverified_header(exchange["client_assertion"])
    assert header["alg"].startswith(("RS", "PS")) and ("x5t" in header or "x5t#S256" in header)
