"""Composition root: `create_app` lists the parts of the server, and `app` is what `uvicorn app.main:app` serves.

The request path, outermost first, is declared in app/compose/http.py; the core every entry point shares (catalog,
secrets, guard, MCP server, lock check) is built in app/compose/core.py. Secrets come from settings (Key Vault among
the sources) into a `SecretStore`, re-read in the background when KEYVAULT__REFRESH_SECONDS is set; every log record
is scrubbed of them (and of tokens) by the redaction filter.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import httpx2
from fastapi import FastAPI

from app.api.discovery import discover_routes
from app.api.mount import mount_routes
from app.auth.assertion import ManagedIdentityAssertion
from app.auth.dependencies import RouteAuth
from app.auth.downstream import OnBehalfOf
from app.authserver.build import build_auth_server
from app.compose.connect import connect_links, with_connect
from app.compose.core import DownstreamFactory, build_cores
from app.compose.devissuer import dev_issuer_config
from app.compose.http import (
    Endpoint,
    Entry,
    closing,
    edge_layers,
    endpoints,
    lifespan,
    resource_routes,
    serving,
    started,
)
from app.compose.secrets import client_credential, rotating, server_assertion
from app.compose.startup import exit_on_startup_error
from app.connect import Links
from app.devissuer.issuer import DevIssuer, listen_socket
from app.edge.limiter import RateCounter
from app.edge.route_throttle import FailedAuthThrottle
from app.observability.access_log import install_access_log_filter
from app.observability.logging import configure_logging
from app.observability.readiness import Readiness, drain_on_sigterm, probes
from app.observability.redaction import REDACTOR
from app.settings import Settings


def create_app(settings: Settings | None = None) -> Entry:
    """Build the whole app from settings: each MCP server, and what they share; all prepared once, here."""
    settings = settings or Settings()
    embedded = settings.dev_issuer_active and settings.dev_issuer.embedded
    # First of all: a taken dev-issuer port is then the one line printed, and the port is held from here on.
    dev_socket = listen_socket(settings.dev_issuer.host, settings.dev_issuer.port) if embedded else None
    configure_logging(settings.log_level, settings.log_style)
    install_access_log_filter()
    routes = discover_routes(settings.routes.dir)  # FastAPI routes from ROUTES__DIR, each guarded or declared public
    assertion, connect = server_assertion(settings), connect_links(settings)  # connect: app/connect/, None when off
    cores = build_cores(settings, routes=routes.requirement, downstream=on_behalf_of(settings, assertion, connect))
    first, rates, secrets = cores[0], settings.rate_limit, cores[0].secrets
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(5.0), follow_redirects=False)
    limiter = RateCounter(rates, namespace=first.server.name)  # one storage (Redis pool) for every server
    served = endpoints(settings, cores, http, limiter)  # each server's token check and layers (app/compose/http.py)
    facade = build_auth_server(  # the authorization-server facade, when enabled (app/authserver/)
        settings.auth_server, [(c.server, client_credential(settings, secrets, c.key, assertion)) for c in cores], http,
        limiter, first.audit, rates.unauthenticated, development=settings.app_env == "development",
    )  # fmt: skip
    # Built here, not at startup, so a bad dev key is reported like any other configuration error.
    issuer = (
        DevIssuer(dev_issuer_config(settings, [c.catalog for c in cores], routes.requirement)) if embedded else None
    )
    closers = [
        close
        for p in (first.content_check, connect, *(e.events for e in served), *(c.tasks for c in cores))
        if (close := getattr(p, "aclose", None))
    ]
    readiness = Readiness()  # Redis is deliberately no check: RATE_LIMIT__ON_STORAGE_ERROR decides what callers get
    readiness.add("jwks", served[0].validator.keys_loaded)  # one signing-key cache for every server
    parts = [  # entered in order at startup, left in reverse at shutdown
        lambda: closing(first.telemetry.flush, http.aclose, facade.aclose, first.threads.close),
        lambda: issuer.running(dev_socket) if issuer is not None else nullcontext(),
        lambda: closing(*closers),
        *(lambda e=e: started(e.validator.start, e.validator.stop) for e in served),
        lambda: started(limiter.start, limiter.close),
        lambda: rotating(settings, secrets, {n for c in cores for n in c.catalog.secrets}, readiness),
        lambda: closing(lambda: REDACTOR.remove(secrets.plain_values)),  # this app's values stop mattering
        *(c.mcp.session_manager.run for c in cores),
        lambda: drain_on_sigterm(readiness, settings.server.drain_seconds),
        lambda: serving([c.server for c in cores], settings.server.gc_threshold),
    ]
    api = FastAPI(
        title=first.server.name,
        lifespan=lifespan(parts),
        docs_url=None,  # no Swagger UI page (it loads from a CDN); the schema alone with ROUTES__OPENAPI
        redoc_url=None,
        openapi_url="/openapi.json" if settings.routes.openapi else None,
        redirect_slashes=False,  # `/mcp/` is a 404, never a redirect clients would follow with their token
        telemetry=first.telemetry.fastapi_config(),
    )
    api.state.settings, api.state.catalog, api.state.validator = settings, first.catalog, served[0].validator
    api.state.mcp, api.state.secrets, api.state.readiness, api.state.cores = first.mcp, secrets, readiness, cores
    api.router.routes += [*resource_routes(served, limiter, rates.unauthenticated, connect), *facade.routes]
    api.include_router(probes(readiness))  # /healthz, and /readyz from the checks above
    # Routes beside MCP belong to the first server: its token rules, challenges and audit (and /mcp's body bounds,
    # layers[0]); failed attempts spend the per-IP budget too. With tracing on, MCP goes through FastAPI.
    mount_routes(api, routes, route_auth(served[0], limiter, rates.unauthenticated), first.server, rates)
    mcp = {e.core.server.path: e.app for e in served}
    return Entry(api, mcp, edge_layers(settings), served[0].layers[0], via_fastapi=first.telemetry.tracing)


def route_auth(first: Endpoint, limiter: RateCounter, rate: str) -> RouteAuth:
    """The routes' dependencies: the first server's token check, challenges, guard and audit."""
    throttle = FailedAuthThrottle(limiter, rate)
    return RouteAuth(
        first.validator, first.challenges, first.core.guard, first.core.observer, throttle, first.core.downstream
    )


def on_behalf_of(
    settings: Settings, assertion: ManagedIdentityAssertion | None, connect: Links | None = None
) -> DownstreamFactory:
    """Downstream tokens over HTTP: on-behalf-of with each server's own credential (the managed identity's assertion,
    a certificate, or the store's current secret), sending users to the connect page when Entra wants them."""
    keys = {one.path: one.key for one in settings.served()}
    return lambda server, store: with_connect(
        connect,
        server,
        OnBehalfOf(
            server.authority.instance,
            server.client_id,
            client_credential(settings, store, keys[server.path], assertion),
        ),
    )


_app: Entry | None = None


def __getattr__(name: str) -> Any:
    """`app` is built on first use, so importing this module never reads settings."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        with exit_on_startup_error():
            _app = create_app()
    return _app
