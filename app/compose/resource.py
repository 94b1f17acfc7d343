"""Settings become values: the resource server, and each part's options. The only readers of `Settings` below the
entry points (app/main.py, app/local/, the toolkit) live in this package."""

from __future__ import annotations

from app.auth.resource import NO_ROUTES, Authority, ResourceServer
from app.catalog.registry import Catalog, Requirement
from app.observability.telemetry import TelemetryOptions
from app.server.build import ServerOptions
from app.settings import Served, Settings


def authority(settings: Settings) -> Authority:
    ad = settings.azuread
    return Authority(
        instance=settings.instance,
        tenant_id=settings.tenant_id,
        multi_tenant=ad.multi_tenant,
        allowed_tenants=frozenset(ad.allowed_tenants),
        accept_v1=ad.accept_v1,
        clock_skew_seconds=ad.clock_skew_seconds,
        jwks_refresh_seconds=ad.jwks_refresh_seconds,
        jwks_max_age_seconds=ad.jwks_max_age_seconds,
    )


def resource_server(
    settings: Settings, catalog: Catalog, routes: Requirement = NO_ROUTES, served: Served | None = None
) -> ResourceServer:
    """One server of this app as a protected resource (the first by default: MCP__*, AZUREAD__*), under the shared
    authority, with the facade's issuer when it is on."""
    one = served or settings.served()[0]
    return ResourceServer(
        name=one.name,
        path=one.path,
        resource_host=settings.resource_host,
        client_id=one.client_id,
        app_id_uri=one.app_id_uri,
        audiences=one.audiences,
        authority=authority(settings),
        catalog=catalog,
        required_scopes=one.required_scopes,
        required_roles=one.required_roles,
        implied_scopes=one.implied_scopes,
        routes=routes,
        authorization_server=settings.auth_server_issuer if settings.auth_server.enabled else None,
    )


def server_options(settings: Settings, name: str | None = None) -> ServerOptions:
    return ServerOptions(
        name=name or settings.mcp.server_name,
        log_level=settings.log_level,
        list_ttl_ms=settings.mcp.list_ttl_ms,
        filter_lists=settings.tools.filter_list,
        stateless=settings.mcp.stateless,
        tool_timeout_seconds=settings.security.tool_timeout_seconds,
        max_result_bytes=settings.security.max_result_bytes,
        threads=settings.tools.threads,
    )


def telemetry_options(settings: Settings) -> TelemetryOptions:
    return TelemetryOptions(
        service_name=settings.mcp.server_name,
        enduser_id=settings.telemetry.enduser_id,
        enduser_id_key=settings.telemetry.enduser_id_key,
        production=settings.app_env == "production",
    )
