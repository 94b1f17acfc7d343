"""On-behalf-of consent recovered end to end, in headless Chromium: the SDK client's first call yields the URL-mode
elicitation (2025-11-25: the -32042 error; 2026-07-28: the input-required round), the browser opens the connect page,
signs in at the Entra stand-in and consents, the same user is verified, and the retry succeeds with a downstream
token the server obtained (never the caller's). Another user opening the link is refused and nothing is stored."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
from mcp.shared.exceptions import MCPError, UrlElicitationRequiredError
from mcp_types import URL_ELICITATION_REQUIRED, ElicitCompleteNotification, ElicitRequestURLParams, ElicitResult

from tests.support.calls import mcp_client
from tests.support.connect import ALICE, BOB, DOWNSTREAM, ConnectApp, in_chromium
from tests.support.oauth import chromium, require_chromium
from tests.support.values import TENANT

require_chromium()
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _consent_page(connect_app: ConnectApp) -> None:
    connect_app.entra.interactive = True  # the stand-in shows a sign-in page with a Consent button


PROFILE = {"displayName": "Alice Example", "mail": "alice@contoso.example", "jobTitle": "SRE"}


async def _not_asked(context: Any, params: Any) -> ElicitResult:
    raise AssertionError("a handshake-era URL elicitation comes as the -32042 error, not as a request")


def _only_elicitation(error: MCPError) -> ElicitRequestURLParams:
    assert error.error.code == URL_ELICITATION_REQUIRED
    (elicitation,) = UrlElicitationRequiredError.from_error(error.error).elicitations
    assert elicitation.mode == "url" and elicitation.elicitation_id
    return elicitation


def _assert_bare_link(app: ConnectApp, url: str) -> None:
    """The link is this server's connect page with one opaque id: no user, tenant, scope or token in it."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == app.url and not parts.query and not parts.fragment
    assert parts.path.startswith("/connect/") and len(parts.path.removeprefix("/connect/")) == 32
    for private in (ALICE, TENANT, "graph.microsoft.com", "User.Read"):
        assert private not in url


async def test_handshake_era_call_gets_the_url_error_and_the_retry_succeeds_after_consent(
    connect_app: ConnectApp,
) -> None:
    app, completed = connect_app, []

    async def messages(message: Any) -> None:
        if isinstance(message, ElicitCompleteNotification):
            completed.append(message.params.elicitation_id)

    inbound = app.token()
    async with mcp_client(app.url, inbound, elicitation_callback=_not_asked, message_handler=messages) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("my_profile", {})
        elicitation = _only_elicitation(refused.value)
        _assert_bare_link(app, elicitation.url)
        async with chromium(ignore_https_errors=True) as browser:
            page = await in_chromium(browser, elicitation.url)
        assert "Connected" in page
        with anyio.fail_after(10):  # the session is told (notifications/elicitation/complete), with the same id
            while not completed:
                await anyio.sleep(0.05)
        assert completed == [elicitation.elicitation_id]
        retried = await client.call_tool("my_profile", {})

    assert not retried.is_error and retried.structured_content == PROFILE
    # The browser went to Entra as this server's app, for the downstream scope, with PKCE and state, to our callback.
    (authorize,) = app.entra.authorize_requests
    assert DOWNSTREAM in authorize["scope"].split() and "openid" in authorize["scope"].split()
    assert authorize["code_challenge_method"] == "S256" and authorize["state"] and authorize["nonce"]
    assert authorize["redirect_uri"] == f"{app.url}/connect/callback" and "login_hint" not in authorize
    # The downstream API saw only a token this server obtained, never the caller's.
    assert app.api_seen and all(h["authorization"].startswith("Bearer downstream-") for h in app.api_seen)
    assert all(inbound not in " ".join(h.values()) for h in app.api_seen)


async def test_modern_era_round_asks_for_the_url_and_the_retry_succeeds_after_consent(
    connect_app: ConnectApp,
) -> None:
    app, asked = connect_app, []
    async with chromium(ignore_https_errors=True) as browser:

        async def elicit(context: Any, params: Any) -> ElicitResult:
            asked.append(params)
            assert "Connected" in await in_chromium(browser, params.url)
            return ElicitResult(action="accept")

        async with mcp_client(app.url, app.token(), mode="2026-07-28", elicitation_callback=elicit) as client:
            result = await client.call_tool("my_profile", {})

    assert not result.is_error and result.structured_content == PROFILE
    (params,) = asked  # one input-required round: the URL elicitation; the retry then succeeded
    assert isinstance(params, ElicitRequestURLParams) and params.elicitation_id is None  # none at 2026-07-28
    _assert_bare_link(app, params.url)
    assert app.api_seen and all(h["authorization"].startswith("Bearer downstream-") for h in app.api_seen)


async def test_another_user_opening_the_link_is_refused_and_nothing_is_stored(connect_app: ConnectApp) -> None:
    app = connect_app
    async with mcp_client(app.url, app.token(), elicitation_callback=_not_asked) as alice:
        with pytest.raises(MCPError) as refused:
            await alice.call_tool("my_profile", {})
        first = _only_elicitation(refused.value)
        app.entra.signed_in_oid = BOB  # Bob opens Alice's link and signs in as himself
        async with chromium(ignore_https_errors=True) as browser:
            page = await in_chromium(browser, first.url)
        assert "different account" in page and "nothing was saved" in page
        with pytest.raises(MCPError) as again:  # nothing was stored for Alice: her retry still needs consent
            await alice.call_tool("my_profile", {})
    second = _only_elicitation(again.value)
    assert (second.url, second.elicitation_id) == (first.url, first.elicitation_id)  # the link is still hers to use
    # Bob's tokens were not kept either: his own call exchanges at Entra rather than finding them in the cache.
    before = app.exchanges()
    async with mcp_client(app.url, app.token(BOB)) as bob:
        assert not (await bob.call_tool("my_profile", {})).is_error
    assert app.exchanges() == before + 1
    redeemed = [r for r in app.entra.token_requests if r.get("grant_type") == "authorization_code"]
    assert len(redeemed) == 1 and parse_qs(urlsplit(first.url).query) == {}
    assert app.connect_events() == [
        ("requested", "consent_required"),
        ("started", "consent_required"),
        ("refused", "other_user"),
    ]
    audit = app.audit.read_text()
    assert first.url.rsplit("/", 1)[-1] not in audit and redeemed[0]["code"] not in audit
