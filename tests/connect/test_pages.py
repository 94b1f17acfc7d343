"""The connect page over plain HTTP (a cookie-keeping client plays the browser): the claims-challenge variant, the
clients that cannot be given the link, a declined link, the CSRF and browser bindings, and what stays out of logs."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp_types import ElicitResult, TextContent

from app.main import create_app
from tests.support.calls import mcp_client
from tests.support.connect import (
    CLAIMS,
    DOWNSTREAM,
    ConnectApp,
    browser_client,
    connect_link,
    connect_settings,
    through_link,
)
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread, free_port
from tests.support.tasks import TasksClient
from tests.support.values import CLIENT_ID, SUPPORT, TENANT

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _text(result: Any) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_a_claims_challenge_goes_to_entra_and_the_retry_is_served_from_the_cache(
    connect_app: ConnectApp,
) -> None:
    """Conditional Access answers the exchange with a claims challenge: the sign-in carries those claims, and the
    retry uses the tokens it brought (no new exchange, which Entra would refuse again with the old token)."""
    app = connect_app
    app.entra.consent_required, app.entra.claims_challenge = set(), CLAIMS

    async def elicit(context: Any, params: Any) -> ElicitResult:
        assert "sign in again" in params.message
        assert "Connected" in (await through_link(params.url, app.cert)).final.text
        return ElicitResult(action="accept")

    async with mcp_client(app.url, app.token(), mode="2026-07-28", elicitation_callback=elicit) as client:
        result = await client.call_tool("my_profile", {})
    assert not result.is_error, _text(result)
    (authorize,) = app.entra.authorize_requests
    assert json.loads(authorize["claims"]) == json.loads(CLAIMS)
    assert app.exchanges() == 1  # the refused one; the retry came from the cache


async def test_a_retry_before_the_sign_in_is_asked_again_with_the_same_link(connect_app: ConnectApp) -> None:
    """At 2026-07-28 the pending link rides the sealed requestState: a retry while the user has not signed in yet is
    asked again, with the same link, until they have."""
    asked: list[str] = []

    async def elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.url)
        if len(asked) == 2:  # the user accepted opening it the first time, but signed in only now
            await through_link(params.url, connect_app.cert)
        return ElicitResult(action="accept")

    async with mcp_client(connect_app.url, connect_app.token(), mode="2026-07-28", elicitation_callback=elicit) as c:
        result = await c.call_tool("my_profile", {})
    assert not result.is_error and len(asked) == 2 and asked[0] == asked[1]


async def test_a_client_without_url_mode_gets_a_tool_error_without_the_link(connect_app: ConnectApp) -> None:
    async with mcp_client(connect_app.url, connect_app.token()) as client:  # declares no elicitation at all
        result = await client.call_tool("my_profile", {})
    assert result.is_error and "URL-mode elicitation" in _text(result)
    assert "/connect/" not in _text(result)


async def test_without_the_connect_page_the_tool_error_says_consent_is_needed(
    entra_tls: tuple[EntraStandIn, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    entra, cert = entra_tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    entra.consent_required = {DOWNSTREAM}
    port = free_port()
    token = entra.token(tenant=TENANT, audience=CLIENT_ID, scopes="profile.read")
    with ServerThread(create_app(connect_settings(entra, port, connect={"enabled": False})), port=port) as server:
        async with mcp_client(server.url, token) as client:
            result = await client.call_tool("my_profile", {})
        async with httpx2.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/connect/" + "a" * 32)).status_code == 404  # nothing mounted
    assert result.is_error and "consent_required" in _text(result) and "administrator" in _text(result)


async def test_a_declined_link_ends_the_call_with_a_tool_error(connect_app: ConnectApp) -> None:
    asked: list[str] = []

    async def decline(context: Any, params: Any) -> ElicitResult:
        asked.append(params.url)
        return ElicitResult(action="decline")

    async with mcp_client(connect_app.url, connect_app.token(), mode="2026-07-28", elicitation_callback=decline) as c:
        result = await c.call_tool("my_profile", {})
    assert len(asked) == 1 and result.is_error and "declined" in _text(result)


async def test_the_form_needs_its_csrf_cookie_and_the_callback_its_browser(connect_app: ConnectApp) -> None:
    app = connect_app
    url = await connect_link(app)
    async with browser_client(app.cert) as user, browser_client(app.cert) as other:
        page = await user.get(url)
        csrf = _CSRF.search(page.text)
        assert page.status_code == 200 and csrf is not None
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        forged = await other.post(url, data={"csrf": csrf.group(1)})  # the token without its cookie
        assert forged.status_code == 403 and "CSRF" in forged.text
        started = await user.post(url, data={"csrf": csrf.group(1)})
        assert started.status_code == 303
        back = (await user.get(started.headers["location"])).headers["location"]  # the stand-in signs in at once
        stolen = await other.get(back)  # the answer replayed in another browser: refused, and left for the user
        assert stolen.status_code == 403 and "another browser" in stolen.text
        done = await user.get(back)
        assert done.status_code == 200 and "Connected" in done.text
        assert (await user.get(back)).status_code == 400  # used up
        assert (await user.get(url)).status_code == 404  # the link too


async def test_codes_states_verifiers_and_tokens_stay_out_of_the_logs(
    connect_app: ConnectApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = connect_app
    caplog.set_level(logging.DEBUG)
    url = await connect_link(app)
    visit = await through_link(url, app.cert)
    assert "Connected" in visit.final.text
    async with mcp_client(app.url, app.token()) as client:
        assert not (await client.call_tool("my_profile", {})).is_error
    (redeemed,) = [r for r in app.entra.token_requests if r.get("grant_type") == "authorization_code"]
    secrets = [redeemed["code"], redeemed["code_verifier"], app.entra.authorize_requests[0]["state"]]
    secrets += [h["authorization"].removeprefix("Bearer ") for h in app.api_seen]
    server_logs = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records if r.name != "httpx2")
    assert all(len(s) > 10 and s not in server_logs for s in secrets)
    assert app.connect_events()[-1] == ("stored", "consent_required")
    assert all(s not in app.audit.read_text() for s in secrets)


async def test_a_task_that_needs_consent_fails_saying_how_to_get_the_link(
    entra_tls: tuple[EntraStandIn, Path], profile_api: tuple[str, list[dict[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task cannot show the link and wait for the sign-in: it fails with an error that says what to do instead."""
    entra, cert = entra_tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("PROFILE_API__BASE_URL", profile_api[0])
    entra.consent_required = {DOWNSTREAM}
    port = free_port()
    settings = connect_settings(entra, port, tools={"dir": SUPPORT / "task_obo_tools"})
    token = entra.token(tenant=TENANT, audience=CLIENT_ID, scopes="profile.read")
    with ServerThread(create_app(settings), port=port) as server:
        async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http:
            client = TasksClient(http, token)
            task = await client.finished((await client.create("profile_later"))["taskId"])
    assert task["status"] == "failed" and "without a task" in json.dumps(task)
    assert "/connect/" not in json.dumps(task) and profile_api[1] == []
