"""RFC 9728 Protected Resource Metadata for the MCP endpoint, built once at startup."""

from __future__ import annotations

from typing import Any

from app.catalog.registry import Catalog, Requirement
from app.settings import Settings

# OpenID Connect scopes belong to the authorization server, never to this resource: offline_access in particular is
# the client's to add (MCP 2026-07-28, when the authorization server lists it), so it is never advertised here.
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
NONE = Requirement()  # no routes: the scopes and roles their guards name (app/api/discovery.py) join the catalog's


def declared_scopes(settings: Settings, catalog: Catalog, routes: Requirement = NONE) -> list[str]:
    """Every delegated scope a tool, resource, prompt or route guard declares, plus MCP__REQUIRED_SCOPES (short
    names, sorted)."""
    scopes = {
        *settings.mcp.required_scopes,
        *routes.scopes,
        *(s for spec in catalog.specs for s in spec.requirement.scopes),
    }
    return sorted(scopes - OIDC_SCOPES)


def declared_roles(settings: Settings, catalog: Catalog, routes: Requirement = NONE) -> list[str]:
    """Every app role a tool, resource, prompt or route guard declares, plus MCP__REQUIRED_ROLES (sorted)."""
    roles = {
        *settings.mcp.required_roles,
        *routes.roles,
        *(r for spec in catalog.specs for r in spec.requirement.roles),
    }
    return sorted(roles)


def supported_scopes(settings: Settings, catalog: Catalog, routes: Requirement = NONE) -> list[str]:
    """The scopes as clients request them from Entra: `{app_id_uri}/{scope}` (PRM and the 401 challenge)."""
    return [settings.scope_uri(scope) for scope in declared_scopes(settings, catalog, routes)]


def protected_resource_metadata(settings: Settings, catalog: Catalog, routes: Requirement = NONE) -> dict[str, Any]:
    """`resource` is exactly what clients use; scopes are in the form clients request them from Entra."""
    metadata: dict[str, Any] = {
        "resource": settings.resource,
        # With the facade on (AUTH_SERVER__ENABLED), clients sign in through this server (app/authserver/).
        "authorization_servers": [
            settings.auth_server_issuer
            if settings.auth_server.enabled
            else f"{settings.instance}{settings.tenant_id}/v2.0"
        ],
        "scopes_supported": supported_scopes(settings, catalog, routes),
        "bearer_methods_supported": ["header"],
        "resource_name": settings.mcp.server_name,
    }
    return {key: value for key, value in metadata.items() if value}  # RFC 9728: omit empty fields


def app_id_uri_warning(settings: Settings) -> str | None:
    """What to change when the App ID URI is not the resource identifier: clients that send RFC 8707 `resource`
    (every MCP client from 2025-06-18 on) are refused by Entra (AADSTS9010010)."""
    if settings.app_id_uri == settings.resource:
        return None
    return (
        f"the App ID URI ({settings.app_id_uri}) is not this server's resource identifier ({settings.resource}): "
        f"MCP clients send resource={settings.resource}, and Entra refuses a resource that is not the App ID URI of "
        "the app that owns the scopes (AADSTS9010010). Set the app registration's Application ID URI (Expose an API) "
        f"to {settings.resource}, which needs a verified domain, and unset AZUREAD__APP_ID_URI; until then only "
        "clients that send no resource can sign in (see docs/tokens.md)"
    )
