"""RFC 9728 Protected Resource Metadata for the MCP endpoint, built once at startup."""

from __future__ import annotations

from typing import Any

from app.auth.resource import ResourceServer


def protected_resource_metadata(server: ResourceServer) -> dict[str, Any]:
    """`resource` is exactly what clients use; scopes are in the form clients request them from Entra."""
    metadata: dict[str, Any] = {
        "resource": server.resource,
        # With the facade on (AUTH_SERVER__ENABLED), clients sign in through this server (app/authserver/).
        "authorization_servers": server.authorization_servers,
        "scopes_supported": server.supported_scopes(),
        "bearer_methods_supported": ["header"],
        "resource_name": server.name,
    }
    return {key: value for key, value in metadata.items() if value}  # RFC 9728: omit empty fields


def app_id_uri_warning(server: ResourceServer) -> str | None:
    """What to change when the App ID URI is not the resource identifier: clients that send RFC 8707 `resource`
    (every MCP client from 2025-06-18 on) are refused by Entra (AADSTS9010010)."""
    if server.app_id_uri == server.resource:
        return None
    return (
        f"the App ID URI ({server.app_id_uri}) is not this server's resource identifier ({server.resource}): "
        f"MCP clients send resource={server.resource}, and Entra refuses a resource that is not the App ID URI of "
        "the app that owns the scopes (AADSTS9010010). Set the app registration's Application ID URI (Expose an API) "
        f"to {server.resource}, which needs a verified domain, and unset AZUREAD__APP_ID_URI; until then only "
        "clients that send no resource can sign in (see docs/tokens.md)"
    )
