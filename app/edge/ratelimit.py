"""Rate limits: per principal, per principal and tool, and per client IP while unauthenticated.

Shared counts (Redis) are the `limits` library (the storage and strategies under slowapi), used through its asyncio
API so a Redis round trip never blocks the event loop. slowapi's own Limiter is not used: it is sync and
route/decorator based, while our request path is pure ASGI and the tool name is only known after the body is parsed.
Per-process counts (`memory://`, and the fail-open fallback) are `app.edge.windows`, the same strategies at less cost.
The counters and their storage-outage policy are `RateCounter` (app/edge/limiter.py); this module spends them.
"""

from __future__ import annotations

from typing import Any

import anyio
from limits import parse_many
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.operation import operation_from_scope
from app.auth.principal import principal_from_scope
from app.catalog.registry import Catalog
from app.core.asgi import header, jsonrpc_error, send_json
from app.edge.limiter import RateCounter, ScopedCounter, Verdict
from app.observability.telemetry import record_rate_limit

RATE_LIMITED = -32029  # implementation-defined JSON-RPC server error: "slow down"


def client_ip(scope: Scope) -> str:
    """The client address, as ForwardedHeaders resolved it from SECURITY__TRUSTED_PROXIES (else the TCP peer)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def too_many(send: Send, verdict: Verdict, request_id: Any = None, scope_name: str = "") -> None:
    """429 (or 503 while storage is down and failing closed) with Retry-After and a JSON-RPC error."""
    if verdict.status == 503:
        body = jsonrpc_error(RATE_LIMITED, "rate limiting is unavailable; retry later", request_id)
    else:
        data = {"limit": verdict.limit, "scope": scope_name, "retryAfterSeconds": verdict.retry_after}
        body = jsonrpc_error(RATE_LIMITED, f"rate limit exceeded ({verdict.limit})", request_id, data)
    await send_json(send, verdict.status, body, [("Retry-After", str(verdict.retry_after))])


class RateLimit:
    """After authorization: the principal's default limit on every request, then the tool's own limit, if any."""

    def __init__(self, app: ASGIApp, limiter: RateCounter | ScopedCounter, default: str, catalog: Catalog) -> None:
        self.app = app
        self.limiter = limiter
        self.default = parse_many(default)
        # Each tool's own rate from the one lookup (`Catalog.policy`); the rate has no server-wide default to fill.
        policies = {spec.name: catalog.policy(spec.name) for spec in catalog.of("tool")}
        self.per_tool = {name: parse_many(p.rate) for name, p in policies.items() if p.rate}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = principal_from_scope(scope)
        if scope["type"] != "http" or principal is None:
            await self.app(scope, receive, send)
            return
        operation = operation_from_scope(scope)
        request_id = operation.request_id if operation else None
        verdict = await self.limiter.hit(self.default, "principal", principal.key)
        if not verdict.allowed:
            record_rate_limit("rejected", "per-principal")
            await too_many(send, verdict, request_id, "principal")
            return
        tool = operation.tool if operation else None
        if tool is not None and tool in self.per_tool:
            verdict = await self.limiter.hit(self.per_tool[tool], "tool", tool, principal.key)
            if not verdict.allowed:
                record_rate_limit("rejected", "per-tool")
                await too_many(send, verdict, request_id, "tool")
                return
        record_rate_limit("allowed")  # on the request's span, and (through a contextvar) on its MCP span
        await self.app(scope, receive, send)


class ThrottleUnauthenticated:
    """Before authentication: traffic that does not authenticate is limited per client IP.

    A request without a token is counted up front; one with a token is counted only if it fails to authenticate,
    so valid callers never spend this bucket. Once an IP's bucket is empty it is refused before any token work.

    A request with a token is *pending* from admission until authentication has decided (the inner app first reads
    the body or answers), and it is counted, if it failed, at that moment: before its 401 goes out, not once the whole
    request is over. Pending attempts count against the bucket too: admission needs room for this attempt and every
    other one from the IP still being checked. Without that, attempts that wait in validation (a kid miss waits for the
    issuer's keys, up to its timeout) were all admitted, none counted until each had been answered.
    """

    def __init__(self, app: ASGIApp, limiter: RateCounter, rate: str) -> None:
        self.app = app
        self.limiter = limiter
        self.rate = parse_many(rate)
        self.pending: dict[str, int] = {}  # per IP: attempts with a token whose authentication is undecided

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ip = client_ip(scope)
        if not header(scope["headers"], b"authorization"):
            verdict = await self.limiter.hit(self.rate, "ip", ip)
            if not verdict.allowed:
                record_rate_limit("rejected", "per-client-ip")
                await too_many(send, verdict, None, "client")
                return
            await self.app(scope, receive, send)
            return
        pending = self.pending.get(ip, 0)
        # None (storage down, failing closed): let the authenticated path refuse it, with the request id.
        if await self.limiter.test(self.rate, "ip", ip, cost=pending + 1) is False:
            if pending and await self.limiter.test(self.rate, "ip", ip) is not False:
                # Room for one more, but not for this one and the attempts from this IP still being checked.
                record_rate_limit("rejected", "per-client-ip")
                await too_many(send, Verdict(False, 1, 429, str(self.rate[0])), None, "client")
                return
            verdict = await self.limiter.hit(self.rate, "ip", ip)  # normally refused again; this gives Retry-After
            if not verdict.allowed:
                record_rate_limit("rejected", "per-client-ip")
                await too_many(send, verdict, None, "client")
                return
            await self.app(scope, receive, send)  # the window moved on meanwhile, and this request is counted
            return
        await self._pending(scope, receive, send, ip)

    async def _pending(self, scope: Scope, receive: Receive, send: Send, ip: str) -> None:
        self.pending[ip] = self.pending.get(ip, 0) + 1
        decided = False

        async def decide() -> None:
            nonlocal decided
            decided = True
            left = self.pending[ip] - 1
            if left:
                self.pending[ip] = left
            else:
                del self.pending[ip]
            if principal_from_scope(scope) is None:
                await self.limiter.hit(self.rate, "ip", ip)

        async def deciding_receive() -> Message:
            if not decided:
                await decide()
            return await receive()

        async def deciding_send(message: Message) -> None:
            if not decided:
                await decide()
            await send(message)

        try:
            await self.app(scope, deciding_receive, deciding_send)
        finally:
            if not decided:  # ended without reading or answering (an error, a disconnect): it did not authenticate
                with anyio.CancelScope(shield=True):
                    await decide()
