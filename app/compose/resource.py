"""Settings become values: the resource server, and each part's options. The only readers of `Settings` below the
entry points (app/main.py, app/local/, the toolkit) live in this package."""

from __future__ import annotations

from app.auth.resource import NO_ROUTES, Authority, ResourceServer
from app.catalog.registry import Catalog, Requirement
from app.observability.telemetry import TelemetryOptions
from app.server.build import ServerOptions
from app.settings import Settings


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


def resource_server(settings: Settings, catalog: Catalog, routes: Requirement = NO_ROUTES) -> ResourceServer:
    """This server as a protected resource: MCP__*, AZUREAD__* and the facade's issuer when it is on."""
    return ResourceServer(
        name=settings.mcp.server_name,
        path=settings.mcp.path,
        resource_host=settings.resource_host,
        client_id=settings.client_id,
        app_id_uri=settings.app_id_uri,
        audiences=tuple(settings.audiences),
        authority=authority(settings),
        catalog=catalog,
        required_scopes=tuple(settings.mcp.required_scopes),
        required_roles=tuple(settings.mcp.required_roles),
        implied_scopes=settings.mcp.implied_scopes,
        routes=routes,
        authorization_server=settings.auth_server_issuer if settings.auth_server.enabled else None,
    )


def server_options(settings: Settings) -> ServerOptions:
    return ServerOptions(
        name=settings.mcp.server_name,
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
