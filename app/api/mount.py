"""Serving the discovered routes on the app: their auth, their errors, their OpenAPI schema."""

from __future__ import annotations

from fastapi import FastAPI

from app.api.discovery import RouteCatalog
from app.api.openapi import routes_openapi
from app.auth.dependencies import AuthProblem, RouteAuth, answer_auth_problem
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
    configure_route_limits(
        app, storage, server.name
    )  # `@limiter.limit(...)` on route functions: slowapi, from RATE_LIMIT__*
    for router in routes.routers:
        app.include_router(router)
    app.openapi = routes_openapi(app, server)  # type: ignore[method-assign]
