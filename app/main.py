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
from app.auth.challenge import Challenges
from app.auth.dependencies import RouteAuth
from app.auth.downstream import OnBehalfOf
from app.auth.tokens import EntraTokenValidator
from app.authserver.build import build_auth_server
from app.compose.core import DownstreamFactory, build_core
from app.compose.devissuer import dev_issuer_config
from app.compose.http import (
    Entry,
    closing,
    edge_layers,
    fold,
    lifespan,
    mcp_layers,
    resource_routes,
    sdk_endpoint,
    serving,
    started,
)
from app.compose.parts import event_store_from
from app.compose.secrets import client_credential, rotating
from app.compose.startup import exit_on_startup_error
from app.devissuer.issuer import DevIssuer, listen_socket
from app.edge.limiter import RateCounter
from app.edge.route_throttle import FailedAuthThrottle
from app.observability.access_log import install_access_log_filter
from app.observability.logging import configure_logging
from app.observability.readiness import Readiness, drain_on_sigterm, probes
from app.observability.redaction import REDACTOR
from app.settings import Settings


def create_app(settings: Settings | None = None) -> Entry:
    """Build the whole server from settings; every piece that can be prepared once is prepared here."""
    settings = settings or Settings()
    embedded = settings.dev_issuer_active and settings.dev_issuer.embedded
    # First of all: a taken dev-issuer port is then the one line printed, and the port is held from here on.
    dev_socket = listen_socket(settings.dev_issuer.host, settings.dev_issuer.port) if embedded else None
    configure_logging(settings.log_level, settings.log_format)
    install_access_log_filter()
    routes = discover_routes(settings.routes.dir)  # FastAPI routes from ROUTES__DIR, each guarded or declared public
    core = build_core(settings, routes=routes.requirement, downstream=on_behalf_of(settings))
    server, rates, secrets = core.server, settings.rate_limit, core.secrets
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(5.0), follow_redirects=False)
    validator, limiter = EntraTokenValidator(server, http), RateCounter(rates, namespace=server.name)
    # The 401 names the scopes Protected Resource Metadata lists (`{app_id_uri}/{scope}`), never offline_access.
    challenges = Challenges(server.metadata_url, server.supported_scopes())
    events = event_store_from(settings)  # resumable session streams (app/server/events.py)
    layers = mcp_layers(settings, core, validator, limiter, challenges)
    mcp = fold(sdk_endpoint(settings, core, events), layers)
    facade = build_auth_server(  # the authorization-server facade, when enabled (app/authserver/)
        settings.auth_server, server, http, limiter, core.observer.audit, client_credential(settings, secrets),
        rates.unauthenticated, development=settings.app_env == "development",
    )  # fmt: skip
    # Built here, not at startup, so a bad dev key is reported like any other configuration error.
    issuer = DevIssuer(dev_issuer_config(settings, core.catalog, routes.requirement)) if embedded else None
    readiness = Readiness()  # Redis is deliberately no check: RATE_LIMIT__ON_STORAGE_ERROR decides what callers get
    readiness.add("jwks", validator.keys_loaded)
    parts = [  # entered in order at startup, left in reverse at shutdown
        lambda: closing(core.telemetry.flush, http.aclose, facade.aclose, core.threads.close),
        lambda: issuer.running(dev_socket) if issuer is not None else nullcontext(),
        lambda: closing(*(close for p in (core.content_check, events) if (close := getattr(p, "aclose", None)))),
        lambda: started(validator.start, validator.stop),
        lambda: started(limiter.start, limiter.close),
        lambda: rotating(settings, secrets, core.catalog.secrets, readiness),
        lambda: closing(lambda: REDACTOR.remove(secrets.plain_values)),  # this app's values stop mattering
        core.mcp.session_manager.run,
        lambda: drain_on_sigterm(readiness, settings.server.drain_seconds),
        lambda: serving(server, settings.server.gc_threshold),
    ]
    api = FastAPI(
        title=server.name,
        lifespan=lifespan(parts),
        docs_url=None,  # no Swagger UI page (it loads from a CDN); the schema alone with ROUTES__OPENAPI
        redoc_url=None,
        openapi_url="/openapi.json" if settings.routes.openapi else None,
        redirect_slashes=False,  # `/mcp/` is a 404, never a redirect clients would follow with their token
        telemetry=core.telemetry.fastapi_config(),
    )
    api.state.settings, api.state.catalog, api.state.validator = settings, core.catalog, validator
    api.state.mcp, api.state.secrets, api.state.readiness, api.state.core = core.mcp, secrets, readiness, core
    api.router.routes += [*resource_routes(server, mcp, limiter, rates.unauthenticated), *facade.routes]
    api.include_router(probes(readiness))  # /healthz, and /readyz from the checks above
    # Routes beside MCP, with /mcp's token rules, challenges and audit; failed attempts spend the per-IP budget too.
    throttle = FailedAuthThrottle(limiter, rates.unauthenticated)
    mount_routes(api, routes, RouteAuth(validator, challenges, core.guard, core.observer, throttle), server, rates)
    # Routes beside MCP get /mcp's body bounds (layers[0], LimitBody); with tracing on, /mcp goes through FastAPI.
    return Entry(api, server.path, mcp, edge_layers(settings), layers[0], via_fastapi=core.telemetry.tracing)


def on_behalf_of(settings: Settings) -> DownstreamFactory:
    """Downstream tokens over HTTP: on-behalf-of with this server's credential (the store's current secret)."""
    return lambda server, store: OnBehalfOf(
        server.authority.instance, server.client_id, client_credential(settings, store)
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
