"""Pytest fixtures for testing tools against the real server: `as_user(scopes=...)`, `as_app(roles=...)`.

Enable with `pytest_plugins = ["app.toolkit.testing"]` in `tests/conftest.py`. The server is the real `create_app`, in
production mode, on a real uvicorn on a free loopback port, validating tokens from a local test issuer over HTTP
exactly as it validates Entra's; clients are the official MCP SDK client. One server runs per test session.

    async def test_forecast(as_user: ClientFactory) -> None:
        async with as_user(scopes=["weather.read"]) as client:
            result = await client.call_tool("forecast", {"city": "Oslo"})
        assert result.structured_content == {"result": "sunny in Oslo"}

Routes (`routes/`) get an HTTP client the same way: `async with api_as_user(scopes=[...]) as http: await
http.get("/api/...")`, and `api_as_app(roles=[...])`; `mcp_server.api(None)` sends no token.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.core.renamed import deprecated_aliases
from app.devissuer.signing import public_jwk
from app.devissuer.tokens import access_token
from app.settings import Settings
from app.toolkit.guards import Denial as Denial
from app.toolkit.guards import default_tools_dir
from app.toolkit.guards import denials as denials
from app.toolkit.guards import discovered_tools as discovered_tools

TEST_TENANT = "7e57e57e-0000-4000-8000-000000007e57"
TEST_CLIENT_ID = "7e57e57e-0000-4000-8000-00000000c11e"
TEST_USER_OID = "7e57e57e-0000-4000-8000-0000000005e7"
TEST_APP_ID = "7e57e57e-0000-4000-8000-000000000a77"

ClientFactory = Callable[..., AbstractAsyncContextManager[Client]]
"""The type of `as_user` / `as_app`: called with scopes or roles (and claims), it opens an MCP client."""
ApiClientFactory = Callable[..., AbstractAsyncContextManager[httpx2.AsyncClient]]
"""The type of `api_as_user` / `api_as_app`: called with scopes or roles (and claims), it opens an HTTP client."""
# `Caller` and `ApiCaller`, the old names, clashed with `app.Caller` (the authenticated caller): deprecated.
__getattr__ = deprecated_aliases(__name__, {"Caller": "ClientFactory", "ApiCaller": "ApiClientFactory"}, globals())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """A uvicorn server in its own thread and event loop; `url` once started."""

    def __init__(self, app: Any, port: int | None = None, **config: Any) -> None:
        self.port = port or free_port()
        config.setdefault("log_level", "warning")
        config.setdefault("timeout_graceful_shutdown", 2)  # idle keep-alive clients must not stall teardown
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, **config))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"server on port {self.port} exited during startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass
class LocalIssuer:
    """A test issuer for one tenant: Entra-shaped v2/v1 discovery and JWKS, and a token mint. Serve `app()`."""

    tenant: str = TEST_TENANT
    audience: str = TEST_CLIENT_ID
    base: str = "http://127.0.0.1:0/"
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))

    @property
    def jwk(self) -> dict[str, str]:
        return public_jwk(self.key)

    @property
    def v2_issuer(self) -> str:
        return f"{self.base}{self.tenant}/v2.0"

    def app(self) -> Starlette:
        jwks = {"keys": [self.jwk]}

        def discovery(version: str, keys: str) -> Callable[[Request], Any]:
            async def endpoint(_: Request) -> JSONResponse:  # `base` is known only once served, so read it late
                issuer = self.v2_issuer if version == "v2" else f"{self.base}{self.tenant}/"
                return JSONResponse({"issuer": issuer, "jwks_uri": f"{self.base}{self.tenant}/{keys}"})

            return endpoint

        async def keys(_: Request) -> JSONResponse:
            return JSONResponse(jwks)

        t = self.tenant
        return Starlette(
            routes=[
                Route(f"/{t}/v2.0/.well-known/openid-configuration", discovery("v2", "discovery/v2.0/keys")),
                Route(f"/{t}/.well-known/openid-configuration", discovery("v1", "discovery/keys")),
                Route(f"/{t}/discovery/v2.0/keys", keys),
                Route(f"/{t}/discovery/keys", keys),
            ]
        )

    def user_token(self, scopes: list[str] | tuple[str, ...] = (), **claims: Any) -> str:
        """A delegated (user) v2 token with `scp`; `claims` add or (with None) remove claims."""
        oid = claims.pop("oid", TEST_USER_OID)
        base = {"oid": oid, "sub": hashlib.sha256(oid.encode()).hexdigest()[:43], "name": "Test User"}
        return self._mint({**base, "scp": " ".join(scopes)}, claims)

    def app_token(self, roles: list[str] | tuple[str, ...] = (), **claims: Any) -> str:
        """An app-only token (client credentials, managed identity): `roles`, no `scp`."""
        app_id = claims.pop("app_id", TEST_APP_ID)
        return self._mint({"oid": app_id, "sub": app_id, "azp": app_id, "idtyp": "app", "roles": list(roles)}, claims)

    def _mint(self, identity: dict[str, Any], overrides: dict[str, Any]) -> str:
        return access_token(
            self.key,
            issuer=self.v2_issuer,
            audience=self.audience,
            tenant=self.tenant,
            identity=identity,
            lifetime=600,
            client_app=TEST_APP_ID,
            overrides=overrides,
        )


@dataclass
class TestServer:
    """The real app on a real uvicorn, trusting `issuer`; make clients with `as_user` / `as_app`."""

    __test__ = False  # not a test class, despite the name

    url: str
    issuer: LocalIssuer
    settings: Settings

    @property
    def endpoint(self) -> str:
        return f"{self.url}{self.settings.mcp.path}"

    @asynccontextmanager
    async def client(self, token: str | None, **kw: Any) -> AsyncIterator[Client]:
        """The official SDK client over Streamable HTTP, sending `token` as the bearer token."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(self.endpoint, http_client=http), **kw) as client,
        ):
            yield client

    def as_user(self, scopes: list[str] | tuple[str, ...] = (), **claims: Any) -> AbstractAsyncContextManager[Client]:
        return self.client(self.issuer.user_token(scopes, **claims))

    def as_app(self, roles: list[str] | tuple[str, ...] = (), **claims: Any) -> AbstractAsyncContextManager[Client]:
        return self.client(self.issuer.app_token(roles, **claims))

    @asynccontextmanager
    async def api(self, token: str | None) -> AsyncIterator[httpx2.AsyncClient]:
        """An HTTP client for the routes beside MCP (`routes/`), sending `token` as the bearer token."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx2.AsyncClient(base_url=self.url, headers=headers, timeout=30) as http:
            yield http

    def api_as_user(self, scopes: list[str] | tuple[str, ...] = (), **claims: Any) -> AbstractAsyncContextManager[Any]:
        return self.api(self.issuer.user_token(scopes, **claims))

    def api_as_app(self, roles: list[str] | tuple[str, ...] = (), **claims: Any) -> AbstractAsyncContextManager[Any]:
        return self.api(self.issuer.app_token(roles, **claims))

    async def post(self, method: str, params: dict[str, Any], token: str | None) -> httpx2.Response:
        """One raw JSON-RPC POST, for asserting on HTTP status (401/403 happen before any MCP dispatch)."""
        headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with httpx2.AsyncClient(timeout=30) as http:
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            return await http.post(self.endpoint, json=body, headers=headers)


@contextmanager
def serve_tools(tools_dir: Path, issuer: LocalIssuer | None = None, **overrides: Any) -> Iterator[TestServer]:
    """Start the app in production mode on `tools_dir`; `overrides` are nested dicts per settings section."""
    issuer = issuer or LocalIssuer()
    with ServerThread(issuer.app()) as issuer_server:
        issuer.base = issuer_server.url + "/"
        port = free_port()
        values: dict[str, Any] = {
            "app_env": "production",
            "azuread": {"instance": issuer.base, "tenant_id": issuer.tenant, "client_id": issuer.audience},
            "mcp": {"resource_host": f"http://127.0.0.1:{port}", "request_state_keys": [secrets.token_hex(32)]},
            # A stale tools.lock is reported once, by the lock test, rather than by every tool test failing to start.
            "tools": {"dir": tools_dir, "lock_mode": "warn"},
        }
        for section, value in overrides.items():
            values[section] = {**values.get(section, {}), **value} if isinstance(value, dict) else value
        settings = Settings(_env_file=None, **values)
        from app.main import create_app  # late: importing the app module is the server's business, not the plugin's

        with ServerThread(create_app(settings), port=port) as server:
            yield TestServer(server.url, issuer, settings)


# ---- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mcp_tools_dir() -> Path:
    """Which tools the `mcp_server` serves; override this fixture in a conftest to point elsewhere."""
    return default_tools_dir()


@pytest.fixture(scope="session")
def mcp_server(mcp_tools_dir: Path) -> Iterator[TestServer]:
    """One real server for the session, on the tools in `mcp_tools_dir`."""
    with serve_tools(mcp_tools_dir) as server:
        yield server


@pytest.fixture
def as_user(mcp_server: TestServer) -> ClientFactory:
    """`async with as_user(scopes=[...], **claims) as client:` an SDK client acting as a signed-in user."""
    return mcp_server.as_user


@pytest.fixture
def as_app(mcp_server: TestServer) -> ClientFactory:
    """`async with as_app(roles=[...], **claims) as client:` an SDK client acting as an app (no user)."""
    return mcp_server.as_app


@pytest.fixture
def api_as_user(mcp_server: TestServer) -> ApiClientFactory:
    """`async with api_as_user(scopes=[...], **claims) as http:` an HTTP client for routes, as a signed-in user."""
    return mcp_server.api_as_user


@pytest.fixture
def api_as_app(mcp_server: TestServer) -> ApiClientFactory:
    """`async with api_as_app(roles=[...], **claims) as http:` an HTTP client for routes, as an app (no user)."""
    return mcp_server.api_as_app
