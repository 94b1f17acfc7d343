"""Rate limits: per principal, per principal and tool, and per client IP while unauthenticated.

Shared counts (Redis) are the `limits` library (the storage and strategies under slowapi), used through its asyncio
API so a Redis round trip never blocks the event loop. slowapi's own Limiter is not used: it is sync and
route/decorator based, while our request path is pure ASGI and the tool name is only known after the body is parsed.
Per-process counts (`memory://`, and the fail-open fallback) are `app.edge.windows`, the same strategies at less cost.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from limits import RateLimitItem, WindowStats, parse_many
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.operation import operation_from_scope
from app.auth.principal import principal_from_scope
from app.catalog.registry import Catalog
from app.core.asgi import header, jsonrpc_error, send_json
from app.edge.windows import Windows
from app.observability.telemetry import record_rate_limit
from app.settings import RateLimitSettings

log = logging.getLogger("app.ratelimit")

T = TypeVar("T")
RATE_LIMITED = -32029  # implementation-defined JSON-RPC server error: "slow down"
STORAGE_RETRY_SECONDS = 1.0  # while storage is down, try it again at most this often (no per-request timeouts)
REDIS_TIMEOUT_SECONDS = 0.5  # a hung Redis delays only the requests that probe it, by at most this
FAIL_CLOSED_RETRY_AFTER = 5
STRATEGIES: dict[str, Callable[[Storage], RateLimiter]] = {
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int = 0
    status: int = 429  # 503 when storage is down and the policy is fail_closed
    limit: str = ""


ALLOWED = Verdict(True)
STORAGE_ERRORS = (StorageError, ConnectionError, TimeoutError, OSError)


class Limiter:
    """Counters in shared storage (moving window by default); an outage follows the configured policy, logged once."""

    def __init__(self, settings: RateLimitSettings, namespace: str) -> None:
        self.namespace = namespace
        self.fail_open = settings.on_storage_error == "fail_open"
        uri = settings.storage_uri.get_secret_value() if settings.storage_uri else "memory://"
        self.shared = not uri.removeprefix("async+").startswith("memory://")
        # In-process counts: all there is with memory://, and the fail_open fallback while shared storage is down
        # (bounded, if not replica-exact).
        self.local = Windows(settings.strategy)
        self.storage: Storage | None = _storage(uri) if self.shared else None
        self.primary: RateLimiter | None = STRATEGIES[settings.strategy](self.storage) if self.storage else None
        self.down = False
        self._retry_at = 0.0

    async def start(self) -> None:
        """Probe shared storage once at startup, so a misconfigured URI shows up in the log immediately."""
        storage = self.storage
        if storage is not None and not await self._on_storage(lambda _: storage.check()):
            self._mark_down(None)

    async def close(self) -> None:
        """Release the Redis connection pool (limits has no close of its own; its bridge holds the client)."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None and hasattr(client, "aclose"):
            await client.aclose()

    async def hit(self, items: list[RateLimitItem], *identifiers: str) -> Verdict:
        """Count one request against every item; the first exhausted item refuses it."""
        key = self._key(identifiers)
        for item in items:
            allowed = await self._count(item, key, counting=True) if self.shared else self.local.hit(item, key)
            if allowed is None:
                if not self.fail_open:
                    return Verdict(False, FAIL_CLOSED_RETRY_AFTER, 503)
                if not self.local.hit(item, key):
                    return self._refused_locally(item, key)
            elif not allowed:
                if not self.shared:
                    return self._refused_locally(item, key)
                return Verdict(False, await self._retry_after(item, key), 429, str(item))
        return ALLOWED

    async def test(self, items: list[RateLimitItem], *identifiers: str, cost: int = 1) -> bool | None:
        """Whether `cost` more hits would be allowed (nothing is counted); None while storage is down and failing
        closed."""
        key = self._key(identifiers)
        for item in items:
            ok = await self._count(item, key, False, cost) if self.shared else self.local.test(item, key, cost)
            if ok is None:
                if not self.fail_open:
                    return None
                ok = self.local.test(item, key, cost)
            if not ok:
                return False
        return True

    def _key(self, identifiers: tuple[str, ...]) -> str:
        """One identifier, pre-joined: limits joins the parts with "/" into the same storage key, at more cost."""
        return "/".join((self.namespace, *identifiers))

    def _refused_locally(self, item: RateLimitItem, key: str) -> Verdict:
        return Verdict(False, max(1, math.ceil(self.local.retry_after(item, key))), 429, str(item))

    async def _count(self, item: RateLimitItem, key: str, counting: bool, cost: int = 1) -> bool | None:
        """One hit (or test) on shared storage; None when it fails, or without trying while it is known to be down."""
        return await self._on_storage(lambda s: s.hit(item, key) if counting else s.test(item, key, cost=cost))

    async def _retry_after(self, item: RateLimitItem, key: str) -> int:
        stats: WindowStats | None = await self._on_storage(lambda s: s.get_window_stats(item, key))
        reset = stats.reset_time if stats is not None else time.time() + item.get_expiry()
        return max(1, math.ceil(reset - time.time()))

    async def _on_storage(self, op: Callable[[RateLimiter], Awaitable[T]]) -> T | None:
        """Run `op` on shared storage; None when it fails, and without trying while it is known to be down."""
        if self.down and time.monotonic() < self._retry_at:
            return None
        try:
            assert self.primary is not None  # only called with shared storage
            result = await op(self.primary)
        except STORAGE_ERRORS as exc:
            self._mark_down(exc)
            return None
        if self.down:
            self._mark_up()
        return result

    def _mark_up(self) -> None:
        self.down = False
        log.warning("rate-limit storage is reachable again; counts are shared across replicas once more")

    def _mark_down(self, exc: BaseException | None) -> None:
        if not self.down:  # logged once per outage, not once per request
            policy = (
                "per-process in-memory limits (fail_open)" if self.fail_open else "503 to every caller (fail_closed)"
            )
            reason = type(exc.__cause__ or exc).__name__ if exc else "no answer"
            log.error("rate-limit storage unavailable (%s); answering with %s until it recovers", reason, policy)
        self.down = True
        self._retry_at = time.monotonic() + STORAGE_RETRY_SECONDS


def _storage(uri: str) -> Storage:
    """limits' asyncio storage for a shared `redis://` URI (redis-py client, short socket timeouts)."""
    uri = uri.removeprefix("async+")
    return RedisStorage(
        f"async+{uri}",
        wrap_exceptions=True,
        implementation="redispy",
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        # No client retries: a hit is not idempotent, and a silent retry after a timeout would count it twice.
        retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]
    )


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

    def __init__(self, app: ASGIApp, limiter: Limiter, default: str, catalog: Catalog) -> None:
        self.app = app
        self.limiter = limiter
        self.default = parse_many(default)
        self.per_tool = {s.name: parse_many(s.limits.rate) for s in catalog.of("tool") if s.limits.rate}

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

    def __init__(self, app: ASGIApp, limiter: Limiter, rate: str) -> None:
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
