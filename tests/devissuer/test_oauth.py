"""The dev issuer as an authorization server, over real HTTP: discovery, the sign-in form, codes, PKCE, RFC 8707
`resource` against the App ID URI (Entra's AADSTS9010010), refresh rotation, throttling, and bad input (400 JSON,
never 500). The end-to-end flows of real SDK clients through a real browser are in tests/main/test_oauth_clients.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from mcp.shared.auth import OAuthMetadata

from app.catalog.discovery import discover
from app.compose.devissuer import dev_issuer_config
from app.devissuer.issuer import DevIssuer
from app.settings import Settings
from tests.support.dev_oauth import DevOAuth, error_of, pkce, redirect_query
from tests.support.servers import ServerThread, free_port

RESOURCE_HOST = "http://127.0.0.1:8000"


@pytest.fixture(scope="session")
def dev_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dev-issuer-key")


def dev_settings(key_dir: Path, **sections: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        "app_env": "development",
        "dev_issuer": {"port": free_port(), "key_dir": key_dir},
        "mcp": {"resource_host": RESOURCE_HOST},
        "rate_limit": {"unauthenticated": "1000/minute"},
    }
    for section, value in sections.items():
        values[section] = {**values.get(section, {}), **value}
    return Settings(_env_file=None, **values)


@contextmanager
def running(settings: Settings) -> Iterator[str]:
    issuer = DevIssuer(dev_issuer_config(settings, [discover(settings.tools.dir)]))
    with ServerThread(issuer.asgi_app(), port=settings.dev_issuer.port) as server:
        yield server.url


@pytest.fixture
async def oauth(dev_key_dir: Path) -> AsyncIterator[DevOAuth]:
    settings = dev_settings(dev_key_dir)
    with running(settings) as base:
        client = DevOAuth(settings, base)
        yield client
        await client.http.aclose()


async def test_rfc8414_and_openid_discovery_describe_the_authorization_server(oauth: DevOAuth) -> None:
    tenant, issuer = oauth.settings.tenant_id, f"{oauth.base}/{oauth.settings.tenant_id}/v2.0"
    paths = (
        f"/.well-known/oauth-authorization-server/{tenant}/v2.0",  # RFC 8414 (path insertion)
        f"/.well-known/openid-configuration/{tenant}/v2.0",  # RFC 8414 section 5
        f"/{tenant}/v2.0/.well-known/openid-configuration",  # OpenID Connect Discovery (as at Entra)
    )
    docs = [(await oauth.http.get(oauth.base + path)).json() for path in paths]
    assert docs[0] == docs[1] == docs[2]
    doc = OAuthMetadata.model_validate(docs[0])  # the Python SDK's own model of it
    assert str(doc.issuer) == issuer
    assert str(doc.authorization_endpoint) == oauth.authorize_url and str(doc.token_endpoint) == oauth.token_url
    assert doc.code_challenge_methods_supported == ["S256"]
    assert doc.grant_types_supported == ["authorization_code", "refresh_token"]
    assert doc.token_endpoint_auth_methods_supported == ["none"]
    assert doc.registration_endpoint is None  # no DCR: the client is pre-registered, as at Entra


async def test_a_sign_in_issues_a_code_and_the_token_is_minted_like_make_token(oauth: DevOAuth) -> None:
    page, fields = await oauth.page()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert ("grant_scope", "mcp.read") in fields.checked and ("grant_scope", "notes.read") in fields.checked
    assert ("grant_scope", "notes.write") in fields.options and ("grant_scope", "notes.write") not in fields.checked
    assert ("grant_role", "mcp.read.all") in fields.options  # roles the tools declare, none pre-selected
    answer = await oauth.submit(fields, extra=[("grant_role", "mcp.read.all")])
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(oauth.redirect_uri + "?")
    query = redirect_query(answer)
    assert query["state"] == "state-123" and set(query) == {"code", "state"}
    tokens = await oauth.exchange(query["code"])
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == oauth.settings.dev_issuer.token_seconds
    assert body["scope"].split() == [*oauth.scope("mcp.read", "notes.read").split()]
    assert body["refresh_token"] and "." not in body["refresh_token"]  # opaque
    assert tokens.headers["cache-control"] == "no-store"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == oauth.settings.client_id and claims["ver"] == "2.0"  # v2: aud is the client id
    assert claims["scp"] == "mcp.read notes.read" and claims["roles"] == ["mcp.read.all"]
    assert claims["azp"] == oauth.settings.dev_issuer.client_id and claims["name"] == "Dev User"


async def test_plain_or_missing_pkce_is_refused_before_any_code_is_issued(oauth: DevOAuth) -> None:
    for overrides, needle in (
        ({"code_challenge_method": "plain", "code_challenge": oauth.verifier}, "only S256"),
        ({"code_challenge_method": None}, "PKCE is required"),
        ({"code_challenge": None}, "PKCE is required"),
        ({"code_challenge": "short"}, "43 chars"),
    ):
        response, fields = await oauth.page(**overrides)
        status, error, description = error_of(response)
        assert (status, error) == (400, "invalid_request") and needle in description, overrides
        assert not fields.hidden  # no form, so nothing to submit
    # A form carried back with plain PKCE is refused as well (and its form token no longer matches either).
    _, fields = await oauth.page()
    fields.hidden = [(k, "plain" if k == "code_challenge_method" else v) for k, v in fields.hidden]
    answer = await oauth.submit(fields)
    assert answer.status_code == 400 and "only S256" in answer.json()["error_description"]


async def test_a_resource_that_is_not_the_app_id_uri_is_refused_at_authorize_and_at_token(oauth: DevOAuth) -> None:
    response, _ = await oauth.page(resource="http://127.0.0.1:8000/other")
    status, error, description = error_of(response)
    assert (status, error) == (400, "invalid_target")
    assert "AADSTS9010010" in description and oauth.settings.app_id_uri in description
    code = await oauth.code()
    refused = await oauth.exchange(code, resource="api://something-else")
    assert error_of(refused)[:2] == (400, "invalid_target")
    assert (await oauth.exchange(code)).status_code == 400  # and the code is used up


async def test_with_an_api_app_id_uri_the_resource_url_is_refused_with_the_fix(dev_key_dir: Path) -> None:
    """AZUREAD__APP_ID_URI=api://{client_id}: what breaks is every client that sends RFC 8707 `resource`."""
    settings = dev_settings(dev_key_dir, azuread={"app_id_uri": "api://{client_id}"})
    assert settings.app_id_uri == f"api://{settings.client_id}"
    with running(settings) as base:
        oauth = DevOAuth(settings, base)
        assert oauth.scope("mcp.read", offline=False) == f"api://{settings.client_id}/mcp.read"
        response, _ = await oauth.page()  # resource = the server's URL, as MCP clients send it
        status, error, description = error_of(response)
        assert (status, error) == (400, "invalid_target")
        assert "AADSTS9010010" in description and f"Application ID URI to {settings.resource}" in description
        code = await oauth.code(resource=None)  # a client that sends no resource still signs in, as at Entra
        assert (await oauth.exchange(code, resource=None)).status_code == 200
        await oauth.http.aclose()


async def test_codes_are_single_use_and_bound_to_the_verifier_redirect_and_client(oauth: DevOAuth) -> None:
    code = await oauth.code()
    assert error_of(await oauth.exchange(code, code_verifier=pkce()[0]))[:2] == (400, "invalid_grant")
    assert "already used" in error_of(await oauth.exchange(code))[2]  # a failed attempt used it up too
    code = await oauth.code()
    other_redirect = "http://127.0.0.1:49153/callback"
    assert error_of(await oauth.exchange(code, redirect_uri=other_redirect))[:2] == (400, "invalid_grant")
    code = await oauth.code()
    assert error_of(await oauth.exchange(code, client_id="someone-else"))[:2] == (400, "invalid_client")
    code = await oauth.code()
    first = await oauth.exchange(code)
    assert first.status_code == 200
    replay = await oauth.exchange(code)
    assert error_of(replay)[:2] == (400, "invalid_grant") and "revoked" in error_of(replay)[2]
    # The replay revoked what the code had issued: its refresh token no longer works.
    assert error_of(await oauth.refresh(first.json()["refresh_token"]))[:2] == (400, "invalid_grant")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        "http://evil.example:8080/callback",
        "http://192.168.1.20:8080/callback",
        "https://127.0.0.1:8080/callback",
        "http://127.0.0.1:8080/callback#fragment",
        "http://user@127.0.0.1:8080/callback",
        "http://[::1:8080/callback",
        "http://127.0.0.1:port/callback",
        "vscode://redirect",
        "",
    ],
)
async def test_a_redirect_uri_that_is_not_loopback_is_refused(oauth: DevOAuth, redirect_uri: str) -> None:
    response, _ = await oauth.page(redirect_uri=redirect_uri)
    assert error_of(response)[:2] == (400, "invalid_request")
    assert "location" not in response.headers  # never redirected anywhere


@pytest.mark.parametrize("redirect_uri", ["http://127.0.0.1:1/cb", "http://[::1]:65535/cb?x=1", "http://localhost/cb"])
async def test_loopback_redirect_uris_on_any_port_are_accepted(oauth: DevOAuth, redirect_uri: str) -> None:
    oauth.redirect_uri = redirect_uri
    assert (await oauth.exchange(await oauth.code())).status_code == 200


async def test_refresh_tokens_rotate_and_a_replayed_one_revokes_the_sign_in(oauth: DevOAuth) -> None:
    first = (await oauth.exchange(await oauth.code())).json()
    second = await oauth.refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    renewed = second.json()
    assert renewed["refresh_token"] != first["refresh_token"] and renewed["access_token"] != first["access_token"]
    wider = await oauth.refresh(renewed["refresh_token"], scope=oauth.scope("notes.write", offline=False))
    assert error_of(wider)[:2] == (400, "invalid_scope")  # refused, and the refresh token stays usable
    narrower = await oauth.refresh(renewed["refresh_token"], scope=oauth.scope("mcp.read", offline=False))
    assert narrower.status_code == 200
    assert jwt.decode(narrower.json()["access_token"], options={"verify_signature": False})["scp"] == "mcp.read"
    # The first refresh token again: refused, and everything from that sign-in is revoked, the latest one too.
    replay = await oauth.refresh(first["refresh_token"])
    assert error_of(replay)[:2] == (400, "invalid_grant") and "revoked" in error_of(replay)[2]
    assert error_of(await oauth.refresh(narrower.json()["refresh_token"]))[:2] == (400, "invalid_grant")


async def test_without_offline_access_there_is_no_refresh_token_as_at_entra(oauth: DevOAuth) -> None:
    code = await oauth.code(scope=oauth.scope("mcp.read", offline=False))
    body = (await oauth.exchange(code)).json()
    assert "refresh_token" not in body and "offline_access" not in body["scope"]


async def test_the_form_is_checked_again_on_post(oauth: DevOAuth) -> None:
    _, fields = await oauth.page(resource=None)
    # Adding what the client did not send (here a resource) or changing what it did breaks the form token.
    for tampered in (
        [*fields.hidden, ("resource", oauth.settings.resource)],
        [(k, oauth.scope("notes.write") if k == "scope" else v) for k, v in fields.hidden],
        [(k, v) for k, v in fields.hidden if k != "form_token"],
    ):
        original, fields.hidden = fields.hidden, tampered
        assert error_of(await oauth.submit(fields))[:2] == (400, "invalid_request")
        fields.hidden = original
    evil = {"origin": "http://evil.example"}
    assert error_of(await oauth.submit(fields, headers=evil))[:2] == (403, "invalid_request")
    assert error_of(await oauth.submit(fields, headers={"sec-fetch-site": "cross-site"}))[0] == 403
    granted = [("grant_scope", "files.admin")]  # not offered
    assert error_of(await oauth.submit(fields, extra=granted))[:2] == (400, "invalid_request")
    fields.checked = [(k, v) for k, v in fields.checked if k != "user"] + [("user", "not-a-test-user")]
    assert error_of(await oauth.submit(fields))[:2] == (400, "invalid_request")
    fields.checked = [("user", "22222222-2222-4222-8222-222222222222")]  # nothing granted at all
    assert "at least one" in error_of(await oauth.submit(fields))[2]


async def test_the_sign_in_page_escapes_what_the_client_sent_and_cannot_be_framed(oauth: DevOAuth) -> None:
    response, fields = await oauth.page(state='"><script>alert(1)</script>')
    assert "<script>" not in response.text and "&lt;script&gt;" in response.text
    assert ("state", '"><script>alert(1)</script>') in fields.hidden  # carried back exactly as sent
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self' http://127.0.0.1:49152" in csp  # the post, and the redirect to the client only
    assert response.headers["x-frame-options"] == "DENY" and response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("scope", "needle"),
    [
        ("mcp.read", "Microsoft Graph"),
        ("api://other-app/mcp.read", "not a scope of this server"),
        ("openid offline_access", "no scope of this server"),
        (None, "no scope of this server"),
    ],
)
async def test_scopes_must_be_this_servers_in_entra_form(oauth: DevOAuth, scope: str | None, needle: str) -> None:
    response, _ = await oauth.page(scope=scope)
    status, error, description = error_of(response)
    assert (status, error) == (400, "invalid_scope") and needle in description


async def test_bad_token_requests_are_400_json_never_500(oauth: DevOAuth) -> None:
    url, client_id = oauth.token_url, oauth.settings.dev_issuer.client_id
    cases: list[tuple[dict[str, Any], str]] = [
        ({"json": {"grant_type": "authorization_code"}}, "invalid_request"),  # not a form
        ({"data": {"grant_type": "password", "client_id": client_id}}, "unsupported_grant_type"),
        ({"data": {"grant_type": "client_credentials", "client_id": client_id}}, "unsupported_grant_type"),
        ({"data": {"client_id": client_id}}, "invalid_request"),
        ({"data": {"grant_type": "authorization_code", "client_id": client_id}}, "invalid_request"),
        ({"data": {"grant_type": "authorization_code", "client_id": client_id, "code": "nope"}}, "invalid_grant"),
        ({"data": {"grant_type": "refresh_token", "client_id": client_id, "refresh_token": "x"}}, "invalid_grant"),
        ({"data": {"grant_type": "refresh_token", "refresh_token": "x"}}, "invalid_request"),
        ({"data": {"grant_type": "refresh_token", "client_id": client_id, "client_secret": "s"}}, "invalid_client"),
        ({"content": "grant_type=a&grant_type=b", "headers": _FORM}, "invalid_request"),
        ({"content": b"grant_type=\xff\xfe", "headers": _FORM}, "invalid_request"),
        ({"content": "a=" + "x" * 20_000, "headers": _FORM}, "invalid_request"),
    ]
    for request, expected in cases:
        response = await oauth.http.post(url, **request)
        assert response.status_code == 400, (request, response.text)
        assert response.json()["error"] == expected and response.json()["error_description"], request


_FORM = {"content-type": "application/x-www-form-urlencoded"}
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
_PARAMS = st.dictionaries(
    st.sampled_from(["client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge",
                     "code_challenge_method", "resource", "grant_type", "code", "code_verifier", "refresh_token"]),
    _TEXT,
)  # fmt: skip


@hypothesis_settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=_PARAMS)
async def test_any_input_to_the_new_endpoints_is_answered_without_a_500(
    oauth: DevOAuth, params: dict[str, str]
) -> None:
    for response in (
        await oauth.http.get(oauth.authorize_url, params=params),
        await oauth.http.post(oauth.authorize_url, data=params),
        await oauth.http.post(oauth.token_url, data=params),
    ):
        assert response.status_code in (200, 400, 403), response.text
        if response.status_code != 200:
            assert response.json()["error"] and response.json()["error_description"]


async def test_the_dev_issuer_is_throttled_per_ip_and_answers_loopback_hosts_only(dev_key_dir: Path) -> None:
    settings = dev_settings(dev_key_dir, rate_limit={"unauthenticated": "5/minute"})
    with running(settings) as base:
        async with httpx2.AsyncClient(base_url=base) as http:
            foreign = await http.get(f"/{settings.tenant_id}/discovery/v2.0/keys", headers={"host": "evil.example"})
            assert foreign.status_code == 421  # DNS rebinding onto the sign-in page: refused (and not counted)
            statuses = [(await http.get(f"/{settings.tenant_id}/discovery/v2.0/keys")).status_code for _ in range(5)]
            assert statuses == [200] * 5
            throttled = await http.post(f"/{settings.tenant_id}/oauth2/v2.0/token", data={"grant_type": "x"})
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    assert throttled.json()["error"] == "temporarily_unavailable"
    assert "RATE_LIMIT__UNAUTHENTICATED=5/minute" in throttled.json()["error_description"]
