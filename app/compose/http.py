"""The HTTP request path, declared outermost first and folded once (Starlette's `Middleware` list), and the app
uvicorn serves.

Request path for the MCP endpoint, outermost first (the first three wrap every route; `EDGE` below):
    response headers: SecurityHeaders (nosniff, no-store, X-Accel-Buffering on SSE)
    -> forwarded headers: ForwardedHeaders (X-Forwarded-For/-Proto/-Host only from SECURITY__TRUSTED_PROXIES)
    -> Host / Origin allow-lists: HostOriginGuard (421 / 403; the SDK's own check sees the same lists)
then each MCP server's path (`MCP__PATH`, `SERVERS__{NAME}__PATH`), its own chain (`mcp_layers` below):
    body size and read time: LimitBody (413 from Content-Length, or while a chunked body is read; 408 for a body
       not in within SECURITY__BODY_TIMEOUT_SECONDS; an answer sent before the body arrived closes the connection)
    -> unauthenticated traffic per client IP: ThrottleUnauthenticated (429; one budget for the whole app)
    -> authentication: AuthenticateBearer (401 / 400; this server's audiences, its challenge and PRM)
    -> the operation: ParseOperation (reads and parses the body once, classifies every method; refuses nothing)
    -> rate limits per principal, and per principal and tool, keyed by server too: RateLimit (429 + Retry-After;
       refused or not, every authenticated request spends from its principal's budget)
    -> per-operation authorization: AuthorizeOperation (400 for what is malformed, batched or not classified,
       403 step-up; before dispatch)
    -> long-lived streams (listen, stateful GET), per principal and overall: CapStreams (429 / 503, never queued;
       ended cleanly at SECURITY__MAX_STREAM_SECONDS; a stateless GET is 405)
    -> tool calls in flight, per principal and overall: CapConcurrency (429 / 503, never queued)
    -> tasks, per principal and overall, when a tool may run as one: AdmitTasks (429 / 503, never queued)
    -> a response for every request: EnsureResponse
    -> sessions bound to their principal, capped per principal: SessionScope
    -> the SDK's own DNS-rebinding check (given the same Host / Origin lists)
    -> MCP dispatch: the SDK's Streamable HTTP session manager, with its MCP span, then its middleware
       (app/server/build.py: ObserveOperation, TaskLayer, SecretGuard, CallerContext, ToolBounds, AskClient)
    -> the tool (a plain `def` tool on a worker thread of the TOOLS__THREADS pool: app/server/threads.py)
With tracing on, FastAPI's native HTTP server span wraps the whole app and the MCP route goes through FastAPI.

Routes beside MCP (`routes/`, app/api/): the same edge and body bounds, then FastAPI with the auth dependencies
(app/auth/dependencies.py: the first server's token rules, challenges, audit and per-IP budget for failed attempts).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.authz import AuthorizeOperation
from app.auth.challenge import Challenges
from app.auth.metadata import protected_resource_metadata
from app.auth.middleware import AuthenticateBearer
from app.auth.operation import ParseOperation
from app.auth.resource import ResourceServer
from app.auth.tokens import EntraTokenValidator
from app.compose.core import Core
from app.compose.parts import event_store_from, resumability
from app.connect import Links, connect_routes
from app.core.asgi import EnsureResponse
from app.core.heap import freeze_startup_heap
from app.edge.bounds import CapConcurrency, LimitBody
from app.edge.headers import ForwardedHeaders, HostOriginGuard, SecurityHeaders, sdk_transport_security
from app.edge.limiter import RateCounter
from app.edge.ratelimit import RateLimit, ThrottleUnauthenticated
from app.edge.streams import CapStreams
from app.server.events import ScopedEventStore
from app.server.sessions import SessionScope
from app.settings import Settings
from app.tasks.admit import AdmitTasks

Part = AbstractAsyncContextManager[Any] | AbstractContextManager[Any]
WELL_KNOWN = "/.well-known/oauth-protected-resource"
log = logging.getLogger("app")


def fold(app: ASGIApp, layers: Sequence[Middleware]) -> ASGIApp:
    """Wrap `app` in `layers`, given outermost first (as Starlette builds its middleware stack)."""
    for cls, args, kwargs in reversed(layers):
        app = cls(app, *args, **kwargs)
    return app


def edge_layers(settings: Settings) -> list[Middleware]:
    """What wraps every route, outermost first."""
    proxies = settings.security.trusted_proxies  # default: trust no proxy at all
    return [
        Middleware(SecurityHeaders),
        *([Middleware(ForwardedHeaders, trusted=proxies)] if proxies else []),
        Middleware(HostOriginGuard, hosts=settings.allowed_hosts, origins=settings.allowed_origins),
    ]


def mcp_layers(
    settings: Settings,
    core: Core,
    validator: EntraTokenValidator,
    limiter: RateCounter,
    challenges: Challenges,
) -> list[Middleware]:
    """One MCP server's own layers, outermost first (the module docstring says what each refuses). The per-IP
    throttle counts in `limiter` itself (one budget for the whole app); a second or further server's callers are
    counted under its name (`RateCounter.scoped`), so one server's budget is never spent at another."""
    security, rates = settings.security, settings.rate_limit
    per_caller = limiter.scoped(core.server.name) if core.key else limiter
    return [
        Middleware(LimitBody, security.max_body_bytes, security.body_timeout_seconds),
        Middleware(ThrottleUnauthenticated, limiter, rates.unauthenticated),
        Middleware(AuthenticateBearer, validator, challenges, core.observer),
        Middleware(ParseOperation),
        Middleware(RateLimit, per_caller, rates.default, core.catalog),
        Middleware(AuthorizeOperation, core.guard, challenges, core.observer),
        Middleware(
            CapStreams,
            security.max_streams_per_principal,
            security.max_streams,
            security.max_stream_seconds,
            settings.mcp.stateless,
        ),
        Middleware(CapConcurrency, security.max_concurrent_calls_per_principal, security.max_concurrent_calls),
        *([Middleware(AdmitTasks, tasks.modes, tasks.store, tasks.options)] if (tasks := core.tasks) else []),
        Middleware(EnsureResponse),
    ]


def sdk_endpoint(settings: Settings, core: Core, events: ScopedEventStore | None) -> ASGIApp:
    """The SDK's session manager (we route to it ourselves: no Mount, so no 307), behind `SessionScope`."""
    mcp = core.mcp
    mcp.streamable_http_app(
        **resumability(settings, events),
        streamable_http_path=core.server.path,
        stateless_http=settings.mcp.stateless,
        json_response=settings.mcp.json_response,
        transport_security=sdk_transport_security(settings.allowed_hosts, settings.allowed_origins),
        max_request_body_size=settings.security.max_body_bytes,
        session_idle_timeout=settings.security.session_idle_seconds,
        max_sessions=settings.security.max_sessions,
    )
    core.telemetry.track_sessions(mcp.session_manager)
    sdk = StreamableHTTPASGIApp(mcp.session_manager)
    manager, stateful = mcp.session_manager, not settings.mcp.stateless
    return SessionScope(sdk, stateful, events is not None, manager, settings.security.max_sessions_per_principal)


@dataclass
class Endpoint:
    """One MCP server on the request path: its token check, its layers folded around its SDK endpoint."""

    core: Core
    validator: EntraTokenValidator
    challenges: Challenges
    layers: list[Middleware]
    app: ASGIApp
    events: ScopedEventStore | None


def endpoints(
    settings: Settings, cores: Sequence[Core], http: httpx2.AsyncClient, limiter: RateCounter
) -> list[Endpoint]:
    """Each server's endpoint; the validators share one signing-key cache (the authority is the app's)."""
    found: list[Endpoint] = []
    for core in cores:
        server = core.server
        validator = EntraTokenValidator(server, http, keys_of=found[0].validator if found else None)
        # The 401 names the scopes its PRM lists (`{app_id_uri}/{scope}`), never offline_access.
        challenges = Challenges(server.metadata_url, server.supported_scopes())
        # Resumable session streams (app/server/events.py): one Redis pool for every server.
        events = event_store_from(settings, server.name, found[0].events if found else None)
        layers = mcp_layers(settings, core, validator, limiter, challenges)
        found.append(
            Endpoint(core, validator, challenges, layers, fold(sdk_endpoint(settings, core, events), layers), events)
        )
    return found


def lifespan(parts: Sequence[Callable[[], Part]]) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: each part entered in order at startup and left in reverse at shutdown."""

    @asynccontextmanager
    async def run(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for part in parts:
                entered = part()
                if isinstance(entered, AbstractAsyncContextManager):
                    await stack.enter_async_context(entered)
                else:
                    stack.enter_context(entered)
            yield

    return run


@asynccontextmanager
async def started(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """A part with start and stop coroutines, as a lifespan part."""
    await start()
    try:
        yield
    finally:
        await stop()


@asynccontextmanager
async def closing(*closers: Callable[[], Any]) -> AsyncIterator[None]:
    """Call each closer (sync or async) at shutdown, last given first; one that fails does not skip the others."""

    async def call(close: Callable[[], Any]) -> None:
        result = close()
        if isinstance(result, Awaitable):
            await result

    async with AsyncExitStack() as stack:
        for close in closers:
            stack.push_async_callback(call, close)
        yield


def resource_routes(
    endpoints: Sequence[Endpoint], limiter: RateCounter, rate: str, connect: Links | None = None
) -> list[BaseRoute]:
    """Each MCP endpoint and its Protected Resource Metadata: public and static, so one prepared response behind the
    per-IP limit for unauthenticated traffic, at the path's own location (`{WELL_KNOWN}{path}`); the first server's
    is at the root too (where clients that ignore the path, and Entra's MCP guidance, look for it). With `connect`,
    the connect page its tool calls send users to (app/connect/), within the same per-IP limit."""
    routes: list[BaseRoute] = []
    if connect is not None:
        connect.audit = endpoints[0].core.audit
        routes += connect_routes(connect, limiter, rate)
    for index, endpoint in enumerate(endpoints):
        server = endpoint.core.server
        prm = ThrottleUnauthenticated(JSONResponse(protected_resource_metadata(server)), limiter, rate)
        routes += [
            Route(server.path, endpoint=endpoint.app, methods=["GET", "POST", "DELETE"]),
            Route(f"{WELL_KNOWN}{server.path}", prm, methods=["GET"]),
            *([Route(WELL_KNOWN, prm, methods=["GET"])] if index == 0 else []),
        ]
    return routes


@asynccontextmanager
async def serving(servers: Sequence[ResourceServer], gc_threshold: int) -> AsyncIterator[None]:
    """The last part: say what is served, then freeze what was built so far (it lives as long as the process)."""
    for server in servers:
        log.info("serving %d tool(s) at %s", len(server.catalog.of("tool")), server.resource)
    freeze_startup_heap(gc_threshold)
    yield


class Entry:
    """The ASGI app uvicorn serves: the edge on every route, then each MCP path straight to its server's chain.

    FastAPI serves the rest (metadata, probes, routes). Its per-request stack (exception middlewares, an exit stack,
    routing) does nothing for an MCP endpoint, whose layers are pure ASGI, so MCP paths skip it.
    """

    def __init__(
        self,
        api: FastAPI,
        mcp: Mapping[str, ASGIApp],
        edge: Sequence[Middleware],
        body: Middleware,
        via_fastapi: bool,
    ) -> None:
        """`mcp`: each MCP path and its chain. `body`: the MCP endpoint's body bounds, which the routes beside it
        get too (no slow-loris on a webhook). `via_fastapi` (tracing on): MCP routes go through FastAPI, so its
        native HTTP span parents the SDK's."""
        self.api, self.state = api, api.state
        bounded_api = fold(api, [body])
        paths = dict(mcp)

        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await api(scope, receive, send)
            elif (chain := paths.get(scope["path"])) is None:
                await bounded_api(scope, receive, send)
            elif via_fastapi:
                await api(scope, receive, send)
            else:
                await chain(scope, receive, send)

        self._app = fold(dispatch, edge)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
