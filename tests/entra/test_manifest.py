"""The desired application body: the App ID URI is the server's URL, v2 tokens, the catalog's scopes and roles with
stable ids, VS Code pre-authorized, the facade's callback, and a clear warning for an App ID URI clients cannot use."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

from app.entra.manifest import desired, managed_identity, permission_id, workload
from app.entra.needs import TOKEN_EXCHANGE_AUDIENCE, VSCODE_CLIENT_ID, Permission
from tests.support.docs_blocks import read_blocks
from tests.support.graph import RESOURCE, needs_for
from tests.support.values import REPO


def test_the_body_registers_the_servers_url_v2_tokens_and_the_catalogs_scopes_and_roles() -> None:
    body = desired(needs_for()).body
    assert body["identifierUris"] == [RESOURCE]
    assert body["signInAudience"] == "AzureADMyOrg"
    assert body["api"]["requestedAccessTokenVersion"] == 2
    scopes = body["api"]["oauth2PermissionScopes"]
    assert [s["value"] for s in scopes] == ["notes.read", "notes.write"]
    assert all(s["type"] == "User" and s["isEnabled"] for s in scopes)
    assert (
        scopes[1]["adminConsentDescription"]
        == scopes[1]["userConsentDescription"]
        == "Use notes-mcp: tool for notes.write"
    )
    [role] = body["appRoles"]
    assert role["value"] == "notes.read.all" and role["allowedMemberTypes"] == ["Application"] and role["isEnabled"]
    assert body["api"]["preAuthorizedApplications"] == [
        {"appId": VSCODE_CLIENT_ID, "delegatedPermissionIds": [s["id"] for s in scopes]}
    ]
    assert "web" not in body


def test_new_ids_are_stable_for_the_resource_and_distinct_per_kind_and_value() -> None:
    first, again = desired(needs_for()).body, desired(needs_for()).body
    assert first == again
    ids = [s["id"] for s in first["api"]["oauth2PermissionScopes"]] + [r["id"] for r in first["appRoles"]]
    assert len(set(ids)) == 3 and all(uuid.UUID(i).version == 5 for i in ids)
    elsewhere = desired(needs_for(resource="https://other.contoso.com/mcp")).body
    assert elsewhere["api"]["oauth2PermissionScopes"][0]["id"] != ids[0]
    assert permission_id(needs_for(), "scope", "x") != permission_id(needs_for(), "role", "x")


def test_existing_ids_are_kept() -> None:
    existing = {
        "api": {"oauth2PermissionScopes": [{"id": "11111111-1111-4111-8111-111111111111", "value": "notes.write"}]},
        "appRoles": [{"id": "22222222-2222-4222-8222-222222222222", "value": "notes.read.all"}],
    }
    body = desired(needs_for(), existing=existing).body
    assert body["api"]["oauth2PermissionScopes"][1]["id"] == "11111111-1111-4111-8111-111111111111"
    assert body["appRoles"][0]["id"] == "22222222-2222-4222-8222-222222222222"
    assert body["api"]["preAuthorizedApplications"][0]["delegatedPermissionIds"][1] == (
        "11111111-1111-4111-8111-111111111111"
    )


def test_no_vscode_and_no_scopes_mean_no_pre_authorization() -> None:
    assert "preAuthorizedApplications" not in desired(needs_for(), vscode=False).body["api"]
    assert "preAuthorizedApplications" not in desired(needs_for(scopes=())).body["api"]


def test_the_facades_callback_is_a_web_redirect_uri_and_multi_tenant_servers_say_so() -> None:
    callback = "https://mcp.contoso.com/oauth/callback"
    assert desired(needs_for(redirect_uris=(callback,))).body["web"] == {"redirectUris": [callback]}
    assert desired(needs_for(tenant_id="organizations")).body["signInAudience"] == "AzureADMultipleOrgs"


def test_an_api_uri_app_id_uri_is_a_warning_and_the_registration_uses_the_url() -> None:
    manifest = desired(needs_for(app_id_uri="api://5c6a6c1c-0000-4000-8000-00000000c11e"))
    assert manifest.body["identifierUris"] == [RESOURCE]
    [warning] = manifest.warnings
    assert "AADSTS9010010" in warning and "unset AZUREAD__APP_ID_URI" in warning and RESOURCE in warning
    [named] = desired(needs_for(key="hr", app_id_uri="api://hr")).warnings
    assert "unset SERVERS__HR__APP_ID_URI" in named
    assert desired(needs_for()).warnings == ()


def test_federated_credentials_trust_entras_issuer_for_a_managed_identity_or_another_issuer() -> None:
    object_id = "dddddddd-0000-4000-8000-00000000000b"
    mi = managed_identity(object_id, "https://login.microsoftonline.com/", "72f988bf-0000-4000-8000-000000000001")
    assert mi.body() == {
        "name": f"managed-identity-{object_id}",
        "issuer": "https://login.microsoftonline.com/72f988bf-0000-4000-8000-000000000001/v2.0",
        "subject": object_id,
        "audiences": [TOKEN_EXCHANGE_AUDIENCE],
        "description": f"the managed identity {object_id} signs in as this application",
    }
    aks = workload("https://oidc.prod-aks.azure.com/abc/", "system:serviceaccount:mcp:server")
    assert aks == workload("https://oidc.prod-aks.azure.com/abc/", "system:serviceaccount:mcp:server")
    assert aks.name.startswith("federated-") and aks.body()["subject"] == "system:serviceaccount:mcp:server"
    shown = desired(needs_for(), federated=(mi, aks)).printable()
    assert shown["application"]["identifierUris"] == [RESOURCE]
    assert [f["name"] for f in shown["federatedIdentityCredentials"]] == [mi.name, aks.name]


def test_the_manifest_docs_entra_md_shows_is_what_print_prints() -> None:
    """docs/entra.md's `--print` example: exactly the body for its weather tool, ids included."""
    [block] = [b for b in read_blocks(REPO / "docs" / "entra.md") if b.lang == "json"]
    uses = "Use secure-mcp-server: tool forecast"
    weather = replace(
        needs_for(display_name="secure-mcp-server"),
        scopes=(Permission("weather.read", uses),),
        roles=(Permission("weather.read.all", uses),),
    )
    assert json.loads(block.text) == desired(weather).body
