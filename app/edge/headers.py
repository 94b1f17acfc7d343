"""Whole-app ASGI layers at the network edge: forwarded headers, Host / Origin allow-lists, response headers."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.core.asgi import send_json

log = logging.getLogger("app.edge")

PROBE_PATHS = frozenset({"/healthz", "/readyz"})


class ForwardedHeaders:
    """X-Forwarded-For / -Proto / -Host are honoured only when the TCP peer is a trusted proxy.

    For / Proto: uvicorn's ProxyHeadersMiddleware (CIDR-aware), applied here so it holds however uvicorn
    is launched. Host: uvicorn has no X-Forwarded-Host support, so this layer adds it with the same trust set.
    """

    def __init__(self, app: ASGIApp, trusted: list[str]) -> None:
        self.inner = ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]
        self.trusted = self.inner.trusted_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            if client and client[0] in self.trusted:  # checked before the inner layer rewrites `client`
                _use_forwarded_host(scope)
        await self.inner(scope, receive, send)  # type: ignore[arg-type]


def _use_forwarded_host(scope: Scope) -> None:
    """Replace Host with the last X-Forwarded-Host value: the one our (trusted) nearest proxy set."""
    forwarded = [v for k, v in scope["headers"] if k == b"x-forwarded-host"]
    if not forwarded:
        return
    value = forwarded[-1].rsplit(b",", 1)[-1].strip()
    if not value or len(value) > 255 or any(c <= 32 or c >= 127 for c in value):
        return  # malformed: keep the proxy's own Host, which the allow-list then judges
    scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", value)]


class HostOriginGuard:
    """421 for a Host outside the allow-list, 403 for a present Origin outside it; probes are exempt.

    Runs after forwarded-header handling, so it judges the public Host a trusted proxy reported.
    Orchestrator and load-balancer probes address the instance by IP and carry no data, hence the exemption.
    """

    def __init__(self, app: ASGIApp, hosts: Iterable[str], origins: Iterable[str]) -> None:
        self.app = app
        self.hosts = HostPatterns(hosts)
        self.origins = HostPatterns(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        hosts = [value for key, value in scope["headers"] if key == b"host"]
        origins = [value for key, value in scope["headers"] if key == b"origin"]
        if len(hosts) > 1:  # RFC 9112 §3.2: more than one Host is a 400; layers must not disagree on which counts
            await send_json(send, 400, {"error": "invalid_request", "error_description": "send exactly one Host"})
            return
        if not hosts or not self.hosts.match(hosts[0].decode("latin-1").lower()):
            log.info("request refused", extra={"reason": "host_not_allowed"})
            await send_json(send, 421, {"error": "misdirected_request", "error_description": "unknown Host"})
            return
        if origins and (len(origins) > 1 or not self.origins.match(origins[0].decode("latin-1").lower())):
            log.info("request refused", extra={"reason": "origin_not_allowed"})
            await send_json(send, 403, {"error": "forbidden", "error_description": "Origin not allowed"})
            return
        if hosts[0] != hosts[0].lower() or (origins and origins[0] != origins[0].lower()):
            # Host and scheme are case-insensitive; the SDK's own check compares exactly, so hand it lower case.
            scope["headers"] = [(k, v.lower() if k in (b"host", b"origin") else v) for k, v in scope["headers"]]
        await self.app(scope, receive, send)


class HostPatterns:
    """Exact values, or `prefix:*` for any port: the SDK's TransportSecuritySettings syntax (hosts and origins)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = [p.lower() for p in patterns]
        self.exact = frozenset(p for p in patterns if not p.endswith(":*"))
        self.any_port = tuple(p[:-1] for p in patterns if p.endswith(":*"))  # keeps the ':'

    def match(self, value: str) -> bool:
        if value in self.exact:
            return True
        return any(value.startswith(prefix) and value[len(prefix) :].isdigit() for prefix in self.any_port)


class SecurityHeaders:
    """`X-Content-Type-Options: nosniff` and `Cache-Control: no-store` on every response (answers are per caller).

    SSE responses also get `X-Accel-Buffering: no`, so nginx-style proxies stream them even if buffering is on.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _secured(message.get("headers", []))}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _secured(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    cache: list[bytes] = []
    nosniff = sse = accel = False
    for name, value in raw:  # one pass: this runs on every response
        name = name.lower()
        if name == b"cache-control":
            cache.append(value)
        elif name == b"x-content-type-options":
            nosniff = True
        elif name == b"content-type":
            sse = sse or value.startswith(b"text/event-stream")
        elif name == b"x-accel-buffering":
            accel = True
        headers.append((name, value))
    joined = b", ".join(cache)
    if b"no-store" not in joined:  # the SDK's SSE `no-cache` still lets caches store; a caller's data must not be
        if cache:
            headers = [h for h in headers if h[0] != b"cache-control"]
        headers.append((b"cache-control", b"no-store, no-transform" if b"no-transform" in joined else b"no-store"))
    if not nosniff:
        headers.append((b"x-content-type-options", b"nosniff"))
    if sse and not accel:
        headers.append((b"x-accel-buffering", b"no"))
    return headers


def sdk_transport_security(hosts: list[str], origins: list[str]) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding protection, from the same allow-lists as HostOriginGuard.

    It sees the Host after ForwardedHeaders, i.e. the public host a trusted proxy reported, so it holds behind proxies.
    """
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=origins,
    )
