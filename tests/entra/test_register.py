"""`secure-mcp-server entra register` against the HTTPS Graph stand-in, with a real azure-identity credential
(DefaultAzureCredential finds the managed identity stand-in through IDENTITY_ENDPOINT / IDENTITY_HEADER): it creates
the registration from nothing, changes nothing the second time, shows a new tool's scope as a diff, prunes only when
asked and then in two steps, prints without calling anything, and fails in one line."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from app.cli import cli
from app.compose.review import app_needs
from app.entra.check import registration_findings
from app.entra.needs import VSCODE_CLIENT_ID
from app.settings import Settings
from tests.support.entra import EntraStandIn
from tests.support.graph import GraphStandIn
from tests.support.identity import PATH, IdentityStandIn
from tests.support.keyvault import TlsFiles
from tests.support.servers import ServerThread
from tests.support.values import JWT_SHAPED, REPO, SUPPORT, TENANT

HOST = "https://mcp.contoso.com"
MANAGED_IDENTITY = "eeeeeeee-0000-4000-8000-0000000000ff"  # the server's user-assigned identity (its object id)
SETTINGS_PREFIXES = ("APP_ENV", "AZUREAD__", "MCP__", "TOOLS__", "ROUTES__", "KEYVAULT__", "SERVERS__", "AUTH_SERVER__")
PLATFORM = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
            "AZURE_USERNAME", "AZURE_CLIENT_CERTIFICATE_PATH")  # fmt: skip
NEW_TOOL = '''"""A new tool with a scope of its own."""

from app import tool


@tool(scopes=["notes.export"])
def export_notes() -> str:
    """Export the caller's notes."""
    return "exported"
'''


@pytest.fixture
def identity(entra: EntraStandIn, graph: GraphStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityStandIn]:
    """The platform's managed identity endpoint, which issues this process's Graph tokens (audience: the stand-in)."""
    stand_in = IdentityStandIn(entra, TENANT, resources={graph.base})
    with ServerThread(stand_in.app()) as server:
        stand_in.endpoint = server.url + PATH
        for name in PLATFORM:
            monkeypatch.delenv(name, raising=False)
        for name, value in stand_in.environ().items():
            monkeypatch.setenv(name, value)
        yield stand_in


@pytest.fixture
def tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, graph: GraphStandIn, identity: IdentityStandIn,
    graph_tls: TlsFiles,
) -> Path:  # fmt: skip
    """Development settings naming a tenant (no client id yet), a copy of the sample tools, Graph at the stand-in."""
    for name in list(os.environ):
        if name.startswith(SETTINGS_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "tools"
    shutil.copytree(REPO / "tools", folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name, value in {
        "APP_ENV": "development", "AZUREAD__TENANT_ID": TENANT, "MCP__RESOURCE_HOST": HOST, "TOOLS__DIR": str(folder),
        "GRAPH_URL": graph.base, "SSL_CERT_FILE": str(graph_tls.ca),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    return folder


def register(*args: str) -> Result:
    return CliRunner().invoke(cli, ["entra", "register", *args])


def _only_app(graph: GraphStandIn) -> dict[str, Any]:
    [app] = graph.applications.values()
    return app


def test_register_creates_the_registration_from_nothing(
    tools: Path, graph: GraphStandIn, identity: IdentityStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_ENV", "production")  # production settings without a client id yet: the first run
    result = register("--yes")
    assert result.exit_code == 0, result.output
    app = _only_app(graph)
    [needs] = app_needs(Settings(app_env="development"))
    assert app["identifierUris"] == [f"{HOST}/mcp"] and app["signInAudience"] == "AzureADMyOrg"
    assert app["api"]["requestedAccessTokenVersion"] == 2
    scopes = {s["value"]: s for s in app["api"]["oauth2PermissionScopes"]}
    assert sorted(scopes) == sorted(p.value for p in needs.scopes) and "notes.write" in scopes
    assert scopes["notes.write"]["adminConsentDescription"] == "Use secure-mcp-server: tool create_note"
    assert [r["value"] for r in app["appRoles"]] == [p.value for p in needs.roles]
    [vscode] = app["api"]["preAuthorizedApplications"]
    assert vscode["appId"] == VSCODE_CLIENT_ID and set(vscode["delegatedPermissionIds"]) == {
        s["id"] for s in scopes.values()
    }
    assert list(graph.service_principals) == [app["appId"]]
    assert all(f.status == "ok" for f in registration_findings(app, needs))
    assert f"AZUREAD__CLIENT_ID={app['appId']}" in result.stdout and f"AZUREAD__TENANT_ID={TENANT}" in result.stdout
    assert graph.writes[0] == "POST /v1.0/applications"
    assert {r["resource"] for r in identity.requests} == {graph.base}  # azure-identity's token, for Graph
    assert not JWT_SHAPED.search(result.output)


def test_a_second_run_changes_nothing_and_writes_nothing(
    tools: Path, graph: GraphStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert register("--yes").exit_code == 0
    app_id = _only_app(graph)["appId"]
    graph.requests.clear()
    again = register()  # no --yes and no terminal: fine, there is nothing to ask
    assert again.exit_code == 0, again.output
    assert "up to date, nothing to change" in again.stdout and graph.writes == []
    # Production, with the client id the first run printed: found by appId, still nothing to change.
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("AZUREAD__CLIENT_ID", app_id)
    graph.requests.clear()
    production = register("--yes")
    assert production.exit_code == 0, production.output
    assert f"GET /v1.0/applications(appId='{app_id}')" in graph.requests and graph.writes == []


def test_a_new_tools_scope_is_a_diff_and_is_pre_authorized(tools: Path, graph: GraphStandIn) -> None:
    assert register("--yes").exit_code == 0
    (tools / "exports.py").write_text(NEW_TOOL)
    graph.requests.clear()
    result = register("--yes")
    assert result.exit_code == 0, result.output
    assert "  + scope notes.export\n  + pre-authorize VS Code for notes.export\n" in result.stdout
    assert "applied 2 changes" in result.stdout
    assert len(graph.writes) == 2  # the scope, then its pre-authorization
    app = _only_app(graph)
    [scope] = [s for s in app["api"]["oauth2PermissionScopes"] if s["value"] == "notes.export"]
    assert scope["id"] in app["api"]["preAuthorizedApplications"][0]["delegatedPermissionIds"]


def test_a_dropped_scope_is_kept_without_prune_and_pruned_in_two_steps_with_it(
    tools: Path, graph: GraphStandIn
) -> None:
    assert register("--yes").exit_code == 0
    (tools / "pages.py").unlink()
    graph.requests.clear()
    kept = register("--yes")
    assert kept.exit_code == 0, kept.output
    assert (
        "! scope pages.read is not in the catalog: kept (tokens may still carry it); --prune removes it" in kept.stdout
    )
    assert graph.writes == []
    scopes = {s["value"]: s for s in _only_app(graph)["api"]["oauth2PermissionScopes"]}
    assert scopes["pages.read"]["isEnabled"] is True

    graph.bodies.clear()
    pruned = register("--yes", "--prune")
    assert pruned.exit_code == 0, pruned.output
    assert "- scope pages.read (disabled, then removed)" in pruned.stdout
    disable, preauthorize, remove = graph.bodies
    assert [s["isEnabled"] for s in disable["api"]["oauth2PermissionScopes"] if s["value"] == "pages.read"] == [False]
    assert (
        scopes["pages.read"]["id"] not in preauthorize["api"]["preAuthorizedApplications"][0]["delegatedPermissionIds"]
    )
    assert "pages.read" not in [s["value"] for s in remove["api"]["oauth2PermissionScopes"]]
    app = _only_app(graph)
    assert "pages.read" not in [s["value"] for s in app["api"]["oauth2PermissionScopes"]]
    graph.requests.clear()
    assert "up to date" in register("--prune").stdout and graph.writes == []


def test_print_shows_the_manifest_and_calls_nothing(
    tools: Path, graph: GraphStandIn, identity: IdentityStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZUREAD__TENANT_ID")  # no tenant needed either
    result = register("--print")
    assert result.exit_code == 0, result.output
    [shown] = json.loads(result.stdout)
    assert shown["server"] == "secure-mcp-server" and shown["federatedIdentityCredentials"] == []
    assert shown["application"]["identifierUris"] == [f"{HOST}/mcp"]
    assert shown["application"]["api"]["requestedAccessTokenVersion"] == 2
    assert register("--print").stdout == result.stdout  # stable ids
    assert graph.requests == [] and identity.requests == []


def test_the_managed_identitys_federated_credential_is_created_once(tools: Path, graph: GraphStandIn) -> None:
    first = register("--yes", "--managed-identity", MANAGED_IDENTITY)
    assert first.exit_code == 0, first.output
    app = _only_app(graph)
    [credential] = graph.federated[app["id"]]
    assert credential["issuer"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"  # Entra's, not the dev issuer
    assert credential["subject"] == MANAGED_IDENTITY and credential["audiences"] == ["api://AzureADTokenExchange"]
    graph.requests.clear()
    again = register("--yes", "--managed-identity", MANAGED_IDENTITY)
    assert again.exit_code == 0 and "up to date" in again.stdout and graph.writes == []
    assert len(graph.federated[app["id"]]) == 1


def test_a_workload_identity_issuer_is_trusted_directly(tools: Path, graph: GraphStandIn) -> None:
    issuer, subject = "https://oidc.prod-aks.azure.com/0000/", "system:serviceaccount:mcp:secure-mcp-server"
    result = register("--yes", "--federated-issuer", issuer, "--federated-subject", subject)
    assert result.exit_code == 0, result.output
    [credential] = graph.federated[_only_app(graph)["id"]]
    assert (credential["issuer"], credential["subject"]) == (issuer, subject)
    half = register("--yes", "--federated-issuer", issuer)
    assert half.exit_code == 2 and "go together" in half.stderr


def test_without_a_terminal_it_refuses_to_apply_unless_yes(tools: Path, graph: GraphStandIn) -> None:
    result = register()
    assert result.exit_code == 2
    assert "no terminal to ask: run it again with --yes" in result.stderr and graph.writes == []
    assert "+ application 'secure-mcp-server'" in result.stdout  # the diff was shown


@pytest.mark.slow
def test_a_refused_prompt_writes_nothing(tools: Path, graph: GraphStandIn, tmp_path: Path) -> None:
    """In a terminal: the diff, the question, "n", nothing written."""
    main, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "entra", "register"],
        stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    os.close(terminal)
    os.write(main, b"n\n")
    out, err = process.communicate(timeout=120)
    os.close(main)
    assert process.returncode == 0, err
    assert "apply these" in out and "changes to secure-mcp-server? [y/N]" in out
    assert "secure-mcp-server: nothing applied" in out
    assert graph.writes == [] and graph.applications == {}


def test_a_graph_403_is_one_clear_line_and_exit_2(tools: Path, graph: GraphStandIn) -> None:
    graph.forbid = "write"
    result = register("--yes")
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("entra register: Microsoft Graph: no permission for POST /applications (403")
    assert "Application.ReadWrite" in line and "Traceback" not in result.output
    assert not any(token in result.output for token in graph.tokens)


def test_development_without_a_tenant_refuses_and_an_http_url_is_refused(
    tools: Path, graph: GraphStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZUREAD__TENANT_ID")
    result = register("--yes")
    assert result.exit_code == 2 and "the dev issuer is not Entra ID" in result.stderr
    monkeypatch.setenv("AZUREAD__TENANT_ID", TENANT)
    monkeypatch.delenv("MCP__RESOURCE_HOST")
    result = register("--yes")
    assert result.exit_code == 2 and "is not https" in result.stderr and "MCP__RESOURCE_HOST" in result.stderr
    assert graph.requests == []


def test_each_server_is_its_own_registration(tools: Path, graph: GraphStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVERS__FINANCE__PATH", "/finance/mcp")
    monkeypatch.setenv("SERVERS__FINANCE__TOOLS_DIR", str(SUPPORT / "two_servers" / "finance" / "tools"))
    only = register("--yes", "--server", "finance")
    assert only.exit_code == 0, only.output
    app = _only_app(graph)
    assert app["identifierUris"] == [f"{HOST}/finance/mcp"]
    assert f"SERVERS__FINANCE__CLIENT_ID={app['appId']}" in only.stdout
    both = register("--yes")
    assert both.exit_code == 0, both.output
    assert sorted(a["identifierUris"][0] for a in graph.applications.values()) == [f"{HOST}/finance/mcp", f"{HOST}/mcp"]
    unknown = register("--server", "nope")
    assert unknown.exit_code == 2 and "no server 'nope'" in unknown.stderr


def test_an_unknown_client_id_finds_the_registration_by_its_url(
    tools: Path, graph: GraphStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert register("--yes").exit_code == 0
    app_id = _only_app(graph)["appId"]
    monkeypatch.setenv("AZUREAD__CLIENT_ID", "5c6a6c1c-0000-4000-8000-00000000c11e")
    graph.requests.clear()
    result = register("--yes")
    assert result.exit_code == 0, result.output
    assert (
        f"AZUREAD__CLIENT_ID=5c6a6c1c-0000-4000-8000-00000000c11e names no application; {app_id} has" in result.stdout
    )
    assert graph.writes == [] and len(graph.applications) == 1


def test_an_api_app_id_uri_is_warned_about_and_the_url_registered(
    tools: Path, graph: GraphStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZUREAD__APP_ID_URI", "api://{client_id}")
    result = register("--yes")
    assert result.exit_code == 0, result.output
    assert "AADSTS9010010" in result.stdout and "unset AZUREAD__APP_ID_URI" in result.stdout
    assert _only_app(graph)["identifierUris"] == [f"{HOST}/mcp"]
    printed = register("--print")
    assert "AADSTS9010010" in printed.stderr and json.loads(printed.stdout)[0]["application"]["identifierUris"] == [
        f"{HOST}/mcp"
    ]
