"""The registration checks: the App ID URI against the resource (AADSTS9010010), and the app registration read
through the Graph stand-in with a real token credential: a missing scope, v1 tokens, no Graph permission, and a
credential that cannot get a token (a skip, never an error)."""

from __future__ import annotations

import ssl
from dataclasses import replace

import pytest
from azure.identity import EnvironmentCredential

from app.core.findings import Finding
from app.doctor.registration import app_id_uri_findings, graph_findings
from app.entra.manifest import desired
from app.entra.needs import AppNeeds, Permission
from tests.support.entra import EntraStandIn
from tests.support.graph import GraphStandIn
from tests.support.keyvault import LocalIssuerCredential, TlsFiles
from tests.support.values import CLIENT_ID, TENANT

RESOURCE = "https://mcp.contoso.com/mcp"
NEEDS = AppNeeds(
    key="",
    display_name="notes",
    client_id=CLIENT_ID,
    tenant_id=TENANT,
    resource=RESOURCE,
    app_id_uri=RESOURCE,
    scopes=(Permission("notes.read", "Read notes"), Permission("notes.write", "Write notes")),
    roles=(Permission("notes.read.all", "Read all notes"),),
)


def _read(graph: GraphStandIn, tls: TlsFiles, entra: EntraStandIn, needs: AppNeeds = NEEDS) -> dict[str, Finding]:
    credential = LocalIssuerCredential(entra, TENANT, "dddddddd-0000-4000-8000-0000000000d1")
    verify = ssl.create_default_context(cafile=str(tls.ca))
    return {f.check: f for f in graph_findings([needs], credential, graph.base, verify=verify)}


def _register(graph: GraphStandIn, **changes: object) -> dict[str, object]:
    body = {**desired(NEEDS).body, "appId": CLIENT_ID, **changes}
    return graph.add_application(body)


def test_an_api_app_id_uri_while_clients_send_the_url_is_an_error_explaining_aadsts9010010() -> None:
    (finding,) = app_id_uri_findings(replace(NEEDS, app_id_uri=f"api://{CLIENT_ID}"))
    assert (finding.check, finding.status) == ("app-id-uri", "error")
    assert "AADSTS9010010" in finding.message and RESOURCE in finding.message and "api://" in finding.message
    assert "entra register" in finding.fix and "unset AZUREAD__APP_ID_URI" in finding.fix


def test_another_servers_app_id_uri_setting_is_named_in_the_fix() -> None:
    (finding,) = app_id_uri_findings(replace(NEEDS, key="hr", app_id_uri="api://hr"))
    assert "SERVERS__HR__APP_ID_URI" in finding.fix


def test_the_app_id_uri_equal_to_the_resource_is_ok() -> None:
    assert [f.status for f in app_id_uri_findings(NEEDS)] == ["ok"]


def test_a_registration_as_the_server_needs_it_is_ok(
    graph: GraphStandIn, graph_tls: TlsFiles, entra: EntraStandIn
) -> None:
    _register(graph)
    found = _read(graph, graph_tls, entra)
    assert {check: f.status for check, f in found.items()} == dict.fromkeys(found, "ok")
    assert {"app-registration", "scopes", "roles", "token-version", "vscode"} <= found.keys()
    assert graph.tokens, "Graph was called with a bearer token"


def test_a_missing_scope_on_the_app_is_an_error_naming_it(
    graph: GraphStandIn, graph_tls: TlsFiles, entra: EntraStandIn
) -> None:
    app = _register(graph)
    api = app["api"]
    assert isinstance(api, dict)
    api["oauth2PermissionScopes"] = [s for s in api["oauth2PermissionScopes"] if s["value"] != "notes.write"]
    found = _read(graph, graph_tls, entra)
    assert found["scopes"].status == "error" and "notes.write" in found["scopes"].message
    assert "entra register" in found["scopes"].fix


def test_v1_tokens_configured_are_reported(graph: GraphStandIn, graph_tls: TlsFiles, entra: EntraStandIn) -> None:
    app = _register(graph)
    api = app["api"]
    assert isinstance(api, dict)
    api["requestedAccessTokenVersion"] = None
    found = _read(graph, graph_tls, entra)
    assert found["token-version"].status == "warn" and "v1 tokens" in found["token-version"].message


def test_no_registration_is_an_error(graph: GraphStandIn, graph_tls: TlsFiles, entra: EntraStandIn) -> None:
    found = _read(graph, graph_tls, entra)
    assert found["app-registration"].status == "error" and CLIENT_ID in found["app-registration"].message


def test_no_graph_permission_is_a_warning_naming_the_permission(
    graph: GraphStandIn, graph_tls: TlsFiles, entra: EntraStandIn
) -> None:
    graph.forbid = "read"
    (finding,) = _read(graph, graph_tls, entra).values()
    assert (finding.check, finding.status) == ("registration", "warn")
    assert "Application.Read.All" in finding.message


def test_a_credential_that_cannot_get_a_token_is_a_skip_saying_how_to_enable_it(
    graph: GraphStandIn, graph_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    (finding,) = graph_findings([NEEDS], EnvironmentCredential(), graph.base)
    assert (finding.check, finding.status) == ("registration", "skip")
    assert "az login" in finding.message and "--no-graph" in finding.message
    assert not graph.requests, "nothing was sent to Graph without a token"


def test_a_non_https_graph_url_is_an_error_before_any_token_is_asked_for(entra: EntraStandIn) -> None:
    credential = LocalIssuerCredential(entra, TENANT, "dddddddd-0000-4000-8000-0000000000d1")
    (finding,) = graph_findings([NEEDS], credential, "http://127.0.0.1:9/")
    assert finding.status == "error" and not credential.requests
