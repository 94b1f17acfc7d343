"""The Microsoft Graph client against the HTTPS Graph stand-in: tokens for Graph's own origin, lookups by appId and
by App ID URI, paging, and every failure as one GraphError line that names the permission needed and holds no token."""

from __future__ import annotations

import ssl
import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.identity import CredentialUnavailableError

from app.entra.graph import GraphClient, GraphError
from tests.support.entra import EntraStandIn
from tests.support.graph import RESOURCE, GraphStandIn, needs_for
from tests.support.keyvault import LocalIssuerCredential, TlsFiles
from tests.support.servers import free_port
from tests.support.values import TENANT

ADMIN = "cccccccc-0000-4000-8000-0000000000ad"  # the identity running `entra register`


@pytest.fixture
def trust(graph_tls: TlsFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(graph_tls.ca))


@pytest.fixture
def credential(entra: EntraStandIn) -> LocalIssuerCredential:
    return LocalIssuerCredential(entra, TENANT, ADMIN)


def _client(graph: GraphStandIn, credential: Any, trust: ssl.SSLContext, **options: Any) -> GraphClient:
    return GraphClient(graph.base, credential, verify=trust, **options)


def test_the_token_is_for_graphs_own_origin_and_the_configured_tenant(
    graph: GraphStandIn, credential: LocalIssuerCredential, trust: ssl.SSLContext
) -> None:
    with _client(graph, credential, trust, tenant_id=TENANT) as client:
        assert client.application_by_app_id("00000000-0000-4000-8000-000000000000") is None
        assert client.application_by_app_id("00000000-0000-4000-8000-000000000001") is None
    assert credential.requests == [(f"{graph.base}/.default",)]  # one token, reused
    assert len(graph.tokens) == 2
    assert GraphClient("https://graph.microsoft.us/v1.0", credential).scope == "https://graph.microsoft.us/.default"


def test_a_graph_url_that_is_not_https_is_refused(credential: LocalIssuerCredential) -> None:
    with pytest.raises(GraphError, match="must be https"):
        GraphClient("http://graph.microsoft.com", credential)


def test_find_application_by_client_id_else_by_the_resource_url(
    graph: GraphStandIn, credential: LocalIssuerCredential, trust: ssl.SSLContext
) -> None:
    app = graph.add_application({"displayName": "notes", "identifierUris": [RESOURCE, "api://o'brien"]})
    graph.add_application({"displayName": "other", "identifierUris": ["https://other.contoso.com/mcp"]})
    with _client(graph, credential, trust) as client:
        assert (client.find_application(needs_for()) or {}).get("id") == app["id"]
        assert (client.find_application(needs_for(client_id=app["appId"])) or {}).get("id") == app["id"]
        assert client.find_application(needs_for(client_id="5c6a6c1c-0000-4000-8000-00000000c11e")) is None
        assert client.find_application(needs_for(resource="https://new.contoso.com/mcp", app_id_uri="api://x")) is None
        assert (client.application_by_identifier_uri("api://o'brien") or {}).get("id") == app["id"]  # the quote doubled


def test_listings_follow_next_links_on_graphs_host_only(
    graph: GraphStandIn, credential: LocalIssuerCredential, trust: ssl.SSLContext
) -> None:
    app = graph.add_application({"displayName": "notes"})
    graph.federated[app["id"]] = [{"id": str(n), "name": f"f{n}"} for n in range(5)]
    graph.page_size = 2
    with _client(graph, credential, trust) as client:
        assert [f["name"] for f in client.federated_credentials(app["id"])] == ["f0", "f1", "f2", "f3", "f4"]
        graph.next_base = "https://elsewhere.example"
        with pytest.raises(GraphError, match="another host"):
            client.federated_credentials(app["id"])


@pytest.mark.parametrize(("forbid", "needed"), [("read", "Application.Read.All"), ("write", "Application.ReadWrite")])
def test_no_permission_is_one_line_naming_the_permission_and_no_token(
    graph: GraphStandIn, credential: LocalIssuerCredential, trust: ssl.SSLContext, forbid: str, needed: str
) -> None:
    graph.forbid = forbid  # type: ignore[assignment]
    with _client(graph, credential, trust) as client, pytest.raises(GraphError) as raised:
        client.application_by_app_id("app") if forbid == "read" else client.create_application({"displayName": "x"})
    message = str(raised.value)
    assert "403 Authorization_RequestDenied" in message and needed in message and "\n" not in message
    assert raised.value.status == 403 and not any(token in message for token in graph.tokens)


def test_a_token_for_another_audience_is_a_401_line(
    graph: GraphStandIn, entra: EntraStandIn, trust: ssl.SSLContext
) -> None:
    class Elsewhere(LocalIssuerCredential):
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return super().get_token("https://graph.microsoft.com/.default", **kwargs)

    with _client(graph, Elsewhere(entra, TENANT, ADMIN), trust) as client, pytest.raises(GraphError) as raised:
        client.application_by_app_id("app")
    assert "refused the token" in str(raised.value) and raised.value.status == 401


def test_graph_errors_carry_graphs_code_and_message(
    graph: GraphStandIn, credential: LocalIssuerCredential, trust: ssl.SSLContext
) -> None:
    with _client(graph, credential, trust) as client, pytest.raises(GraphError) as raised:
        client.create_application({"displayName": "x", "identifierUris": ["https://unverified.example/mcp"]})
    assert "400 HostNameNotOnVerifiedDomain" in str(raised.value) and "verified domain" in str(raised.value)


def test_an_unreachable_or_silent_graph_is_a_bounded_error(credential: LocalIssuerCredential, black_hole: int) -> None:
    with GraphClient(f"https://127.0.0.1:{free_port()}", credential) as client, pytest.raises(GraphError) as refused:
        client.application_by_app_id("app")
    assert "unreachable" in str(refused.value)
    started = time.monotonic()
    silent = GraphClient(f"https://127.0.0.1:{black_hole}", credential, timeout=0.5)
    with silent, pytest.raises(GraphError, match="did not answer"):
        silent.application_by_app_id("app")
    assert time.monotonic() - started < 5


def test_no_credential_is_one_line() -> None:
    class Unavailable:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            raise CredentialUnavailableError(message="DefaultAzureCredential failed.\nAttempted credentials: ...")

    with GraphClient("https://graph.microsoft.com", Unavailable()) as client, pytest.raises(GraphError) as raised:
        client.application_by_app_id("app")
    assert str(raised.value).startswith("no Microsoft Graph token (CredentialUnavailableError): DefaultAzureCredential")
    assert "\n" not in str(raised.value) and "az login" in str(raised.value)


def test_an_answer_that_is_not_graphs_json_is_an_error(
    graph: GraphStandIn, credential: LocalIssuerCredential, trust: ssl.SSLContext
) -> None:
    graph.html = True
    with _client(graph, credential, trust) as client, pytest.raises(GraphError, match="200 without a JSON object"):
        client.application_by_app_id("app")
