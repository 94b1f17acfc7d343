"""The routes' OpenAPI schema (ROUTES__OPENAPI): the OAuth2 scheme with this server's Entra flow and scopes.

Scopes appear as clients request them from Entra (`{app_id_uri}/{scope}`), in the scheme and in each route's
security requirement. The MCP endpoint, probes and metadata are not FastAPI routes of the schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.auth.dependencies import SCHEME_NAME
from app.auth.resource import ResourceServer


def routes_openapi(app: FastAPI, server: ResourceServer) -> Callable[[], dict[str, Any]]:
    """`app.openapi`: the schema FastAPI builds, its OAuth2 flow pointed at this server's authority."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            authority = f"{server.authority.base}/oauth2/v2.0"
            scheme = schema.get("components", {}).get("securitySchemes", {}).get(SCHEME_NAME)
            if scheme is not None:
                scheme["flows"]["authorizationCode"] = {
                    "authorizationUrl": f"{authority}/authorize",
                    "tokenUrl": f"{authority}/token",
                    "scopes": {server.scope_uri(s): f"{s} (this server)" for s in server.declared_scopes()},
                }
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for requirement in operation.get("security", []):
                        if SCHEME_NAME in requirement:
                            requirement[SCHEME_NAME] = [server.scope_uri(s) for s in requirement[SCHEME_NAME]]
            app.openapi_schema = schema
        return app.openapi_schema

    return build
