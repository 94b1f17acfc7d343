"""The registration checks the doctor runs, every case: no application, the App ID URI, scopes and roles missing or
disabled, v1 tokens, VS Code's pre-authorization, the facade's redirect URI; all ok for what `entra register` writes."""

from __future__ import annotations

import copy
from typing import Any

from app.core.findings import Finding
from app.entra.check import registration_findings
from app.entra.manifest import desired
from app.entra.needs import VSCODE_CLIENT_ID
from tests.support.graph import RESOURCE, needs_for

CALLBACK = "https://mcp.contoso.com/oauth/callback"


def _registered(**needs: Any) -> dict[str, Any]:
    app = copy.deepcopy(desired(needs_for(**needs)).body)
    return {"id": "obj-1", "appId": "app-1", **app}


def _by_check(found: list[Finding]) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = {}
    for finding in found:
        grouped.setdefault(finding.check, []).append(finding)
    return grouped


def _status(found: list[Finding], check: str) -> list[str]:
    return [f.status for f in found if f.check == check]


def test_what_register_writes_passes_every_check() -> None:
    found = registration_findings(_registered(redirect_uris=(CALLBACK,)), needs_for(redirect_uris=(CALLBACK,)))
    assert {f.check: f.status for f in found} == {
        "app-registration": "ok", "app-id-uri": "ok", "scopes": "ok", "roles": "ok", "token-version": "ok",
        "vscode": "ok", "redirect-uris": "ok",
    }  # fmt: skip


def test_no_application_is_one_error_naming_how_it_was_looked_up() -> None:
    [by_uri] = registration_findings(None, needs_for())
    assert (by_uri.check, by_uri.status) == ("app-registration", "error") and RESOURCE in by_uri.message
    assert "entra register" in by_uri.fix
    [by_id] = registration_findings(None, needs_for(client_id="5c6a6c1c-0000-4000-8000-00000000c11e"))
    assert "5c6a6c1c-0000-4000-8000-00000000c11e" in by_id.message


def test_an_app_id_uri_other_than_the_url_is_an_error_explaining_aadsts9010010_for_api_uris() -> None:
    found = registration_findings(_registered() | {"identifierUris": ["api://app-1"]}, needs_for())
    [finding] = _by_check(found)["app-id-uri"]
    assert finding.status == "error" and "AADSTS9010010" in finding.message and RESOURCE in finding.fix
    [other] = _by_check(registration_findings(_registered() | {"identifierUris": []}, needs_for()))["app-id-uri"]
    assert other.status == "error" and "AADSTS9010010" not in other.message


def test_missing_and_disabled_scopes_and_roles_are_errors() -> None:
    app = _registered(scopes=("notes.read",), roles=())
    app["api"]["oauth2PermissionScopes"][0]["isEnabled"] = False
    found = registration_findings(app, needs_for())
    scopes = _by_check(found)["scopes"]
    assert [f.status for f in scopes] == ["error", "error"]
    assert "missing: notes.write" in scopes[0].message and "disabled: notes.read" in scopes[1].message
    [roles] = _by_check(found)["roles"]
    assert roles.status == "error" and "missing: notes.read.all" in roles.message


def test_v1_tokens_are_a_warning() -> None:
    app = _registered()
    app["api"]["requestedAccessTokenVersion"] = None
    [finding] = _by_check(registration_findings(app, needs_for()))["token-version"]
    assert finding.status == "warn" and "null" in finding.message and "v1" in finding.message


def test_vscode_not_pre_authorized_for_every_scope_is_a_warning() -> None:
    app = _registered()
    app["api"]["preAuthorizedApplications"][0]["delegatedPermissionIds"].pop()
    [finding] = _by_check(registration_findings(app, needs_for()))["vscode"]
    assert finding.status == "warn" and "notes.write" in finding.message and VSCODE_CLIENT_ID in finding.message
    app["api"]["preAuthorizedApplications"] = []
    assert _status(registration_findings(app, needs_for()), "vscode") == ["warn"]
    assert _status(registration_findings(_registered(scopes=()), needs_for(scopes=())), "vscode") == []


def test_a_missing_facade_callback_is_an_error_and_none_is_checked_without_the_facade() -> None:
    app = _registered()
    [finding] = _by_check(registration_findings(app, needs_for(redirect_uris=(CALLBACK,))))["redirect-uris"]
    assert finding.status == "error" and CALLBACK in finding.message
    assert _status(registration_findings(app, needs_for()), "redirect-uris") == []
