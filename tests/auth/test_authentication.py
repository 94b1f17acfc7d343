"""Every request to /mcp is authenticated: bad tokens get 401 (and no tool runs), missing scopes get 403."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.support import probe
from tests.support.calls import mcp_client, modern_call
from tests.support.entra import EntraStandIn, new_key
from tests.support.servers import ServerThread
from tests.support.values import CLIENT_ID, OTHER_TENANT, TENANT


def _unsigned(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


def _hs256_with_public_key(entra: EntraStandIn, token: str) -> str:
    """The classic algorithm-confusion attack: HMAC keyed with the server's RSA public key."""
    public_pem = (
        entra.keys[0]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    import hashlib
    import hmac

    header = {"alg": "HS256", "typ": "JWT", "kid": entra.keys[0].kid}

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(_claims(token)).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


BAD_TOKENS: dict[str, Callable[[EntraStandIn, Callable[..., str]], str | None]] = {
    "none": lambda e, t: None,
    "garbage": lambda e, t: "not-a-jwt",
    "expired": lambda e, t: t(lifetime=-600),
    "wrong_audience": lambda e, t: t(audience="00000003-0000-0000-c000-000000000000"),  # Microsoft Graph
    "wrong_issuer": lambda e, t: t(iss="https://login.evil.example/" + TENANT + "/v2.0"),
    "other_tenant": lambda e, t: t(tenant=OTHER_TENANT),
    "unsigned_alg_none": lambda e, t: _unsigned(_claims(t())),
    "hs256_public_key": lambda e, t: _hs256_with_public_key(e, t()),
    "unknown_signer": lambda e, t: e.token(tenant=TENANT, audience=CLIENT_ID, key=new_key()),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_tokens_get_401_and_the_tool_never_runs(
    app_server: ServerThread, entra: EntraStandIn, token: Callable[..., str], case: str
) -> None:
    bad = BAD_TOKENS[case](entra, token)
    headers, body = modern_call("probe_read", {"note": case})
    if bad is not None:
        headers["Authorization"] = f"Bearer {bad}"
    before = list(probe.calls)
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        response = await http.post("/mcp", json=body, headers=headers)
    assert response.status_code == 401
    www = response.headers["www-authenticate"]
    assert www.startswith("Bearer ")
    assert f'resource_metadata="{app_server.url}/.well-known/oauth-protected-resource/mcp"' in www
    assert ('error="invalid_token"' in www) is (bad is not None)  # RFC 6750 §3.1: no error without credentials
    assert probe.calls == before


async def test_a_signed_token_without_exp_is_a_clean_401_invalid_token(
    app_server: ServerThread, token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    """Validly signed, for this server, but with no lifetime: refused by the validator (exp is required), never a 500
    or an exception while building the caller from its claims."""
    no_exp = token(exp=None)
    assert "exp" not in _claims(no_exp) and "iat" in _claims(no_exp)
    headers, body = modern_call("probe_read", {"note": "no exp"})
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    legacy = {"Accept": "application/json, text/event-stream"}
    before = list(probe.calls)
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        for sent, json_body in ((headers, body), (legacy, initialize)):
            response = await http.post("/mcp", json=json_body, headers={**sent, "Authorization": f"Bearer {no_exp}"})
            assert response.status_code == 401, response.text
            www = response.headers["www-authenticate"]
            assert www.startswith("Bearer ") and 'error="invalid_token"' in www
    assert probe.calls == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info
    ]


async def test_every_http_method_needs_a_token(app_server: ServerThread) -> None:
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        for method in ("GET", "POST", "DELETE"):
            response = await http.request(method, "/mcp", headers={"Accept": "text/event-stream, application/json"})
            assert response.status_code == 401, method


async def test_missing_scope_gets_403_step_up_and_the_tool_never_runs(
    app_server: ServerThread, token: Callable[..., str]
) -> None:
    headers, body = modern_call("probe_write", {"note": "denied"})
    before = list(probe.calls)
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        response = await http.post(
            "/mcp", json=body, headers={**headers, "Authorization": f"Bearer {token('mcp.read')}"}
        )
    assert response.status_code == 403
    www = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in www
    assert f'scope="{app_server.url}/mcp/files.write"' in www  # {App ID URI}/{scope}; the URI defaults to the resource
    assert "resource_metadata=" in www
    assert probe.calls == before


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_with_the_scope_the_call_succeeds(app_server: ServerThread, token: Callable[..., str], mode: str) -> None:
    async with mcp_client(app_server.url, token("mcp.read files.write"), mode=mode) as client:
        result = await client.call_tool("probe_write", {"note": mode})
    assert not result.is_error
    assert f"write:{mode}" in probe.calls


async def test_tokens_are_accepted_only_until_they_expire(app_server: ServerThread, token: Callable[..., str]) -> None:
    # Inside the clock-skew allowance (60 s) a just-expired token still passes; far past it, it does not.
    headers, body = modern_call("probe_read")
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        recent = await http.post(
            "/mcp", json=body, headers={**headers, "Authorization": f"Bearer {token(lifetime=-5)}"}
        )
        old = await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {token(lifetime=-120)}"})
    assert recent.status_code == 200
    assert old.status_code == 401


async def test_not_yet_valid_tokens_are_refused(app_server: ServerThread, token: Callable[..., str]) -> None:
    headers, body = modern_call("probe_read")
    future = token(nbf=int(time.time()) + 600)
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        response = await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {future}"})
    assert response.status_code == 401
