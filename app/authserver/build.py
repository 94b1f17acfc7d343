"""The facade's routes, built from its options and the resource servers; nothing at all when it is off."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import httpx2
from limits import parse_many
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, request_response

from app.auth.downstream import ClientCredential
from app.auth.resource import ResourceServer
from app.authserver.authorize import CONSENT_PATH, Authorize
from app.authserver.cimd import ClientDocuments
from app.authserver.clients import Registry
from app.authserver.context import FacadeContext, Target, answering
from app.authserver.options import CALLBACK_PATH, FacadeOptions
from app.authserver.store import Sealed, StateStore, open_store
from app.authserver.token import Token, metadata
from app.authserver.upstream import Upstream
from app.edge.limiter import RateCounter
from app.edge.ratelimit import ThrottleUnauthenticated
from app.observability.audit import AuditLog

PATHS = {"authorize": "/oauth/authorize", "token": "/oauth/token", "register": "/oauth/register"}


class AuthServer:
    """The routes to mount, and what to close at shutdown."""

    def __init__(self, routes: list[BaseRoute], store: StateStore | None, documents: ClientDocuments | None) -> None:
        self.routes, self.store, self.documents = routes, store, documents

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):  # shutting down: a store that is already gone is fine
            if self.documents is not None:
                await self.documents.aclose()
            if self.store is not None:
                await self.store.aclose()


def build_auth_server(
    config: FacadeOptions,
    resources: Sequence[tuple[ResourceServer, Callable[[], ClientCredential | None]]],
    http: httpx2.AsyncClient,
    limiter: RateCounter,
    audit: AuditLog,
    unauthenticated_rate: str,
    development: bool = False,
) -> AuthServer:
    """The facade in front of the authority of `resources` (each server and its credential at that authority; the
    first is the one a request without RFC 8707 `resource` is for); `unauthenticated_rate` is the per-IP budget of
    every endpoint. Each server is signed in for as its own app registration (its client id, its credential), all
    through the one callback `{issuer}/oauth/callback`.

    `development` lets Client ID Metadata Documents be fetched from loopback (a client on this machine)."""
    if not config.enabled:
        return AuthServer([], None, None)
    first = resources[0][0]
    uri = config.state_uri.get_secret_value() if config.state_uri else None
    store = open_store(uri, config.memory_max_bytes)
    sealed = Sealed(store)
    documents = ClientDocuments(
        config.cimd_max_bytes, config.cimd_timeout_seconds, config.cimd_cache_entries, development
    )
    issuer = first.authorization_server or first.resource_host
    per_ip = parse_many(config.registrations_per_ip)

    async def registrations(ip: str) -> int:
        verdict = await limiter.hit(per_ip, "register", ip)  # the rate-limit storage: shared by replicas with Redis
        return 0 if verdict.allowed else max(1, verdict.retry_after)

    several = len(resources) > 1
    targets = tuple(
        Target(
            resource=server.resource,
            app_id_uri=server.app_id_uri,
            server_name=server.name,
            scopes=tuple(server.supported_scopes()),
            upstream=Upstream(server.authority.base, server.client_id, http, credential, issuer + CALLBACK_PATH),
            audit_name=server.name if several else None,
        )
        for server, credential in resources
    )
    ctx = FacadeContext(
        issuer=issuer,
        targets=targets,
        consent_seconds=config.consent_seconds,
        refresh_seconds=config.refresh_seconds,
        secure_cookies=issuer.startswith("https://"),
        sealed=sealed,
        registry=Registry(config.clients, sealed, config.pending_registration_seconds),
        documents=documents,
        audit=audit,
        admit_registration=registrations,
    )
    authorize, token = Authorize(ctx), Token(ctx)
    document = JSONResponse(metadata(ctx, PATHS), headers={"cache-control": "max-age=300"})
    rate = unauthenticated_rate

    def limited(path: str, app: object, methods: list[str]) -> Route:
        # Every facade endpoint is unauthenticated traffic: the per-IP budget of RATE_LIMIT__UNAUTHENTICATED.
        return Route(path, ThrottleUnauthenticated(app, limiter, rate), methods=methods)  # type: ignore[arg-type]

    routes: list[BaseRoute] = [
        limited("/.well-known/oauth-authorization-server", document, ["GET"]),
        limited(PATHS["register"], request_response(answering(token.register)), ["POST"]),
        limited(PATHS["token"], request_response(answering(token.token)), ["POST"]),
        limited(PATHS["authorize"], request_response(answering(authorize.authorize, page=True)), ["GET"]),
        limited(CONSENT_PATH, request_response(answering(authorize.consent, page=True)), ["POST"]),
        limited(CALLBACK_PATH, request_response(answering(authorize.callback, page=True)), ["GET"]),
    ]
    return AuthServer(routes, store, documents)
