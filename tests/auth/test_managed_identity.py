"""Secretless: this server authenticates to Entra with its managed identity's token as the client assertion.

On-behalf-of (MSAL) and the facade's upstream token calls both send the token the managed identity got for
`api://AzureADTokenExchange` (from an App Service / Container Apps identity endpoint, or AKS workload identity), and
no client secret; the Entra stand-in verifies it as Entra would against the federated credential. A broken identity
is a clear tool error or OAuth error, never a traceback or a token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from app.auth.assertion import AssertionUnavailable, ManagedIdentityAssertion, token_exchange_audience
from app.main import create_app
from tests.support.calls import mcp_client
from tests.support.entra import EXCHANGE, MINTED, EntraStandIn, new_key
from tests.support.facade import Flow
from tests.support.identity import PATH, SYSTEM_ASSIGNED, USER_ASSIGNED, IdentityStandIn
from tests.support.servers import ServerThread, free_port
from tests.support.values import CLIENT_ID, JWT_SHAPED, REPO, TENANT, settings_for

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PLATFORM_VARIABLES = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
                      "MSI_ENDPOINT", "MSI_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID",
                      "AZURE_AUTHORITY_HOST")  # fmt: skip


def _platform(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    """Exactly these managed identity variables, as the hosting platform would set them."""
    for name in PLATFORM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def _identity_endpoint(entra: EntraStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityStandIn]:
    stand_in = IdentityStandIn(entra, TENANT)
    with ServerThread(stand_in.app()) as server:
        stand_in.endpoint = server.url + PATH
        _platform(monkeypatch, **stand_in.environ())
        yield stand_in


@pytest.fixture
def obo(
    entra_tls: tuple[EntraStandIn, Path], profile_api: tuple[str, list[dict[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> EntraStandIn:
    """The https Entra stand-in MSAL needs, trusted, and `my_profile`'s downstream API."""
    entra, cert = entra_tls
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # MSAL's and azure-identity's requests sessions
    monkeypatch.setenv("PROFILE_API__BASE_URL", profile_api[0])
    return entra


@pytest.fixture
def identity(obo: EntraStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityStandIn]:
    yield from _identity_endpoint(obo, monkeypatch)


async def _my_profile(entra: EntraStandIn, calls: int = 1, **azuread: Any) -> list[Any]:
    port = free_port()
    settings = settings_for(entra, port, azuread={"managed_identity": True} | azuread, tools={"dir": REPO / "tools"})
    inbound = entra.token(tenant=TENANT, audience=CLIENT_ID, scopes="profile.read")
    with ServerThread(create_app(settings), port=port) as server:
        async with mcp_client(server.url, inbound) as client:
            return [await client.call_tool("my_profile", {}) for _ in range(calls)]


def _obo_requests(entra: EntraStandIn) -> list[dict[str, str]]:
    return [r for r in entra.token_requests if r.get("requested_token_use") == "on_behalf_of"]


async def test_obo_authenticates_with_a_user_assigned_identitys_token_and_no_secret(
    obo: EntraStandIn, identity: IdentityStandIn
) -> None:
    results = await _my_profile(obo, calls=2, managed_identity_client_id=USER_ASSIGNED[0])
    assert [r.is_error for r in results] == [False, False], results[0].content
    assert results[0].structured_content and results[0].structured_content["displayName"] == "Alice Example"
    (exchange,) = _obo_requests(obo)  # the second call came from MSAL's cache
    assert "client_secret" not in exchange and exchange["client_assertion_type"] == JWT_BEARER
    claims = obo.verify_exchange(exchange["client_assertion"], TENANT)
    assert claims["sub"] == USER_ASSIGNED[1]  # the federated credential's subject: the identity's object id
    assert identity.requests == [{"api-version": "2019-08-01", "resource": EXCHANGE, "client_id": USER_ASSIGNED[0]}]


async def test_obo_with_aks_workload_identity_exchanges_the_service_account_token_first(
    obo: EntraStandIn, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """azure-identity's workload identity: the projected service-account token gets the identity (AZURE_CLIENT_ID)
    its `api://AzureADTokenExchange` token at Entra, which is then this server's client assertion."""
    cluster = new_key()
    claims = {"iss": "https://oidc.aks.example/tenant/issuer/", "sub": "system:serviceaccount:mcp:secure-mcp-server",
              "aud": EXCHANGE, "exp": int(time.time()) + 3600}  # fmt: skip
    service_account = jwt.encode(claims, cluster.private, algorithm="RS256")
    MINTED.append(service_account)
    (token_file := tmp_path / "azure-identity-token").write_text(service_account)
    obo.federated[USER_ASSIGNED[0]] = (service_account, USER_ASSIGNED[1])
    _platform(
        monkeypatch, AZURE_FEDERATED_TOKEN_FILE=str(token_file), AZURE_CLIENT_ID=USER_ASSIGNED[0],
        AZURE_TENANT_ID=TENANT, AZURE_AUTHORITY_HOST=obo.base,
    )  # fmt: skip

    (result,) = await _my_profile(obo)
    assert not result.is_error, result.content
    (workload,) = [r for r in obo.token_requests if r.get("grant_type") == "client_credentials"]
    assert workload["client_id"] == USER_ASSIGNED[0] and workload["client_assertion"] == service_account
    assert workload["scope"] == f"{EXCHANGE}/.default"
    (exchange,) = _obo_requests(obo)
    assert "client_secret" not in exchange and exchange["client_id"] == CLIENT_ID
    assert obo.verify_exchange(exchange["client_assertion"], TENANT)["sub"] == USER_ASSIGNED[1]


async def test_a_failing_identity_endpoint_is_a_clear_tool_error_without_traceback_or_token(
    obo: EntraStandIn, identity: IdentityStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # as production logs (LOG_LEVEL=INFO)
    identity.failing = True
    (result,) = await _my_profile(obo)
    assert result.is_error
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert "could not authenticate to Entra" in text and "could not provide a client assertion" in text
    assert "IDENTITY_ENDPOINT" in text and "Traceback" not in text and not JWT_SHAPED.search(text)
    assert _obo_requests(obo) == []  # no exchange without this server's credential
    assert identity.requests  # the endpoint was asked (and answered 500)
    records = [r for r in caplog.records if r.name.startswith(("app", "mcp"))]
    assert [r for r in records if r.exc_info or r.exc_text] == []
    assert any(r.name == "app.auth.assertion" and getattr(r, "error", "") for r in records)
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert "Traceback" not in logged and not JWT_SHAPED.search(logged)


# ---- the assertion itself: cached while fresh, refreshed 5 minutes before it expires, one fetch at a time ---------
class FakeCredential:
    """A TokenCredential whose tokens expire `expires_in` seconds after they are issued."""

    def __init__(self, expires_in: float = 3600, fail: Exception | None = None) -> None:
        self.expires_in, self.fail, self.scopes = expires_in, fail, list[str]()
        self.release = threading.Event()
        self.release.set()

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.release.wait(10)
        self.scopes.append(scopes[0])
        if self.fail is not None:
            raise self.fail
        return AccessToken(f"assertion-{len(self.scopes)}", int(time.time() + self.expires_in))


def test_the_assertion_is_reused_while_more_than_five_minutes_from_expiry() -> None:
    credential = FakeCredential(expires_in=301 + 5)  # 5 s of slack for a slow machine
    assertion = ManagedIdentityAssertion(credential)
    assert [assertion(), assertion(), assertion()] == ["assertion-1"] * 3
    assert credential.scopes == [f"{EXCHANGE}/.default"]


def test_the_assertion_is_refreshed_within_five_minutes_of_expiry() -> None:
    credential = FakeCredential(expires_in=299)
    assertion = ManagedIdentityAssertion(credential)
    assert [assertion(), assertion()] == ["assertion-1", "assertion-2"]


def test_concurrent_callers_wait_for_one_fetch() -> None:
    credential = FakeCredential()
    credential.release.clear()
    assertion = ManagedIdentityAssertion(credential)
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(assertion())) for _ in range(5)]
    for thread in threads:
        thread.start()
    credential.release.set()
    for thread in threads:
        thread.join(10)
    assert got == ["assertion-1"] * 5 and len(credential.scopes) == 1


def test_an_early_refresh_that_fails_keeps_the_assertion_that_is_still_valid() -> None:
    credential = FakeCredential(expires_in=299)  # due for refresh, valid for minutes yet
    assertion = ManagedIdentityAssertion(credential)
    assert assertion() == "assertion-1"
    credential.fail = ClientAuthenticationError("the identity endpoint is restarting")
    assert assertion() == "assertion-1" and len(credential.scopes) == 2  # it did try


@pytest.mark.parametrize(("retry_seconds", "fetches"), [(10.0, 1), (0.0, 2)])
def test_a_failure_is_repeated_without_asking_again_for_retry_seconds(retry_seconds: float, fetches: int) -> None:
    credential = FakeCredential(fail=ClientAuthenticationError("no identity"))
    assertion = ManagedIdentityAssertion(credential, retry_seconds=retry_seconds)
    for _ in range(2):
        with pytest.raises(AssertionUnavailable, match="could not provide a client assertion"):
            assertion()
    assert len(credential.scopes) == fetches


def test_a_failure_names_its_type_and_what_to_check_never_the_credentials_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """azure-identity's text may echo what was sent (an assertion): neither the error nor the log line repeats it,
    only Entra's AADSTS code."""
    echoed = jwt.encode({"sub": "x"}, "a-throwaway-hmac-key-for-this-test", algorithm="HS256")
    refused = ClientAuthenticationError(f"AADSTS70021 assertion {echoed}")
    with caplog.at_level(logging.WARNING, logger="app.auth.assertion"), pytest.raises(AssertionUnavailable) as raised:
        ManagedIdentityAssertion(FakeCredential(fail=refused))()
    message = str(raised.value)
    assert "(ClientAuthenticationError)" in message and "AZURE_FEDERATED_TOKEN_FILE" in message
    assert "eyJ" not in message and raised.value.__cause__ is None
    logged = [(r.getMessage(), getattr(r, "aadsts", None)) for r in caplog.records]
    assert logged == [("the managed identity could not provide a client assertion", "AADSTS70021")]
    assert echoed not in caplog.text


def test_sovereign_clouds_have_their_own_token_exchange_audience() -> None:
    assert token_exchange_audience("https://login.microsoftonline.com/") == EXCHANGE
    assert token_exchange_audience("https://login.microsoftonline.us/") == f"{EXCHANGE}USGov"
    assert token_exchange_audience("https://login.chinacloudapi.cn/") == f"{EXCHANGE}China"


# ---- the facade: its upstream token calls carry the managed identity's assertion ----------------------------------
@pytest.fixture
def facade_entra(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[EntraStandIn, IdentityStandIn]]:
    """An Entra stand-in of this test's own (its token requests are this test's alone) and an identity endpoint."""
    entra = EntraStandIn()
    with ServerThread(entra.app()) as server:
        entra.base = server.url + "/"
        for identity in _identity_endpoint(entra, monkeypatch):
            yield entra, identity


def _facade(entra: EntraStandIn) -> ServerThread:
    port = free_port()
    settings = settings_for(
        entra, port, azuread={"managed_identity": True}, auth_server={"enabled": True},
        rate_limit={"unauthenticated": "1000/minute"},
    )  # fmt: skip
    return ServerThread(create_app(settings), port=port)


async def test_the_facade_redeems_and_refreshes_upstream_with_the_identitys_assertion(
    facade_entra: tuple[EntraStandIn, IdentityStandIn],
) -> None:
    entra, identity = facade_entra
    with _facade(entra) as server:
        async with httpx2.AsyncClient(timeout=30) as http:
            flow = await Flow.registered(http, server.url)
            tokens = await flow.redeem((await flow.code())["code"])
            assert tokens.status_code == 200, tokens.text
            refreshed = await flow.token(
                grant_type="refresh_token", refresh_token=tokens.json()["refresh_token"], client_id=flow.client_id
            )
            assert refreshed.status_code == 200, refreshed.text
    upstream = [r for r in entra.token_requests if r["grant_type"] in ("authorization_code", "refresh_token")]
    assert [r["grant_type"] for r in upstream] == ["authorization_code", "refresh_token"]
    for request in upstream:
        assert "client_secret" not in request and request["client_assertion_type"] == JWT_BEARER
        assert entra.verify_exchange(request["client_assertion"], TENANT)["sub"] == SYSTEM_ASSIGNED[1]
    assert len(identity.requests) == 1  # one assertion served both, while fresh


async def test_a_failing_identity_gives_the_client_an_oauth_error_not_a_500(
    facade_entra: tuple[EntraStandIn, IdentityStandIn], caplog: pytest.LogCaptureFixture
) -> None:
    entra, identity = facade_entra
    identity.failing = True
    with _facade(entra) as server:
        async with httpx2.AsyncClient(timeout=30) as http:
            flow = await Flow.registered(http, server.url)
            answer = await flow.code()  # the callback sends the browser back to the client, with the error
    assert answer["error"] == "server_error" and "code" not in answer
    assert [r for r in entra.token_requests if r["grant_type"] == "authorization_code"] == []
    failed = [r for r in caplog.records if r.name == "app.auth.assertion"]
    assert len(failed) == 1 and not JWT_SHAPED.search(repr(failed[0].__dict__))
