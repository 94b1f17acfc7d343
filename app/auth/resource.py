"""What one protected MCP server is, as values: its Entra authority, its identity as a resource, and its catalog.

Built once by the composition root (app/compose/resource.py) and handed to every part that needs to know who this
server is: token validation, Protected Resource Metadata, the 401 challenge, the facade, OpenAPI. Nothing here reads
settings, so a second server in one app is a second `ResourceServer`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.catalog.registry import Catalog, Requirement

NO_ROUTES = Requirement()
# OpenID Connect scopes belong to the authorization server, never to this resource: offline_access in particular is
# the client's to add (MCP 2026-07-28, when the authorization server lists it), so it is never advertised here.
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})


@dataclass(frozen=True)
class Authority:
    """The Entra tenant (or the dev issuer) that issues this server's tokens, and how its tokens are checked."""

    instance: str
    """`https://login.microsoftonline.com/`, or the dev issuer's origin; always ends in `/`."""
    tenant_id: str
    multi_tenant: bool = False
    allowed_tenants: frozenset[str] = frozenset()
    accept_v1: bool = True
    clock_skew_seconds: int = 60
    jwks_refresh_seconds: float = 60.0
    jwks_max_age_seconds: float = 24 * 3600.0

    @property
    def base(self) -> str:
        """`{instance}{tenant}`: the root of the tenant's OpenID configuration and OAuth endpoints."""
        return f"{self.instance}{self.tenant_id}"

    @property
    def issuer_v2(self) -> str:
        return f"{self.base}/v2.0"


@dataclass(frozen=True)
class ResourceServer:
    """One MCP server as a protected resource (RFC 9728) backed by one Entra app registration."""

    name: str
    """MCP__SERVER_NAME: the MCP server's name, PRM's `resource_name`."""
    path: str
    """Where the MCP endpoint is served (`/mcp`)."""
    resource_host: str
    """The origin clients reach this server at (`https://mcp.contoso.com`), no path."""
    client_id: str
    app_id_uri: str
    audiences: tuple[str, ...]
    authority: Authority
    catalog: Catalog
    required_scopes: tuple[str, ...] = ()
    required_roles: tuple[str, ...] = ()
    implied_scopes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """MCP__IMPLIED_SCOPES: a granted scope that stands for others too."""
    routes: Requirement = NO_ROUTES
    """What the FastAPI routes beside MCP require; their scopes and roles are declared with the catalog's."""
    authorization_server: str | None = None
    """The issuer PRM names when it is not Entra's (the authorization-server facade)."""

    @property
    def resource(self) -> str:
        """The protected resource identifier (RFC 9728 `resource`): the MCP endpoint's URL."""
        return f"{self.resource_host}{self.path}"

    @property
    def metadata_url(self) -> str:
        return f"{self.resource_host}/.well-known/oauth-protected-resource{self.path}"

    @property
    def authorization_servers(self) -> list[str]:
        return [self.authorization_server or self.authority.issuer_v2]

    def scope_uri(self, scope: str) -> str:
        """The form clients request a scope in from Entra: `{app_id_uri}/{scope}`."""
        return scope if "://" in scope else f"{self.app_id_uri}/{scope}"

    def declared_scopes(self) -> list[str]:
        """Every scope this server's tools, routes and MCP__REQUIRED_SCOPES name, short form, OIDC scopes left out."""
        specs = self.catalog.specs
        names = {*self.required_scopes, *self.routes.scopes, *(s for spec in specs for s in spec.requirement.scopes)}
        return sorted(names - OIDC_SCOPES)

    def declared_roles(self) -> list[str]:
        specs = self.catalog.specs
        return sorted(
            {*self.required_roles, *self.routes.roles, *(r for spec in specs for r in spec.requirement.roles)}
        )

    def supported_scopes(self) -> list[str]:
        """The scopes clients request (PRM `scopes_supported`, the 401's `scope`): `{app_id_uri}/{scope}` each."""
        return [self.scope_uri(scope) for scope in self.declared_scopes()]
