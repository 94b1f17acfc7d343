"""Entra fidelity: v1 and v2 issuers, tenant binding, multi-tenant allow-lists, and JWKS rotation and outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from pydantic import ValidationError

import app.auth.keys
from app.settings import Settings
from tests.support.calls import mcp_client, modern_call
from tests.support.entra import EntraStandIn, SigningKey, new_key
from tests.support.servers import ServerThread
from tests.support.values import CLIENT_ID, OTHER_TENANT, TENANT


class KeysClock:
    """The clock of the JWKS refresh window (`app.auth.keys` reads `time.monotonic()`), moved only by the test.

    A window measured on the wall clock also runs out while a loaded machine is still serving one burst, and a second
    refresh inside the burst is then correct; with this clock the test alone says when the window has passed.
    """

    def __init__(self) -> None:
        self.now = 0.0  # only differences count; whole and half seconds add up exactly

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def keys_clock(monkeypatch: pytest.MonkeyPatch) -> KeysClock:
    clock = KeysClock()
    monkeypatch.setattr(app.auth.keys, "time", clock)
    return clock


async def _status(server: ServerThread, token: str, tool: str = "probe_read") -> int:
    headers, body = modern_call(tool)
    async with httpx2.AsyncClient(base_url=server.url) as http:
        response = await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {token}"})
    return response.status_code


async def test_v2_and_v1_tokens_are_both_accepted(app_server: ServerThread, entra: EntraStandIn) -> None:
    v2 = entra.token(tenant=TENANT, audience=CLIENT_ID, version="2.0", app_id="client-v2")
    # A v1 token's audience is the App ID URI: by default the resource URL (Entra's guidance for MCP servers).
    v1 = entra.token(tenant=TENANT, audience=f"{app_server.url}/mcp", version="1.0", app_id="client-v1")
    for token, client_app in ((v2, "client-v2"), (v1, "client-v1")):
        async with mcp_client(app_server.url, token) as client:
            who = await client.call_tool("probe_whoami", {})
        assert who.structured_content is not None
        assert who.structured_content["client_id"] == client_app  # azp for v2, appid for v1


async def test_v1_can_be_switched_off(serve: Callable[..., ServerThread], entra: EntraStandIn) -> None:
    server = serve(azuread={"accept_v1": False})
    v1 = entra.token(tenant=TENANT, audience=f"{server.url}/mcp", version="1.0")
    assert await _status(server, v1) == 401


async def test_audiences_are_the_client_id_and_the_app_id_uri_which_defaults_to_the_resource(
    app_server: ServerThread, entra: EntraStandIn
) -> None:
    for audience in (CLIENT_ID, f"{app_server.url}/mcp"):
        assert await _status(app_server, entra.token(tenant=TENANT, audience=audience)) == 200, audience
    refused = (f"api://{CLIENT_ID}", f"{app_server.url}/mcp/", "https://graph.microsoft.com", f"{app_server.url}/other")
    for audience in refused:
        assert await _status(app_server, entra.token(tenant=TENANT, audience=audience)) == 401, audience


async def test_an_api_app_id_uri_is_the_audience_in_place_of_the_resource(
    serve: Callable[..., ServerThread], entra: EntraStandIn
) -> None:
    server = serve(azuread={"app_id_uri": "api://{client_id}"})
    for audience in (CLIENT_ID, f"api://{CLIENT_ID}"):
        assert await _status(server, entra.token(tenant=TENANT, audience=audience)) == 200, audience
    for audience in (f"api://{CLIENT_ID}/", f"{server.url}/mcp"):
        assert await _status(server, entra.token(tenant=TENANT, audience=audience)) == 401, audience


async def test_a_tid_that_does_not_match_the_issuer_is_rejected(app_server: ServerThread, entra: EntraStandIn) -> None:
    # Signed by the real keys, issuer of our tenant, but claiming another tenant id.
    forged = entra.token(tenant=TENANT, audience=CLIENT_ID, tid=OTHER_TENANT)
    assert await _status(app_server, forged) == 401
    other = entra.token(tenant=OTHER_TENANT, audience=CLIENT_ID)
    assert await _status(app_server, other) == 401


async def test_multi_tenant_allow_list(serve: Callable[..., ServerThread], entra: EntraStandIn) -> None:
    server = serve(azuread={"tenant_id": "organizations", "allowed_tenants": [TENANT]})
    allowed = entra.token(tenant=TENANT, audience=CLIENT_ID)
    stranger = entra.token(tenant=OTHER_TENANT, audience=CLIENT_ID)
    v1_allowed = entra.token(tenant=TENANT, audience=f"{server.url}/mcp", version="1.0")
    mismatched = entra.token(tenant=OTHER_TENANT, audience=CLIENT_ID, tid=TENANT)  # issuer of another tenant
    assert await _status(server, allowed) == 200
    assert await _status(server, v1_allowed) == 200
    assert await _status(server, stranger) == 401
    assert await _status(server, mismatched) == 401


def test_multi_tenant_without_allow_list_refuses_production() -> None:
    with pytest.raises(ValidationError, match="ALLOWED_TENANTS"):
        Settings(
            _env_file=None,
            app_env="production",
            azuread={"tenant_id": "organizations", "client_id": CLIENT_ID},
            mcp={"resource_host": "https://mcp.contoso.com"},
        )


async def test_a_rotated_key_is_accepted_once_the_refresh_window_allows(
    serve: Callable[..., ServerThread], entra: EntraStandIn, keys_clock: KeysClock
) -> None:
    server = serve(azuread={"jwks_refresh_seconds": 1.5})
    new = entra.rotate()
    try:
        token = entra.token(tenant=TENANT, audience=CLIENT_ID, key=new)
        assert await _status(server, token) == 401  # keys were fetched at startup, within the window: no refresh yet
        keys_clock.now += 1.0
        assert await _status(server, token) == 401  # nor later within the window
        keys_clock.now += 0.5
        assert await _status(server, token) == 200  # the kid miss refreshes, and the new key is trusted
    finally:
        entra.keys.remove(new)


async def test_a_hundred_concurrent_unknown_kids_cause_one_fetch(
    serve: Callable[..., ServerThread], entra: EntraStandIn, keys_clock: KeysClock
) -> None:
    # 100 failing tokens from one IP: lift the per-IP throttle for unauthenticated traffic, not under test here.
    server = serve(azuread={"jwks_refresh_seconds": 1.0}, rate_limit={"unauthenticated": "1000/minute"})
    keys_clock.now += 1.0  # the startup fetch ages out of the refresh window; the clock stands still for the burst
    before = entra.jwks_fetches
    stranger = new_key()  # one unpublished key, presented under 100 different unknown kids
    tokens = [
        entra.token(
            tenant=TENANT, audience=CLIENT_ID, key=SigningKey(stranger.private, {**stranger.jwk, "kid": f"k{i}"})
        )
        for i in range(100)
    ]
    headers, body = modern_call("probe_read")
    async with httpx2.AsyncClient(base_url=server.url, limits=httpx2.Limits(max_connections=100)) as http:
        responses = await asyncio.gather(
            *(http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {t}"}) for t in tokens)
        )
    assert {r.status_code for r in responses} == {401}
    assert entra.jwks_fetches - before == 1


async def test_tokens_without_kid_or_with_other_algs_never_spend_the_refresh_window(
    serve: Callable[..., ServerThread], entra: EntraStandIn
) -> None:
    import jwt

    server = serve(azuread={"jwks_refresh_seconds": 1.0})
    await asyncio.sleep(1.1)
    before = entra.jwks_fetches
    claims = jwt.decode(entra.token(tenant=TENANT, audience=CLIENT_ID), options={"verify_signature": False})
    no_kid = jwt.encode(claims, entra.keys[0].private, algorithm="RS256")
    ps256 = jwt.encode(claims, entra.keys[0].private, algorithm="PS256", headers={"kid": "unknown"})
    assert await _status(server, no_kid) == 401
    assert await _status(server, ps256) == 401
    assert entra.jwks_fetches == before
    new = entra.rotate()
    try:  # the window is still unspent, so a genuinely new key is picked up at once
        assert await _status(server, entra.token(tenant=TENANT, audience=CLIENT_ID, key=new)) == 200
    finally:
        entra.keys.remove(new)


async def test_cached_keys_keep_working_while_the_jwks_is_down(
    serve: Callable[..., ServerThread], entra: EntraStandIn
) -> None:
    server = serve(azuread={"jwks_refresh_seconds": 0.5})
    entra.down = True
    await asyncio.sleep(0.6)
    assert await _status(server, entra.token(tenant=TENANT, audience=CLIENT_ID)) == 200
    assert await _status(server, entra.token(tenant=TENANT, audience=CLIENT_ID, key=new_key())) == 401  # not 500
    async with httpx2.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/readyz")).status_code == 200


async def test_no_keys_at_all_gives_401_and_not_ready_then_recovers(
    serve: Callable[..., ServerThread], entra: EntraStandIn
) -> None:
    entra.down = True
    server = serve(azuread={"jwks_refresh_seconds": 1.0})
    async with httpx2.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.get("/healthz")).status_code == 200
        assert await _status(server, entra.token(tenant=TENANT, audience=CLIENT_ID)) == 401
        entra.down = False
        deadline = time.monotonic() + 10
        while (await http.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "keys were not fetched again after the outage"
            await asyncio.sleep(0.2)
    assert await _status(server, entra.token(tenant=TENANT, audience=CLIENT_ID)) == 200


async def test_a_cached_validation_never_outlives_the_token(
    serve: Callable[..., ServerThread], entra: EntraStandIn
) -> None:
    server = serve(azuread={"clock_skew_seconds": 0})
    short = entra.token(tenant=TENANT, audience=CLIENT_ID, lifetime=2)
    assert await _status(server, short) == 200
    assert await _status(server, short) == 200  # served from the validated-token cache
    await asyncio.sleep(3.2)
    assert await _status(server, short) == 401


async def test_a_withdrawn_key_ends_cached_validations(serve: Callable[..., ServerThread], entra: EntraStandIn) -> None:
    server = serve(azuread={"jwks_refresh_seconds": 0.5})
    temporary = entra.rotate()
    await asyncio.sleep(0.6)
    token = entra.token(tenant=TENANT, audience=CLIENT_ID, key=temporary)
    assert await _status(server, token) == 200  # kid miss -> refresh -> trusted, and now cached
    entra.keys.remove(temporary)
    await asyncio.sleep(0.6)
    # Any kid miss refreshes the JWKS; after that the withdrawn key is gone and its cached token with it.
    assert await _status(server, entra.token(tenant=TENANT, audience=CLIENT_ID, key=new_key())) == 401
    assert await _status(server, token) == 401
