"""The dev issuer's OpenID Connect for MSAL (local mode): ID tokens carrying the request's nonce, signed with
the issuer's published key, `client_info`, and the form_post response mode whose page posts only to the client."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path
from typing import Any

import jwt
import pytest

from app.catalog.discovery import discover
from app.compose.devissuer import dev_issuer_config
from app.devissuer.issuer import DevIssuer
from app.devissuer.rules import TEST_USERS
from app.settings import Settings
from tests.support.dev_oauth import DevOAuth
from tests.support.servers import ServerThread, free_port


@pytest.fixture
async def oauth(tmp_path: Path) -> AsyncIterator[DevOAuth]:
    settings = Settings(
        _env_file=None,
        app_env="development",
        dev_issuer={"port": free_port(), "key_dir": tmp_path},
        mcp={"resource_host": "http://127.0.0.1:8000"},
        rate_limit={"unauthenticated": "1000/minute"},
    )
    issuer = DevIssuer(dev_issuer_config(settings, [discover(settings.tools.dir)]))
    with ServerThread(issuer.asgi_app(), port=settings.dev_issuer.port) as server:
        client = DevOAuth(settings, server.url)
        yield client
        await client.http.aclose()


def _hidden(html: str) -> dict[str, str]:
    return {unescape(n): unescape(v) for n, v in re.findall(r'type="hidden" name="([^"]*)" value="([^"]*)"', html)}


async def _verified(oauth: DevOAuth, token: str, nonce_expected: bool) -> dict[str, Any]:
    keys = (await oauth.http.get(f"{oauth.base}/{oauth.settings.tenant_id}/discovery/v2.0/keys")).json()["keys"]
    key = jwt.PyJWK(keys[0]).key
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        audience=oauth.settings.dev_issuer.client_id,
        issuer=f"{oauth.base}/{oauth.settings.tenant_id}/v2.0",
    )
    assert ("nonce" in claims) is nonce_expected
    return claims


async def test_openid_sign_in_with_form_post_gives_an_id_token_with_the_nonce(oauth: DevOAuth) -> None:
    scope = f"{oauth.scope('mcp.read')} openid profile"
    page, fields = await oauth.page(scope=scope, nonce="n-0S6_WzA2Mj", response_mode="form_post")
    assert page.status_code == 200, page.text
    answer = await oauth.submit(fields)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    csp = answer.headers["content-security-policy"]
    assert "form-action http://127.0.0.1:49152" in csp and "script-src 'nonce-" in csp and "default-src 'none'" in csp
    assert f'action="{oauth.redirect_uri}"' in answer.text
    posted = _hidden(answer.text)
    assert set(posted) == {"code", "state"} and posted["state"] == "state-123"
    tokens = await oauth.exchange(posted["code"], client_info="1")
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    claims = await _verified(oauth, body["id_token"], nonce_expected=True)
    user = TEST_USERS[0]
    assert claims["nonce"] == "n-0S6_WzA2Mj" and claims["oid"] == user.oid and claims["name"] == user.name
    assert claims["tid"] == oauth.settings.tenant_id and claims["sub"] == user.sub
    info = json.loads(base64.urlsafe_b64decode(body["client_info"] + "=="))
    assert info == {"uid": user.oid, "utid": oauth.settings.tenant_id}  # MSAL's home account id: uid.utid
    refreshed = (await oauth.refresh(body["refresh_token"])).json()
    await _verified(oauth, refreshed["id_token"], nonce_expected=False)  # a refresh has no nonce, as at Entra
    assert "client_info" not in refreshed


async def test_without_openid_there_is_no_id_token(oauth: DevOAuth) -> None:
    tokens = (await oauth.exchange(await oauth.code(nonce="abc"), client_info="1")).json()
    assert "access_token" in tokens and "id_token" not in tokens and "client_info" not in tokens


async def test_other_response_modes_are_refused(oauth: DevOAuth) -> None:
    page, _ = await oauth.page(response_mode="fragment")
    assert page.status_code == 400 and page.json()["error"] == "invalid_request"
