"""The application body a server's registration should have, from its `AppNeeds`: the Microsoft Graph v1.0
`application` shape (what `POST /applications` takes and the portal's manifest shows).

New scope and role ids are uuid5 of the resource URL and the value, so `--print` is stable and a second run is a
no-op; the ids of scopes and roles the application already has are kept.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from app.entra.needs import TOKEN_EXCHANGE_AUDIENCE, VSCODE_CLIENT_ID, AppNeeds, Permission

MULTI_TENANT = {"organizations", "common"}
_TEXT = 200  # Graph bounds consent display names and descriptions; ours stay well inside


@dataclass(frozen=True)
class Federated:
    """A federated identity credential: tokens from `issuer` with `sub` = `subject` may act as the application."""

    name: str
    issuer: str
    subject: str
    description: str = ""

    def body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "issuer": self.issuer,
            "subject": self.subject,
            "audiences": [TOKEN_EXCHANGE_AUDIENCE],
            "description": self.description or f"{self.issuer} {self.subject}"[:600],
        }


def managed_identity(object_id: str, instance: str, tenant: str) -> Federated:
    """A user-assigned managed identity (its object id) as the application's credential: issued by Entra itself."""
    return Federated(
        f"managed-identity-{object_id}",
        f"{instance.rstrip('/')}/{tenant}/v2.0",
        object_id,
        f"the managed identity {object_id} signs in as this application",
    )


def workload(issuer: str, subject: str) -> Federated:
    """Another issuer's token (an AKS service account, a CI job) as the application's credential."""
    digest = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:16]
    return Federated(f"federated-{digest}", issuer, subject, f"{subject} from {issuer}"[:600])


@dataclass(frozen=True)
class Manifest:
    """`body`: the desired application (create shape, pre-authorization included); `federated`: the credentials it
    should trust; `warnings`: what the user should know before applying it."""

    needs: AppNeeds
    body: dict[str, Any]
    federated: tuple[Federated, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def printable(self) -> dict[str, Any]:
        """What `--print` shows for this server: the application, and the federated credentials to POST after it."""
        shown: dict[str, Any] = {"server": self.needs.display_name, "application": self.body}
        shown["federatedIdentityCredentials"] = [one.body() for one in self.federated]
        return shown


def desired(
    needs: AppNeeds,
    *,
    vscode: bool = True,
    federated: tuple[Federated, ...] = (),
    existing: dict[str, Any] | None = None,
) -> Manifest:
    """The application `needs` calls for; ids of scopes and roles in `existing` (same value) are kept."""
    scopes = [_scope(needs, p, _id_of(existing, "scope", p.value, needs)) for p in needs.scopes]
    roles = [_role(needs, p, _id_of(existing, "role", p.value, needs)) for p in needs.roles]
    api: dict[str, Any] = {"requestedAccessTokenVersion": 2, "oauth2PermissionScopes": scopes}
    if vscode and scopes:
        api["preAuthorizedApplications"] = [
            {"appId": VSCODE_CLIENT_ID, "delegatedPermissionIds": [s["id"] for s in scopes]}
        ]
    body: dict[str, Any] = {
        "displayName": needs.display_name,
        "identifierUris": [needs.resource],
        "signInAudience": "AzureADMultipleOrgs" if needs.tenant_id in MULTI_TENANT else "AzureADMyOrg",
        "api": api,
        "appRoles": roles,
    }
    if needs.redirect_uris:
        body["web"] = {"redirectUris": list(needs.redirect_uris)}
    return Manifest(needs, body, tuple(federated), tuple(warnings(needs)))


def warnings(needs: AppNeeds) -> list[str]:
    """A configured App ID URI other than the resource URL: sign-in fails for MCP clients, so say so."""
    if needs.app_id_uri == needs.resource:
        return []
    setting = f"{needs.label}__APP_ID_URI" if needs.key else "AZUREAD__APP_ID_URI"
    return [
        f"{setting} is {needs.app_id_uri}, but MCP clients send {needs.resource} as the RFC 8707 resource and Entra "
        f"refuses a resource that is not the App ID URI (AADSTS9010010). This registration uses {needs.resource}; "
        f"unset {setting} once it is applied."
    ]


def permission_id(needs: AppNeeds, kind: str, value: str) -> str:
    """The id a new scope or role gets: stable for this resource URL, kind and value."""
    return str(uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL, needs.resource), f"{kind}:{value}"))


def _id_of(existing: dict[str, Any] | None, kind: str, value: str, needs: AppNeeds) -> str:
    for item in permissions(existing, kind):
        if item.get("value") == value and isinstance(item.get("id"), str):
            return str(item["id"])
    return permission_id(needs, kind, value)


def permissions(app: dict[str, Any] | None, kind: str) -> list[dict[str, Any]]:
    """The application's scopes (`kind` "scope") or app roles ("role"), as Graph returned them."""
    if not app:
        return []
    found = (app.get("api") or {}).get("oauth2PermissionScopes") if kind == "scope" else app.get("appRoles")
    return [item for item in found or [] if isinstance(item, dict)]


def _scope(needs: AppNeeds, permission: Permission, id_: str) -> dict[str, Any]:
    display = f"{needs.display_name}: {permission.value}"[:_TEXT]
    return {
        "id": id_,
        "value": permission.value,
        "type": "User",
        "isEnabled": True,
        "adminConsentDisplayName": display,
        "adminConsentDescription": permission.description[:_TEXT],
        "userConsentDisplayName": display,
        "userConsentDescription": permission.description[:_TEXT],
    }


def _role(needs: AppNeeds, permission: Permission, id_: str) -> dict[str, Any]:
    return {
        "id": id_,
        "value": permission.value,
        "allowedMemberTypes": ["Application"],  # app-only callers: daemons, managed identities, agents
        "isEnabled": True,
        "displayName": f"{needs.display_name}: {permission.value}"[:_TEXT],
        "description": f"{permission.description} (app-only, without a user)"[:_TEXT],
    }
