"""Embedded development issuer: stands in for one Entra tenant on loopback, so `make run` needs no cloud account.

It serves Entra-shaped v2 and v1 discovery documents and a JWKS from a key kept under `.dev/`. The server
validates its tokens with the same code, over HTTP, as it validates Entra's; nothing is bypassed. The tenant has one
app registration per MCP server of the app (config.py's `DevApp`): each server's tokens carry its own audience.
Usage: `python -m app.devissuer token [--server KEY] [--scopes "a b"] [--roles "r"] [--app]`, or `… serve` to run
it on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from app.core.hosts import is_loopback_host
from app.core.startup import StartupError
from app.devissuer.config import DevIssuerConfig
from app.devissuer.endpoints import DevAuthorizationServer
from app.devissuer.gate import DevIssuerGate
from app.devissuer.oidc import IdTokens
from app.devissuer.rules import DevUser
from app.devissuer.running import recorded
from app.devissuer.signing import load_or_create_key, public_jwk
from app.devissuer.tls import tls_options
from app.devissuer.tokens import access_token

DEV_USER_OID = "22222222-2222-4222-8222-222222222222"
DEV_CLIENT_APP_ID = "33333333-3333-4333-8333-333333333333"


class DevIssuerPortError(StartupError):
    """The embedded dev issuer cannot listen on its address (the port is taken, or not allowed)."""


def listen_socket(host: str, port: int) -> socket.socket:
    """The embedded issuer's listening socket, bound when the app is built: a taken port is then a one-line
    configuration error before anything starts (not a failure inside the server's startup), and the port stays
    held until the issuer serves on it."""
    if not is_loopback_host(host):
        raise RuntimeError("the dev issuer listens on loopback only")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no clash
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = "address in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or type(exc).__name__).lower()
        raise DevIssuerPortError(
            f"the dev issuer cannot listen on {host}:{port} ({why}); set DEV_ISSUER__PORT to a free port, "
            "or DEV_ISSUER__EMBEDDED=false to use one already running"
        ) from None
    return sock


class DevIssuer:
    """One tenant's discovery documents and keys, and a token mint for them."""

    def __init__(self, config: DevIssuerConfig) -> None:
        if config.app_env == "production":
            raise RuntimeError("the dev issuer never runs in production")
        self.config = config
        self.base = config.instance.rstrip("/")
        self.tenant = config.tenant_id
        self.key = load_or_create_key(config.key_dir)
        self.jwk = public_jwk(self.key)
        # Sign-in for local OAuth clients (endpoints.py), offering the scopes and roles the config names.
        self.oauth = DevAuthorizationServer(config, self.base, self.tenant, self.mint)
        # OpenID Connect sign-in (MSAL's), when a client asks for `openid`.
        self.oauth.id_tokens = IdTokens(self.key, self.jwk["kid"], self.v2_issuer, self.tenant)

    @property
    def v2_issuer(self) -> str:
        return f"{self.base}/{self.tenant}/v2.0"

    @property
    def v1_issuer(self) -> str:
        return f"{self.base}/{self.tenant}/"

    def mint(
        self,
        scopes: str = "",
        roles: str = "",
        app_only: bool = False,
        lifetime: int = 3600,
        *,
        user: DevUser | None = None,
        client_app: str | None = None,
        server: str = "",
    ) -> str:
        """A v2 access token for one server, shaped like Entra's (delegated, or app-only with roles); `user` and
        `client_app` (the `azp`) are the sign-in page's test user and OAuth client. `server`: which server's app it
        is for (its key; "" the first, `SERVERS__{KEY}` otherwise): `aud` is that server's client id."""
        identity: dict[str, Any]
        if app_only:
            identity = {"sub": DEV_CLIENT_APP_ID, "oid": DEV_CLIENT_APP_ID, "idtyp": "app"}
        else:
            who = user or DevUser(DEV_USER_OID, "Dev User", "dev@localhost")
            identity = {"sub": who.sub, "oid": who.oid, "name": who.name, "preferred_username": who.username}
            identity["scp"] = scopes
        if roles:
            identity["roles"] = roles.split()
        return access_token(
            self.key,
            issuer=self.v2_issuer,
            audience=self.config.app(server).audience,
            tenant=self.tenant,
            identity=identity,
            lifetime=lifetime,
            client_app=client_app or DEV_CLIENT_APP_ID,
        )

    def asgi_app(self) -> ASGIApp:
        async def v2(_: Request) -> JSONResponse:
            return JSONResponse(self._discovery(self.v2_issuer, "discovery/v2.0/keys") | self.oauth.metadata())

        async def v1(_: Request) -> JSONResponse:
            return JSONResponse(self._discovery(self.v1_issuer, "discovery/keys"))

        async def keys(_: Request) -> JSONResponse:
            return JSONResponse({"keys": [self.jwk]})

        t = self.tenant
        app = Starlette(
            routes=[
                Route(f"/{t}/v2.0/.well-known/openid-configuration", v2),
                # RFC 8414 (and its OpenID form) put the issuer's path after the well-known name.
                Route(f"/.well-known/oauth-authorization-server/{t}/v2.0", v2),
                Route(f"/.well-known/openid-configuration/{t}/v2.0", v2),
                Route(f"/{t}/.well-known/openid-configuration", v1),
                Route(f"/{t}/discovery/v2.0/keys", keys),
                Route(f"/{t}/discovery/keys", keys),
                *self.oauth.routes(),
            ]
        )
        return DevIssuerGate(app, self.config.host, self.config.port, self.config.rate)

    def _discovery(self, issuer: str, keys_path: str) -> dict[str, Any]:
        return {
            "issuer": issuer,
            "jwks_uri": f"{self.base}/{self.tenant}/{keys_path}",
            "authorization_endpoint": f"{self.base}/{self.tenant}/oauth2/v2.0/authorize",
            "token_endpoint": f"{self.base}/{self.tenant}/oauth2/v2.0/token",
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    async def serve(self, sock: socket.socket | None = None) -> EmbeddedServer:
        """Start serving on `sock` (from `listen_socket`), else on the configured loopback address; returns the
        running server."""
        host, port = self.config.host, self.config.port
        if not is_loopback_host(host):
            raise RuntimeError("the dev issuer listens on loopback only")
        certfile, keyfile = tls_options(self.config)
        server = EmbeddedServer(
            uvicorn.Config(
                self.asgi_app(),
                host=host,
                port=port,
                log_level="warning",
                lifespan="off",
                access_log=False,
                ssl_certfile=certfile,
                ssl_keyfile=keyfile,
            )
        )
        task = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None), name="dev-issuer")
        while not server.started:
            if task.done():
                raise RuntimeError(f"the dev issuer could not listen on {host}:{port} (is the port in use?)")
            await asyncio.sleep(0.02)
        server.task = task
        return server

    @contextlib.asynccontextmanager
    async def running(self, sock: socket.socket | None = None) -> AsyncIterator[None]:
        """Serve (as `serve`) and say so (`announce_dev`) for as long as the context lasts, then stop."""
        server = await self.serve(sock)
        try:
            with recorded(self.config):  # `make token` mints for this issuer (running.py)
                announce_dev(self.config)
                yield
        finally:
            server.should_exit = True
            await server.task


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server inside another one's event loop: the outer server owns the signals."""

    task: asyncio.Task[None]

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def announce_dev(config: DevIssuerConfig, reloading: bool = False) -> None:
    """What `make run` prints once the embedded issuer is up: where tokens come from, a first command to try, and
    when changes to tools are picked up (`reloading`: `make dev` restarts the app on its own)."""
    log = logging.getLogger("app")
    log.warning("DEVELOPMENT MODE: tokens come from the dev issuer at %s", config.instance)
    for app in config.apps:  # each server's own tokens: `make token SERVER=key` for a server of SERVERS__*
        log.info(
            "try it: npx -y -p node@22 -p @modelcontextprotocol/inspector@2.12.0 mcp-inspector --cli %s "
            '--transport http --method tools/list --header "Authorization: Bearer $(make -s token%s)"',
            app.resource,
            f" SERVER={app.key}" if app.key else "",
        )
    if not reloading:
        log.info("tools and routes are read at startup: restart after changing them, or use `make dev` to reload")
