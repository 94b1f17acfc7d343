"""Tokens arrive only in the Authorization header: query tokens are ignored, duplicates are a 400."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx2
import pytest

from tests.support.calls import modern_call
from tests.support.servers import ServerThread


async def _post(server: ServerThread, headers: dict[str, str], query: str = "", **kw: object) -> httpx2.Response:
    call_headers, body = modern_call("probe_read")
    async with httpx2.AsyncClient(base_url=server.url) as http:
        if "content" in kw:
            return await http.post(f"/mcp{query}", headers={**call_headers, **headers}, **kw)  # type: ignore[arg-type]
        return await http.post(f"/mcp{query}", json=body, headers={**call_headers, **headers})


async def test_a_query_string_token_is_ignored(app_server: ServerThread, token: Callable[..., str]) -> None:
    response = await _post(app_server, {}, f"?access_token={token()}")
    assert response.status_code == 401
    assert 'error="invalid_token"' not in response.headers["www-authenticate"]  # counted as no token at all


async def test_the_access_log_never_shows_a_query_string_token(
    entra: object, token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    from app.main import create_app
    from tests.support.servers import free_port
    from tests.support.values import settings_for

    port = free_port()
    app = create_app(settings_for(entra, port))  # type: ignore[arg-type]
    t = token()
    with ServerThread(app, port=port, log_level="info", access_log=True) as server:
        access = logging.getLogger("uvicorn.access")  # uvicorn's own handler; it doesn't propagate to root
        access.addHandler(caplog.handler)
        try:
            response = await _post(server, {}, f"?access_token={t}")
        finally:
            access.removeHandler(caplog.handler)
    assert response.status_code == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("POST /mcp?…" in line for line in lines)
    assert not any(t in line or "access_token" in line for line in lines)


async def test_a_token_in_header_and_query_is_a_400(app_server: ServerThread, token: Callable[..., str]) -> None:
    t = token()
    response = await _post(app_server, {"Authorization": f"Bearer {t}"}, f"?access_token={t}")
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


async def test_a_token_in_header_and_form_body_is_a_400(app_server: ServerThread, token: Callable[..., str]) -> None:
    t = token()
    response = await _post(
        app_server,
        {"Authorization": f"Bearer {t}", "Content-Type": "application/x-www-form-urlencoded"},
        content=f"access_token={t}".encode(),
    )
    assert response.status_code == 400


async def test_two_authorization_headers_are_a_400(app_server: ServerThread, token: Callable[..., str]) -> None:
    call_headers, body = modern_call("probe_read")
    headers = [*call_headers.items(), ("Authorization", f"Bearer {token()}"), ("Authorization", f"Bearer {token()}")]
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        response = await http.post("/mcp", json=body, headers=headers)
    assert response.status_code == 400


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_scheme_is_case_insensitive(app_server: ServerThread, token: Callable[..., str], scheme: str) -> None:
    assert (await _post(app_server, {"Authorization": f"{scheme} {token()}"})).status_code == 200


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Token abc", "Bearer a b", "Bearer\tabc"])
async def test_other_schemes_and_junk_get_401(app_server: ServerThread, value: str) -> None:
    response = await _post(app_server, {"Authorization": value})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_oversized_tokens_get_401_without_being_parsed(
    app_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.auth")
    huge = "eyJ" + "A" * (17 * 1024)
    response = await _post(app_server, {"Authorization": f"Bearer {huge}"})
    assert response.status_code == 401
    assert any(getattr(r, "reason", None) == "token_too_large" for r in caplog.records)
