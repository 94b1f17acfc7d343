"""The counters behind /mcp's rate limits: `limits`' asyncio API on shared storage (Redis), so a Redis round trip
never blocks the event loop, or `app.edge.windows` per process (`memory://`, and the fail-open fallback); a storage
outage follows RATE_LIMIT__ON_STORAGE_ERROR, logged once. The middleware that spends them is app/edge/ratelimit.py.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from limits import RateLimitItem, WindowStats
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError
from pydantic import SecretStr
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.core.renamed import deprecated_aliases
from app.edge.windows import Windows

log = logging.getLogger("app.ratelimit")

T = TypeVar("T")
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


class StorageOptions(Protocol):
    """What a rate counter reads from RATE_LIMIT__* (the settings section has these attributes)."""

    @property
    def storage_uri(self) -> SecretStr | None: ...
    @property
    def strategy(self) -> Literal["moving-window", "sliding-window-counter", "fixed-window"]: ...
    @property
    def on_storage_error(self) -> Literal["fail_open", "fail_closed"]: ...


class RateCounter:
    """Counters in shared storage (moving window by default); an outage follows the configured policy, logged once."""

    def __init__(self, settings: StorageOptions, namespace: str) -> None:
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

    def scoped(self, name: str) -> ScopedCounter:
        """The same counters, storage and outage state (one Redis pool), keyed under `name` too: each MCP server of
        the app counts its callers apart, so one server's budget is never spent at another."""
        return ScopedCounter(self, name)

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


class ScopedCounter:
    """`RateCounter.scoped`: every key carries the server's name after the counter's own namespace."""

    def __init__(self, counter: RateCounter, name: str) -> None:
        self.counter, self.name = counter, name

    async def hit(self, items: list[RateLimitItem], *identifiers: str) -> Verdict:
        return await self.counter.hit(items, self.name, *identifiers)

    async def test(self, items: list[RateLimitItem], *identifiers: str, cost: int = 1) -> bool | None:
        return await self.counter.test(items, self.name, *identifiers, cost=cost)


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


# `Limiter`, the old name, clashed with slowapi's `limiter` for routes: kept, deprecated, for one release.
__getattr__ = deprecated_aliases(__name__, {"Limiter": "RateCounter"}, globals())
