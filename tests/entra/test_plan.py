"""The plan: from the application as it is to the one the catalog needs, as readable changes and Graph writes in
the order Graph accepts; what a person added stays; pruning takes two steps; an up-to-date application is no-op."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from app.entra.graph import GraphClient, GraphError
from app.entra.manifest import desired, workload
from app.entra.needs import VSCODE_CLIENT_ID
from app.entra.plan import Plan, apply, plan
from tests.support.graph import RESOURCE, needs_for

OTHER_CLIENT = "0f0f0f0f-0000-4000-8000-00000000c0de"


def _current(**changes: Any) -> dict[str, Any]:
    """The application as Graph returns it after a full registration (ids, defaults), with `changes` applied."""
    body = copy.deepcopy(desired(needs_for()).body)
    app = {"id": "obj-1", "appId": "app-1", "web": {"homePageUrl": None, "redirectUris": []}, **body}
    app["api"] = {**app["api"], "knownClientApplications": []}
    for key, value in changes.items():
        app[key] = value
    return app


def _plan(app: dict[str, Any] | None, **options: Any) -> Plan:
    needs = options.pop("needs", needs_for())
    manifest = desired(needs, federated=options.pop("federated_wanted", ()), existing=app)
    return plan(manifest, app, service_principal=options.pop("service_principal", True), **options)


def test_from_nothing_create_without_pre_authorization_then_service_principal_then_pre_authorize() -> None:
    chosen = _plan(None)
    assert chosen.changes == (
        f"+ application 'notes-mcp' (App ID URI {RESOURCE})",
        "+ scope notes.read",
        "+ scope notes.write",
        "+ app role notes.read.all",
        "+ pre-authorize VS Code for notes.read",
        "+ pre-authorize VS Code for notes.write",
        "+ service principal (Entra issues tokens only for an app with one)",
    )
    assert [s.action for s in chosen.steps] == ["create", "service-principal", "patch"]
    assert "preAuthorizedApplications" not in chosen.steps[0].body["api"]  # scopes must exist first
    assert chosen.steps[0].body["signInAudience"] == "AzureADMyOrg"
    [vscode] = chosen.steps[2].body["api"]["preAuthorizedApplications"]
    assert vscode["appId"] == VSCODE_CLIENT_ID and len(vscode["delegatedPermissionIds"]) == 2


def test_an_up_to_date_application_needs_nothing() -> None:
    chosen = _plan(_current())
    assert chosen.changes == () and chosen.steps == () and chosen.notes == ()


def test_a_missing_service_principal_is_created() -> None:
    chosen = _plan(_current(), service_principal=False)
    assert chosen.changes == ("+ service principal (Entra issues tokens only for an app with one)",)
    assert [s.action for s in chosen.steps] == ["service-principal"]


def test_v1_tokens_and_a_missing_url_become_one_patch_keeping_what_exists() -> None:
    app = _current(identifierUris=["api://app-1"])
    app["api"]["requestedAccessTokenVersion"] = None
    chosen = _plan(app)
    assert chosen.changes == (
        f"+ App ID URI {RESOURCE} (identifierUris)",
        "~ api.requestedAccessTokenVersion: null -> 2",
    )
    [patch] = chosen.steps
    assert patch.body == {"identifierUris": ["api://app-1", RESOURCE], "api": {"requestedAccessTokenVersion": 2}}


def test_additions_merge_with_what_a_person_added() -> None:
    app = _current()
    app["web"]["redirectUris"] = ["https://hand.contoso.com/callback"]
    app["api"]["preAuthorizedApplications"].append({"appId": OTHER_CLIENT, "delegatedPermissionIds": ["x-id"]})
    callback = "https://mcp.contoso.com/oauth/callback"
    chosen = _plan(
        app, needs=needs_for(scopes=("notes.read", "notes.write", "notes.export"), redirect_uris=(callback,))
    )
    assert chosen.changes == (
        "+ scope notes.export",
        f"+ redirect URI {callback}",
        "+ pre-authorize VS Code for notes.export",
    )
    first, second = chosen.steps
    assert [s["value"] for s in first.body["api"]["oauth2PermissionScopes"]] == [
        "notes.read",
        "notes.write",
        "notes.export",
    ]
    assert first.body["web"] == {"redirectUris": ["https://hand.contoso.com/callback", callback]}
    clients = second.body["api"]["preAuthorizedApplications"]
    assert {c["appId"] for c in clients} == {VSCODE_CLIENT_ID, OTHER_CLIENT}
    assert "preAuthorizedApplications" not in first.body.get("api", {})  # pre-authorized after the scope exists


def test_a_disabled_scope_the_catalog_needs_is_enabled_again() -> None:
    app = _current()
    app["api"]["oauth2PermissionScopes"][1]["isEnabled"] = False
    chosen = _plan(app)
    assert chosen.changes == ("~ scope notes.write: disabled -> enabled",)
    assert all(s["isEnabled"] for s in chosen.steps[0].body["api"]["oauth2PermissionScopes"])


def test_a_scope_the_catalog_dropped_is_kept_without_prune() -> None:
    chosen = _plan(_current(), needs=needs_for(scopes=("notes.read",)))
    assert chosen.changes == () and chosen.steps == ()
    assert chosen.notes == (
        "! scope notes.write is not in the catalog: kept (tokens may still carry it); --prune removes it",
    )


def test_prune_disables_then_drops_the_pre_authorization_then_removes() -> None:
    app = _current()
    app["api"]["preAuthorizedApplications"].append(
        {"appId": OTHER_CLIENT, "delegatedPermissionIds": [app["api"]["oauth2PermissionScopes"][1]["id"]]}
    )
    chosen = _plan(app, needs=needs_for(scopes=("notes.read",), roles=()), prune=True)
    assert chosen.changes == (
        "- scope notes.write (disabled, then removed)",
        "- app role notes.read.all (disabled, then removed)",
    )
    disable, preauthorize, remove = chosen.steps
    assert [s["isEnabled"] for s in disable.body["api"]["oauth2PermissionScopes"]] == [True, False]
    assert [r["isEnabled"] for r in disable.body["appRoles"]] == [False]
    assert preauthorize.body["api"]["preAuthorizedApplications"] == [
        {"appId": VSCODE_CLIENT_ID, "delegatedPermissionIds": [app["api"]["oauth2PermissionScopes"][0]["id"]]}
    ]  # the other client had only the pruned scope: its entry goes with it
    assert [s["value"] for s in remove.body["api"]["oauth2PermissionScopes"]] == ["notes.read"]
    assert remove.body["appRoles"] == []


def test_an_already_disabled_scope_is_removed_in_one_step() -> None:
    app = _current()
    app["api"]["oauth2PermissionScopes"][1]["isEnabled"] = False
    chosen = _plan(app, needs=needs_for(scopes=("notes.read",)), prune=True)
    assert chosen.changes == ("- scope notes.write (already disabled)",)
    assert [s.action for s in chosen.steps] == ["patch", "patch"]  # pre-authorization, then the removal
    assert "oauth2PermissionScopes" not in chosen.steps[0].body["api"]


def test_federated_credentials_are_added_once_and_a_name_clash_is_a_note() -> None:
    aks = workload("https://oidc.example/", "system:serviceaccount:mcp:server")
    chosen = _plan(_current(), federated_wanted=(aks,), federated=[])
    assert chosen.changes == (f"+ federated credential {aks.name}: issuer {aks.issuer}, subject {aks.subject}",)
    assert chosen.steps[0].action == "federated" and chosen.steps[0].body == aks.body()
    assert _plan(_current(), federated_wanted=(aks,), federated=[aks.body()]).steps == ()
    clash = {**aks.body(), "subject": "someone-else"}
    kept = _plan(_current(), federated_wanted=(aks,), federated=[clash])
    assert kept.steps == () and kept.notes == (
        f"! federated credential {aks.name} exists with another issuer or subject: kept",
    )


class _Recording:
    """Records the writes; the first write after the create answers 404, as Graph may while the app replicates."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failures = 1

    def create_application(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create")
        return {"id": "obj-new", "appId": "app-new"}

    def create_service_principal(self, app_id: str) -> dict[str, Any]:
        self.calls.append(f"sp {app_id}")
        if self.failures:
            self.failures -= 1
            raise GraphError("not yet", 404, "Request_ResourceNotFound")
        return {}

    def update_application(self, object_id: str, patch: dict[str, Any]) -> None:
        self.calls.append(f"patch {object_id}")


def test_apply_writes_in_order_and_retries_while_a_new_application_replicates() -> None:
    graph, waits = _Recording(), list[float]()
    created = apply(_plan(None), cast(GraphClient, graph), wait=waits.append)
    assert created == {"id": "obj-new", "appId": "app-new"}
    assert graph.calls == ["create", "sp app-new", "sp app-new", "patch obj-new"]
    assert waits == [2.0]


def test_apply_does_not_retry_an_existing_applications_errors() -> None:
    graph = _Recording()
    with pytest.raises(GraphError):
        apply(_plan(_current(), service_principal=False), cast(GraphClient, graph), wait=lambda _: None)
    assert graph.calls == ["sp app-1"]
