"""Serving the discovered routes on the app: their auth, their errors, their OpenAPI schema."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.api.discovery import RouteCatalog
from app.api.openapi import routes_openapi
from app.auth.dependencies import AuthProblem, RouteAuth, answer_auth_problem
from app.auth.downstream import ConsentRequired, DownstreamAuthError
from app.auth.resource import ResourceServer
from app.edge.limiter import StorageOptions
from app.edge.route_limits import configure_route_limits


def mount_routes(
    app: FastAPI, routes: RouteCatalog, auth: RouteAuth, server: ResourceServer, storage: StorageOptions
) -> None:
    """Include every discovered router after the server's own routes, so none can shadow metadata or probes.

    The auth dependencies (app/auth/dependencies.py) find `auth` on `app.state` and answer as `/mcp` does.
    """
    app.state.route_auth = auth
    app.add_exception_handler(AuthProblem, answer_auth_problem)
    app.add_exception_handler(DownstreamAuthError, answer_downstream_error)
    configure_route_limits(
        app, storage, server.name
    )  # `@limiter.limit(...)` on route functions: slowapi, from RATE_LIMIT__*
    for router in routes.routers:
        app.include_router(router)
    app.openapi = routes_openapi(app, server)  # type: ignore[method-assign]


async def answer_downstream_error(request: Request, exc: Exception) -> JSONResponse:
    """A route's `downstream_token(...)` that failed, answered as a tool's call is instead of a 500: consent or
    Conditional Access the user can satisfy is a 403 with the connect page's link (bound to this caller, as the tool
    call's URL elicitation is); any other failure is a 502 with the exchange's error code (never a token)."""
    if isinstance(exc, ConsentRequired):
        link = await exc.recovery.link(exc.need)
        body = {"error": "consent_required", "error_description": link.message, "connect_url": link.url}
        return JSONResponse(body, status_code=403)
    return JSONResponse({"error": "downstream_unavailable", "error_description": str(exc)[:300]}, status_code=502)
