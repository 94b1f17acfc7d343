"""RFC 9728 Protected Resource Metadata for the MCP endpoint, built once at startup."""

from __future__ import annotations

from typing import Any

from app.catalog.registry import Catalog
from app.settings import Settings


def protected_resource_metadata(settings: Settings, catalog: Catalog) -> dict[str, Any]:
    """`resource` is exactly what clients use; scopes are in the form clients request them from Entra."""
    scopes = sorted({*settings.mcp.required_scopes, *(s for spec in catalog.specs for s in spec.requirement.scopes)})
    metadata: dict[str, Any] = {
        "resource": settings.resource,
        "authorization_servers": [f"{settings.instance}{settings.tenant_id}/v2.0"],
        "scopes_supported": [settings.scope_uri(scope) for scope in scopes],
        "bearer_methods_supported": ["header"],
        "resource_name": settings.mcp.server_name,
    }
    return {key: value for key, value in metadata.items() if value}  # RFC 9728: omit empty fields
