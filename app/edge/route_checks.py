"""One app's route limits at request time: slowapi `Limiter`s on its storage, the storage-outage policy around them
(RATE_LIMIT__ON_STORAGE_ERROR), and the 429 / 503 a refusal becomes. `@limiter.limit` (route_limits.py) records a
`RouteSpec` per decorated route; `RouteLimits` checks a call against it.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request
from redis.backoff import NoBackoff
from redis.retry import Retry
from slowapi import Limiter as SlowapiLimiter
from slowapi.errors import RateLimitExceeded
from starlette.exceptions import HTTPException

from app.auth.principal import Principal
from app.edge.limiter import (
    FAIL_CLOSED_RETRY_AFTER,
    REDIS_TIMEOUT_SECONDS,
    STORAGE_ERRORS,
    STORAGE_RETRY_SECONDS,
    StorageOptions,
)
from app.observability.telemetry import record_rate_limit

log = logging.getLogger("app.ratelimit")
POLICY = "per-route"  # the rate_limit.policy label of a refusal, beside /mcp's per-principal, per-tool, per-client-ip
SPEC = "__route_limit__"  # on a decorated endpoint: its RouteSpec (so a stacked decorator finds the one below it)

# Per call: set once the limit check has passed and the route function itself runs. An exception raised before that
# came from the check (a storage error, a refusal); one raised after it is the route's own, and passes through.
_entered: contextvars.ContextVar[list[bool]] = contextvars.ContextVar("route_limit_entered")


def route_key(request: Request) -> str:
    """The default key: the authenticated caller, else (a public route) the client address."""
    principal = getattr(request.state, "principal", None)
    if isinstance(principal, Principal):
        return f"principal:{principal.key}"
    return f"ip:{request.client.host if request.client else 'unknown'}"


class RouteLimitError(HTTPException):
    """A refusal: 429 past the limit, 503 while storage is down and the policy is fail_closed."""

    def __init__(self, status_code: int, retry_after: int, description: str) -> None:
        super().__init__(status_code, description, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after
        self.description = description


class RouteSpec:
    """One `@limiter.limit(...)`: the route function, its limit, and what slowapi is given for it."""

    def __init__(self, func: Callable[..., Any], value: str | Callable[..., str], options: dict[str, Any]) -> None:
        self.value = value
        self.options = options
        self.below: RouteSpec | None = getattr(func, SPEC, None)  # a second @limiter.limit under this one
        self.target = _entering(func)  # what slowapi wraps: marks the check as passed, then runs the function


class RouteLimits:
    """One app's route limits: slowapi Limiters on its storage, and the storage-outage policy around them."""

    def __init__(self, settings: StorageOptions, namespace: str) -> None:
        uri = (settings.storage_uri.get_secret_value() if settings.storage_uri else "memory://").removeprefix("async+")
        self.shared = not uri.startswith("memory://")
        self.fail_open = settings.on_storage_error == "fail_open"
        prefix = f"{namespace}/route"
        self.primary = _slowapi(uri, settings.strategy, prefix)
        # fail_open: while shared storage is down, the same limits are counted in this process.
        self.fallback = _slowapi("memory://", settings.strategy, prefix) if self.shared and self.fail_open else None
        self.down = False
        self._retry_at = 0.0
        self._wrapped: dict[RouteSpec, tuple[Callable[..., Any], Callable[..., Any] | None]] = {}
        self._lock = threading.Lock()

    async def run_async(self, spec: RouteSpec, request: Request, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        primary, fallback = self._wrappers(spec)
        cell = [False]
        token = _entered.set(cell)
        try:
            if self._use_primary():
                try:
                    result = await primary(*args, **kwargs)
                except RateLimitExceeded as exc:
                    if cell[0]:
                        raise  # the route's own
                    raise self._refused(request, exc, self.primary) from None
                except STORAGE_ERRORS as exc:
                    self._failed(cell, exc)
                else:
                    self._storage_ok()
                    return result
            if fallback is None:
                raise _unavailable()
            try:
                return await fallback(*args, **kwargs)
            except RateLimitExceeded as exc:
                if cell[0]:
                    raise  # the route's own
                raise self._refused(request, exc, self.fallback) from None
        finally:
            _entered.reset(token)

    def run_sync(self, spec: RouteSpec, request: Request, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The same for a `def` route (FastAPI runs it on a worker thread, so slowapi's storage calls block that)."""
        primary, fallback = self._wrappers(spec)
        cell = [False]
        token = _entered.set(cell)
        try:
            if self._use_primary():
                try:
                    result = primary(*args, **kwargs)
                except RateLimitExceeded as exc:
                    if cell[0]:
                        raise  # the route's own
                    raise self._refused(request, exc, self.primary) from None
                except STORAGE_ERRORS as exc:
                    self._failed(cell, exc)
                else:
                    self._storage_ok()
                    return result
            if fallback is None:
                raise _unavailable()
            try:
                return fallback(*args, **kwargs)
            except RateLimitExceeded as exc:
                if cell[0]:
                    raise  # the route's own
                raise self._refused(request, exc, self.fallback) from None
        finally:
            _entered.reset(token)

    def _wrappers(self, spec: RouteSpec) -> tuple[Callable[..., Any], Callable[..., Any] | None]:
        """slowapi's wrappers of `spec` on this app's limiters, made at its first request here.

        A stacked decorator's limits are registered with it: slowapi checks every limit of a function at the
        outermost decorator (all are registered under the function's name), so the one below must be known by then.
        """
        wrapped = self._wrapped.get(spec)
        if wrapped is None:
            with self._lock:
                chain: RouteSpec | None = spec
                while chain is not None:
                    if chain not in self._wrapped:
                        self._wrapped[chain] = (
                            self._register(self.primary, chain),
                            self._register(self.fallback, chain) if self.fallback else None,
                        )
                    chain = chain.below
                wrapped = self._wrapped[spec]
        return wrapped

    @staticmethod
    def _register(limiter: SlowapiLimiter, spec: RouteSpec) -> Callable[..., Any]:
        options = {**spec.options, "key_func": spec.options["key_func"] or route_key}
        decorator: Callable[[Callable[..., Any]], Callable[..., Any]] = limiter.limit(spec.value, **options)
        return decorator(spec.target)

    def _use_primary(self) -> bool:
        return not self.down or time.monotonic() >= self._retry_at

    def _failed(self, cell: list[bool], exc: BaseException) -> None:
        """A storage error from the check (from the route itself, it is re-raised): the outage policy applies."""
        if cell[0]:
            raise exc
        if not self.down:  # logged once per outage, not once per request
            policy = "per-process in-memory limits (fail_open)" if self.fail_open else "503 (fail_closed)"
            reason = type(exc.__cause__ or exc).__name__
            log.error(
                "rate-limit storage unavailable for routes (%s); answering with %s until it recovers", reason, policy
            )
        self.down = True
        self._retry_at = time.monotonic() + STORAGE_RETRY_SECONDS

    def _storage_ok(self) -> None:
        if self.down:
            self.down = False
            log.warning("rate-limit storage is reachable again; route limits are shared across replicas once more")

    def _refused(self, request: Request, exc: RateLimitExceeded, counted_by: SlowapiLimiter | None) -> RouteLimitError:
        """429 with the seconds until the refused window has room (one more storage read, on refusals only)."""
        if exc.limit is None or counted_by is None:  # not from a check slowapi made here (never, in practice)
            return RouteLimitError(429, 1, f"rate limit exceeded ({exc.detail})")
        if counted_by is self.primary:
            self._storage_ok()
        item = exc.limit.limit
        retry_after = item.get_expiry()
        current = getattr(request.state, "view_rate_limit", None)  # (item, key parts): set by slowapi's check
        if current is not None:
            try:
                stats = counted_by.limiter.get_window_stats(current[0], *current[1])
                retry_after = math.ceil(stats.reset_time - time.time())
            except STORAGE_ERRORS:
                pass
        description = exc.limit.error_message or f"rate limit exceeded ({item})"
        record_rate_limit("rejected", POLICY)
        return RouteLimitError(429, max(1, retry_after), str(description))


def _unavailable() -> RouteLimitError:
    record_rate_limit("rejected", POLICY)
    return RouteLimitError(503, FAIL_CLOSED_RETRY_AFTER, "rate limiting is unavailable; retry later")


def _slowapi(uri: str, strategy: str, prefix: str) -> SlowapiLimiter:
    options: dict[str, Any] = {}
    if not uri.startswith("memory://"):
        options = {
            "wrap_exceptions": True,  # redis-py's errors arrive as limits' StorageError
            "socket_timeout": REDIS_TIMEOUT_SECONDS,  # slowapi's calls are sync: bound what a hung Redis blocks
            "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
            "retry": Retry(NoBackoff(), 0),  # a hit is not idempotent: no silent retry counting it twice
        }
    return SlowapiLimiter(
        key_func=route_key,
        strategy=strategy,
        storage_uri=uri,
        storage_options=options,
        key_prefix=prefix,
        key_style="endpoint",  # one count per route function, not per concrete URL (`/items/1`, `/items/2`)
        headers_enabled=False,
        in_memory_fallback_enabled=False,  # the outage policy is RouteLimits'
        swallow_errors=False,
    )


def _entering(func: Callable[..., Any]) -> Callable[..., Any]:
    """`func`, marking the call as past the limit check first."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def entered(*args: Any, **kwargs: Any) -> Any:
            _mark_entered()
            return await func(*args, **kwargs)

        return entered

    @functools.wraps(func)
    def entered_sync(*args: Any, **kwargs: Any) -> Any:
        _mark_entered()
        return func(*args, **kwargs)

    return entered_sync


def _mark_entered() -> None:
    cell = _entered.get(None)
    if cell is not None and not cell[0]:
        cell[0] = True
        record_rate_limit("allowed")
