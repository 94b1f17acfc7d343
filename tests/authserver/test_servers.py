"""The authorization-server facade in front of two MCP servers of one app (the first at /mcp, `SERVERS__B__*` at
/b/mcp), for real: a uvicorn server with the embedded dev issuer (one app registration per server) as its upstream.

RFC 8707 `resource` selects the server: a client signs in for B through a real browser and its token works at B
only; an unknown resource is `invalid_target` naming the resources there are; one server's scopes are refused for
the other; a code or refresh token issued for B is refused for A; consent is remembered per server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from app.main import create_app
from app.settings import Settings
from app.settings.servers import dev_client_id
from tests.support.facade import BrowserClient, Flow, query
from tests.support.oauth import Callback, chromium, require_chromium
from tests.support.servers import ServerThread, free_port
from tests.support.values import JWT_SHAPED, SUPPORT

require_chromium()
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("auth_server")]

FIRST_SECRET = "facade-first-secret-0123456789"
B_SECRET = "facade-b-secret-0123456789abcdef"
B_TOOLS = SUPPORT / "servers_b_tools"


@dataclass
class TwoServers:
    url: str
    settings: Settings
    audit: Path

    @property
    def a(self) -> str:
        return f"{self.url}/mcp"

    @property
    def b(self) -> str:
        return f"{self.url}/b/mcp"

    @property
    def b_client_id(self) -> str:
        return dev_client_id("b")

    def audit_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoServers]:
    tmp = tmp_path_factory.mktemp("facade-servers")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        _env_file=None,
        app_env="development",
        dev_issuer={"port": free_port(), "key_dir": tmp / "dev"},
        mcp={"resource_host": url},
        azuread={"client_secret": FIRST_SECRET},
        # The first server serves the repository's tools/; B its own folder, with its own secret at the dev issuer.
        servers={"b": {"path": "/b/mcp", "tools_dir": B_TOOLS, "client_secret": B_SECRET}},
        auth_server={"enabled": True, "registrations_per_ip": "1000/minute"},  # this module's clients share an IP
        rate_limit={"unauthenticated": "1000/minute"},
        audit={"sink": f"file:{tmp / 'audit.jsonl'}"},
    )
    with ServerThread(create_app(settings), port=port):
        yield TwoServers(url, settings, tmp / "audit.jsonl")


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def _initialize(url: str, token: str) -> httpx2.Response:
    """One raw `initialize` POST with `token` as the bearer token."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {
        "authorization": f"Bearer {token}",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2025-11-25",
    }
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(url, json=body, headers=headers)


async def test_the_facade_signs_a_client_in_for_b_through_a_real_browser_and_the_token_works_at_b_only(
    servers: TwoServers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with Callback() as callback:
        async with chromium() as browser:
            person = BrowserClient(servers.b, callback, browser, client_name="Servers Test Client")
            async with (
                httpx2.AsyncClient(auth=person.provider, timeout=30) as http,
                Client(streamable_http_client(servers.b, http_client=http)) as client,
            ):
                names = {tool.name for tool in (await client.list_tools()).tools}
                called = await client.call_tool("b_records", {})
                filed = await client.call_tool("b_file_record", {"title": "t"})
    # B's tools, and only B's: the first server's (whoami, search_notes) are not served at /b/mcp.
    assert names == {"b_records", "b_file_record"}
    assert called.structured_content is not None and called.structured_content["server"] == "b"
    assert called.structured_content["name"] == "Dev User"
    assert called.structured_content["scopes"] == ["records.read", "records.write"]
    assert not filed.is_error
    # The SDK asked the facade for B (RFC 8707), the consent page and the dev issuer's sign-in page both named B.
    asked = query(person.authorize_url)
    b_scopes = [f"{servers.b}/records.read", f"{servers.b}/records.write"]  # what B's 401 and PRM list
    assert asked["resource"] == servers.b and asked["scope"].split() == [*b_scopes, "offline_access"]
    assert "to use b as you?" in person.consent_text and servers.b in person.consent_text
    assert "Sign in to b" in person.sign_in_text
    # The token is Entra-shaped for B's own app registration: aud = B's client id, B's scope only.
    token = person.storage.issued[-1].access_token
    claims = _claims(token)
    assert claims["aud"] == servers.b_client_id != servers.settings.client_id
    assert claims["scp"] == "records.read records.write"
    # The same token at the first server: 401, with the challenge pointing at the first server's metadata.
    refused = await _initialize(servers.a, token)
    assert refused.status_code == 401
    challenge = refused.headers["www-authenticate"]
    assert f'resource_metadata="{servers.url}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert 'error="invalid_token"' in challenge
    assert (await _initialize(servers.b, token)).status_code == 200  # and still good at B
    # Every step audited under B's name, with no code or token.
    client_id = person.storage.client.client_id
    steps = [(r["event"], r.get("outcome"), r.get("server")) for r in servers.audit_records()
             if r.get("client_id") == client_id]  # fmt: skip
    assert steps == [
        ("authserver_registration", "registered", None),
        ("authserver_consent", "granted", "b"),
        ("authserver_code", "issued", "b"),
        ("authserver_token", "issued", "b"),
    ]
    assert not JWT_SHAPED.search(servers.audit.read_text())
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert not JWT_SHAPED.search(logged)


async def test_metadata_lists_every_servers_scopes_and_each_prm_names_the_facade(servers: TwoServers) -> None:
    async with httpx2.AsyncClient() as http:
        meta = (await http.get(f"{servers.url}/.well-known/oauth-authorization-server")).json()
        prm_a = (await http.get(f"{servers.url}/.well-known/oauth-protected-resource/mcp")).json()
        prm_b = (await http.get(f"{servers.url}/.well-known/oauth-protected-resource/b/mcp")).json()
    assert prm_a["authorization_servers"] == prm_b["authorization_servers"] == [servers.url]
    assert prm_b["resource"] == servers.b and prm_b["scopes_supported"] == [f"{servers.b}/records.read",
                                                                             f"{servers.b}/records.write"]  # fmt: skip
    assert meta["scopes_supported"] == [*prm_a["scopes_supported"], *prm_b["scopes_supported"], "offline_access"]


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=30) as client:
        yield client


async def test_an_unknown_resource_is_invalid_target_naming_the_valid_ones(
    servers: TwoServers, http: httpx2.AsyncClient
) -> None:
    flow = await Flow.registered(http, servers.url)
    for resource in (f"{servers.url}/c/mcp", f"{servers.b}/", servers.url, "https://other.example/mcp"):
        page = await flow.authorize(resource=resource)
        assert page.status_code == 400 and "invalid_target" in page.text and "Approve" not in page.text
        assert servers.a in page.text and servers.b in page.text  # the resources this facade signs in for
        assert "location" not in page.headers


async def test_one_servers_scopes_are_refused_for_the_other(servers: TwoServers, http: httpx2.AsyncClient) -> None:
    flow = await Flow.registered(http, servers.url)
    a_scope, b_scope = f"{servers.a}/notes.read", f"{servers.b}/records.read"
    for resource, scope in (
        (servers.b, a_scope),
        (servers.a, b_scope),
        (None, b_scope),
        (servers.b, f"{b_scope} {a_scope}"),
    ):
        page = await flow.authorize(resource=resource, scope=scope)
        assert page.status_code == 400 and "invalid_scope" in page.text and "Approve" not in page.text, (
            resource,
            scope,
        )
    own = await flow.authorize(resource=servers.b, scope=f"{b_scope} offline_access")
    assert own.status_code == 200 and "Approve" in own.text and "to use b as you?" in own.text
    everything = await flow.authorize(resource=servers.b)  # no scope named: all of B's, none of A's
    assert "records.write" in everything.text and "notes.read" not in everything.text


async def test_a_code_issued_for_b_is_redeemed_for_b_only(servers: TwoServers, http: httpx2.AsyncClient) -> None:
    flow = await Flow.registered(http, servers.url)
    flow_params = flow.params

    def for_b(**overrides: str | None) -> dict[str, str]:
        return flow_params(**({"resource": servers.b} | overrides))

    flow.params = for_b  # type: ignore[method-assign]  # every authorization request of this flow is for B
    answer = await flow.code()
    refused = await flow.redeem(answer["code"], resource=servers.a)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"
    assert servers.b in refused.json()["error_description"] and "access_token" not in refused.json()
    assert (await flow.redeem(answer["code"], resource=servers.b)).json()["error"] == "invalid_grant"  # used up
    good = await flow.redeem((await flow.code())["code"], resource=servers.b)
    assert good.status_code == 200, good.text
    assert _claims(good.json()["access_token"])["aud"] == servers.b_client_id
    assert {"records.read", "records.write"} == set(_claims(good.json()["access_token"])["scp"].split())
    # With no resource at the token endpoint, the code's own resource is meant.
    plain = await flow.redeem((await flow.code())["code"])
    assert plain.status_code == 200 and _claims(plain.json()["access_token"])["aud"] == servers.b_client_id


async def test_a_refresh_token_for_b_refreshes_at_b_and_is_refused_for_a(
    servers: TwoServers, http: httpx2.AsyncClient
) -> None:
    flow = await Flow.registered(http, servers.url)
    scope = f"{servers.b}/records.read offline_access"
    page = await flow.authorize(resource=servers.b, scope=scope)
    answer = query((await flow.sign_in_upstream(await flow.decide(page))).headers["location"])
    first = (await flow.redeem(answer["code"], resource=servers.b)).json()
    refresh = {"grant_type": "refresh_token", "client_id": flow.client_id}
    wrong = await flow.token(**refresh, refresh_token=first["refresh_token"], resource=servers.a)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_target"
    # The client's mistake revokes nothing: the refresh token still works for B, at B's upstream client.
    renewed = await flow.token(**refresh, refresh_token=first["refresh_token"], resource=servers.b)
    assert renewed.status_code == 200, renewed.text
    assert _claims(renewed.json()["access_token"])["aud"] == servers.b_client_id
    assert renewed.json()["refresh_token"] != first["refresh_token"]


async def test_consent_is_remembered_per_server(servers: TwoServers, http: httpx2.AsyncClient) -> None:
    flow = await Flow.registered(http, servers.url)
    await flow.sign_in_upstream(await flow.decide(await flow.authorize(resource=servers.b)))
    again = await flow.authorize(resource=servers.b)  # approved for B: straight to the upstream, as B's app
    assert again.status_code == 303
    upstream = query(again.headers["location"])
    assert upstream["client_id"] == servers.b_client_id
    assert upstream["redirect_uri"] == f"{servers.url}/oauth/callback"
    first = await flow.authorize()  # the first server was never approved for this client: asked
    assert first.status_code == 200 and "Approve" in first.text
    assert f"to use {servers.settings.mcp.server_name} as you?" in first.text
