"""Composition root: how a request flows, top to bottom, and `app` for `uvicorn app.main:app`.

Request path for the MCP endpoint, outermost first (the first four wrap every route):
    HTTP server span (FastAPI's native OpenTelemetry around the whole app; only when an exporter is configured)
    -> response headers: SecurityHeaders (nosniff, no-store, X-Accel-Buffering on SSE)
    -> forwarded headers: ForwardedHeaders (X-Forwarded-For/-Proto/-Host only from SECURITY__TRUSTED_PROXIES)
    -> Host / Origin allow-lists: HostOriginGuard (421 / 403; the SDK's own check sees the same lists)
    -> body size and read time: LimitBody (413 from Content-Length, or while a chunked body is read; 408 for a body
       not in within SECURITY__BODY_TIMEOUT_SECONDS; an answer sent before the body arrived closes the connection)
    -> unauthenticated traffic per client IP: ThrottleUnauthenticated (429)
    -> authentication: AuthenticateBearer (401 / 400)
    -> the operation: ParseOperation (reads and parses the body once, classifies every method; refuses nothing)
    -> rate limits per principal, and per principal and tool: RateLimit (429 + Retry-After; refused or not,
       every authenticated request spends from its principal's budget)
    -> per-operation authorization: AuthorizeOperation (400 for what is malformed, batched or not classified,
       403 step-up; before dispatch)
    -> long-lived streams (listen, stateful GET), per principal and overall: CapStreams (429 / 503, never queued;
       ended cleanly at SECURITY__MAX_STREAM_SECONDS; a stateless GET is 405)
    -> tool calls in flight, per principal and overall: CapConcurrency (429 / 503, never queued)
    -> the SDK's own DNS-rebinding check (given the same Host / Origin lists)
    -> MCP dispatch: the SDK's Streamable HTTP session manager, with its MCP span, then ObserveOperation
       (duration metric, span attributes, tool-call audit record), SecretGuard (secrets bound for `secret()`,
       secrets and tokens scrubbed from results and errors), CallerContext (caller bound, lists filtered)
       and ToolBounds (timeout, result size)
    -> the tool (a plain `def` tool on a worker thread of the TOOLS__THREADS pool: app/server/threads.py)

Routes beside MCP (`routes/`, app/api/): the same edge and body bounds, then FastAPI with the auth dependencies
(app/auth/dependencies.py: /mcp's token rules, challenges, audit and per-IP budget for failed attempts).

Secrets come from settings (Key Vault among the sources) into a `SecretStore`, re-read in the background when
KEYVAULT__REFRESH_SECONDS is set; every log record is scrubbed of them (and of tokens) by the redaction filter.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx2
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from pydantic import ValidationError
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.discovery import RouteDiscoveryError, discover_routes
from app.api.mount import mount_routes
from app.auth.authz import AuthorizeOperation, Guard
from app.auth.challenge import Challenges
from app.auth.dependencies import RouteAuth
from app.auth.downstream import OnBehalfOf, settings_credential
from app.auth.metadata import app_id_uri_warning, declared_scopes, protected_resource_metadata, supported_scopes
from app.auth.middleware import AuthenticateBearer
from app.auth.operation import ParseOperation
from app.auth.tokens import EntraTokenValidator
from app.authserver.build import build_auth_server
from app.catalog.discovery import discover
from app.catalog.registry import Requirement, ToolDiscoveryError
from app.compose.devissuer import dev_issuer_config
from app.core.asgi import EnsureResponse
from app.core.heap import freeze_startup_heap
from app.devissuer.issuer import DevIssuer, DevIssuerPortError, listen_socket
from app.devissuer.signing import DevKeyError
from app.edge.bounds import CapConcurrency, LimitBody
from app.edge.headers import ForwardedHeaders, HostOriginGuard, SecurityHeaders, sdk_transport_security
from app.edge.limiter import Limiter
from app.edge.ratelimit import RateLimit, ThrottleUnauthenticated
from app.edge.route_throttle import FailedAuthThrottle
from app.edge.streams import CapStreams
from app.observability.access_log import install_access_log_filter
from app.observability.audit import AuditLog, AuditSinkError
from app.observability.exporters import TelemetryConfigError
from app.observability.logging import configure_logging
from app.observability.observe import Observer
from app.observability.readiness import Readiness, drain_on_sigterm, probes
from app.observability.redaction import REDACTOR, install_redaction
from app.observability.telemetry import setup_telemetry
from app.secrets.store import SecretRefresher, SecretsError, SecretStore, load_tool_secrets, set_process_store
from app.server import toolslock
from app.server.build import build_mcp_server
from app.server.content import content_safety_from
from app.server.events import event_store_from, resumability
from app.server.sessions import SessionScope
from app.server.threads import ToolThreads
from app.settings import Settings, describe_invalid
from app.settings.keyvault import KeyVaultError

log = logging.getLogger("app")


def create_app(settings: Settings | None = None) -> Entry:
    """Build the whole server from settings; every piece that can be prepared once is prepared here."""
    settings = settings or Settings()
    embedded_issuer = settings.dev_issuer_active and settings.dev_issuer.embedded
    # First of all: a taken dev-issuer port is then the one line printed, and the port is held from here on.
    dev_socket = listen_socket(settings.dev_issuer.host, settings.dev_issuer.port) if embedded_issuer else None
    configure_logging(settings)
    install_access_log_filter()
    telemetry = setup_telemetry(settings)
    catalog = discover(settings.tools.dir)
    routes = discover_routes(settings.routes.dir)  # FastAPI routes from ROUTES__DIR, each guarded or declared public
    route_requirement = Requirement(frozenset(routes.scopes), frozenset(routes.roles))
    secrets = SecretStore(settings, load_tool_secrets(catalog.secrets, settings))
    install_redaction(secrets.plain_values)
    set_process_store(secrets)
    observer = Observer(telemetry, AuditLog.open(settings.audit.sink), catalog)
    if (mismatch := app_id_uri_warning(settings)) is not None:
        log.warning(mismatch)
    # The 401 names the scopes Protected Resource Metadata lists (`{app_id_uri}/{scope}`), never offline_access.
    challenges = Challenges(settings.resource_metadata_url, supported_scopes(settings, catalog, route_requirement))
    guard = Guard(catalog, settings.mcp.required_scopes, settings.mcp.required_roles, settings.scope_uri)
    credential = settings_credential(settings, lambda: secrets.settings.azuread.client_secret)  # OBO and the facade
    downstream = OnBehalfOf(settings, credential)
    content_check = content_safety_from(settings)
    threads = ToolThreads(settings.tools.threads)
    # Built here, not at startup, so a bad dev key is reported like any other configuration error.
    issuer = DevIssuer(dev_issuer_config(settings, catalog, route_requirement)) if embedded_issuer else None
    mcp = build_mcp_server(settings, catalog, guard, secrets, observer, downstream, content_check, threads)
    # Tool integrity: what models will be shown must match the reviewed tools.lock (app/server/toolslock.py).
    if settings.tools_lock_mode != "off":
        toolslock.enforce(settings.tools_lock_mode, settings.tools.lock_path, toolslock.served_sync(mcp, catalog))
    events = event_store_from(settings)  # resumable session streams (app/server/events.py)
    mcp.streamable_http_app(  # builds the SDK session manager; we route to it ourselves (no Mount, so no 307)
        **resumability(settings, events),
        streamable_http_path=settings.mcp.path,
        stateless_http=settings.mcp.stateless,
        json_response=settings.mcp.json_response,
        transport_security=sdk_transport_security(settings),
        max_request_body_size=settings.security.max_body_bytes,
        session_idle_timeout=settings.security.session_idle_seconds,
        max_sessions=settings.security.max_sessions,
    )
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(5.0), follow_redirects=False)
    validator = EntraTokenValidator(settings, http)
    limiter = Limiter(settings.rate_limit, namespace=settings.mcp.server_name)
    security, rates = settings.security, settings.rate_limit

    telemetry.track_sessions(mcp.session_manager)

    sdk = StreamableHTTPASGIApp(mcp.session_manager)
    sessions = SessionScope(
        sdk, not settings.mcp.stateless, events is not None, mcp.session_manager, security.max_sessions_per_principal
    )
    mcp_endpoint: ASGIApp = EnsureResponse(sessions)
    mcp_endpoint = CapConcurrency(
        mcp_endpoint, security.max_concurrent_calls_per_principal, security.max_concurrent_calls
    )
    mcp_endpoint = CapStreams(
        mcp_endpoint,
        security.max_streams_per_principal,
        security.max_streams,
        security.max_stream_seconds,
        settings.mcp.stateless,
    )
    mcp_endpoint = AuthorizeOperation(mcp_endpoint, guard, challenges, observer)
    mcp_endpoint = RateLimit(mcp_endpoint, limiter, rates.default, catalog)
    mcp_endpoint = ParseOperation(mcp_endpoint)
    mcp_endpoint = AuthenticateBearer(mcp_endpoint, validator, challenges, observer)
    mcp_endpoint = ThrottleUnauthenticated(mcp_endpoint, limiter, rates.unauthenticated)
    mcp_endpoint = LimitBody(mcp_endpoint, security.max_body_bytes, security.body_timeout_seconds)

    auth_server = build_auth_server(settings, http, limiter, observer.audit, credential, challenges.default_scopes)
    readiness = Readiness()  # other components register theirs: readiness.add("redis", ping)
    # Rate-limit storage is deliberately not a readiness check: a Redis outage must not take every replica out of
    # rotation; RATE_LIMIT__ON_STORAGE_ERROR decides what callers get instead.
    readiness.add("jwks", validator.keys_loaded)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.callback(telemetry.flush)  # runs last: what shutdown itself recorded is exported too
            stack.push_async_callback(http.aclose)
            stack.push_async_callback(auth_server.aclose)
            stack.callback(threads.close)
            if issuer is not None:
                await stack.enter_async_context(issuer.running(dev_socket))
            for closeable in (content_check, events):
                if (close := getattr(closeable, "aclose", None)) is not None:
                    stack.push_async_callback(close)
            await validator.start()
            stack.push_async_callback(validator.stop)
            await limiter.start()
            stack.push_async_callback(limiter.close)
            if settings.keyvault.refresh_seconds:
                refresher = SecretRefresher(secrets, catalog.secrets, settings.keyvault.refresh_seconds)
                await stack.enter_async_context(refresher.running())
                if settings.keyvault.url:  # reachable = the last background re-read got through (no extra calls)
                    readiness.add("key_vault", refresher.last_refresh_ok)
            stack.callback(REDACTOR.remove, secrets.plain_values)  # this app's values stop mattering once it stops
            await stack.enter_async_context(mcp.session_manager.run())
            stack.enter_context(drain_on_sigterm(readiness, settings.server.drain_seconds))
            log.info("serving %d tool(s) at %s", len(catalog.of("tool")), settings.resource)
            freeze_startup_heap(settings.server.gc_threshold)  # what was built so far lives as long as the process
            yield

    app = FastAPI(
        title=settings.mcp.server_name,
        lifespan=lifespan,
        docs_url=None,  # no Swagger UI page (it loads from a CDN); the schema alone with ROUTES__OPENAPI
        redoc_url=None,
        openapi_url="/openapi.json" if settings.routes.openapi else None,
        redirect_slashes=False,  # `/mcp/` is a 404, never a redirect clients would follow with their token
        telemetry=telemetry.fastapi_config(),
    )
    app.state.settings, app.state.catalog, app.state.validator, app.state.mcp = settings, catalog, validator, mcp
    app.state.secrets = secrets
    app.state.readiness = readiness
    app.router.routes.append(Route(settings.mcp.path, endpoint=mcp_endpoint, methods=["GET", "POST", "DELETE"]))
    # Metadata is public and static: one prepared response, behind the per-IP limit for unauthenticated traffic.
    prm = ThrottleUnauthenticated(
        JSONResponse(protected_resource_metadata(settings, catalog, route_requirement)), limiter, rates.unauthenticated
    )
    app.router.routes.append(Route(f"/.well-known/oauth-protected-resource{settings.mcp.path}", prm, methods=["GET"]))
    # And at the root, where clients that ignore the path (and Entra's MCP guidance) look for it.
    app.router.routes.append(Route("/.well-known/oauth-protected-resource", prm, methods=["GET"]))
    app.router.routes.extend(auth_server.routes)  # the authorization-server facade, when enabled (app/authserver/)
    app.include_router(probes(readiness))  # /healthz, and /readyz from the checks above

    # Routes beside MCP, with /mcp's token rules, challenges and audit; failed attempts spend the per-IP budget too.
    throttle = FailedAuthThrottle(limiter, rates.unauthenticated)
    route_auth = RouteAuth(validator, challenges, guard, observer, throttle)
    mount_routes(app, routes, route_auth, settings, declared_scopes(settings, catalog, route_requirement))

    # With tracing on, /mcp goes through FastAPI so its native HTTP span parents the SDK's MCP span.
    return Entry(app, settings, mcp_endpoint, via_fastapi=telemetry.tracing)


class Entry:
    """The ASGI app uvicorn serves: edge layers on every route, then `MCP__PATH` straight to the MCP chain.

    FastAPI serves the rest (metadata, probes). Its per-request stack (exception middlewares, an exit stack,
    routing) does nothing for the MCP endpoint, whose layers are pure ASGI, so the MCP path skips it.
    """

    def __init__(self, api: FastAPI, settings: Settings, mcp_endpoint: ASGIApp, via_fastapi: bool) -> None:
        self.api, self.state = api, api.state
        path = settings.mcp.path
        # Routes beside MCP get the same body bounds (size, and read time: no slow-loris on a webhook either).
        bounded_api = LimitBody(api, settings.security.max_body_bytes, settings.security.body_timeout_seconds)

        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await api(scope, receive, send)
            elif scope["path"] != path:
                await bounded_api(scope, receive, send)
            elif via_fastapi:  # the MCP route is in FastAPI, its own LimitBody inside
                await api(scope, receive, send)
            else:
                await mcp_endpoint(scope, receive, send)

        inner: ASGIApp = dispatch
        # Outermost first: response headers, forwarded headers (only from trusted proxies), Host/Origin allow-lists.
        inner = HostOriginGuard(inner, hosts=settings.allowed_hosts, origins=settings.allowed_origins)
        if settings.security.trusted_proxies:  # default: trust no proxy at all
            inner = ForwardedHeaders(inner, trusted=settings.security.trusted_proxies)
        self._app: ASGIApp = SecurityHeaders(inner)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


_app: Entry | None = None


def __getattr__(name: str) -> Any:
    """`app` is built on first use, so importing this module never reads settings."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        try:
            _app = create_app()
        except ValidationError as exc:
            print(f"configuration error: {describe_invalid(exc)}", file=sys.stderr)
            raise SystemExit(2) from None
        except ToolDiscoveryError as exc:
            print(f"tools error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except RouteDiscoveryError as exc:
            print(f"routes error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except (KeyVaultError, SecretsError) as exc:
            print(f"secrets error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except (TelemetryConfigError, AuditSinkError, DevKeyError, DevIssuerPortError, OSError) as exc:
            print(f"configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    return _app
