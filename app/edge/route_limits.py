"""Rate limits on FastAPI routes: slowapi's `@limiter.limit("10/minute")`, configured from `RATE_LIMIT__*`.

    from fastapi import APIRouter, Request
    from app import Caller, limiter

    router = APIRouter()

    @router.get("/api/thing")
    @limiter.limit("10/minute")
    async def thing(request: Request, caller: Caller) -> dict: ...

The key is the caller (`principal:{tid}:{oid}`, from `request.state.principal`, which the auth dependency sets before
the endpoint runs) or, on a public route, the client IP (`ip:{host}`, after ForwardedHeaders). Counts live where
RATE_LIMIT__STORAGE_URI says, with RATE_LIMIT__STRATEGY, namespaced per server (MCP__SERVER_NAME) and per route
function; a storage outage follows RATE_LIMIT__ON_STORAGE_ERROR like /mcp (fail_open: counted per process in memory;
fail_closed: 503 with Retry-After), tried again at most once a second. A refusal is 429 with Retry-After and
`{"error": "rate_limited", "error_description": ...}`.

Design: `limiter` only records each decorated route at import; every app built by `create_app` gets its own slowapi
`Limiter`s from its settings (`configure_route_limits`), found at request time on `request.app.state.limiter`, so
importing `app` reads no settings and apps with different settings coexist in one process, through slowapi's public
API only (`Limiter(...)`, `.limit()`, `.limiter`, and the `request.state.view_rate_limit` its own 429 handler reads).

The check of a call against one app's limiters, its outage policy and its refusals are app/edge/route_checks.py.
The MCP endpoint does not use this: see app/edge/ratelimit.py and docs/limits.md for why there are two limiters.
slowapi's own RATELIMIT_* variables are not how this is configured; leave them unset.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from limits import parse_many

from app.edge.limiter import StorageOptions
from app.edge.route_checks import SPEC, RouteLimitError, RouteLimits, RouteSpec

__all__ = ["RouteLimiter", "configure_route_limits", "limiter"]

log = logging.getLogger("app.ratelimit")
F = TypeVar("F", bound=Callable[..., Any])


class RouteLimiter:
    """The public `limiter`: rate limits for FastAPI routes (slowapi), `@limiter.limit("10/minute")`.

    For routes only; a tool's rate is `@tool(rate=...)`. The decorated function must take `request: Request`.
    Limits count per caller when the route authenticates, else per client IP; storage and strategy are
    `RATE_LIMIT__*`'s (docs/limits.md).

    Example:
        @router.get("/api/reports", dependencies=[requires(scopes=["reports.read"])])
        @limiter.limit("10/minute")
        async def reports(request: Request, caller: Caller) -> list[str]: ...
    """

    def limit(
        self,
        limit_value: str | Callable[..., str],
        *,
        key_func: Callable[..., str] | None = None,
        per_method: bool = False,
        methods: list[str] | None = None,
        error_message: str | None = None,
        exempt_when: Callable[..., bool] | None = None,
        cost: int | Callable[..., int] = 1,
    ) -> Callable[[F], F]:
        """slowapi's `limit`: `limits` syntax (`10/minute`, `;` joins windows), keyed by `route_key` unless
        `key_func` is given. A malformed limit fails here (at import), not at the first request."""
        if isinstance(limit_value, str):
            parse_many(limit_value)  # raises ValueError naming the bad string
        options: dict[str, Any] = {
            "key_func": key_func,
            "per_method": per_method,
            "methods": methods,
            "error_message": error_message,
            "exempt_when": exempt_when,
            "cost": cost,
        }

        def decorate(func: F) -> F:
            if "request" not in inspect.signature(func).parameters:
                raise TypeError(f"@limiter.limit needs a `request: Request` parameter on {func.__qualname__}")
            spec = RouteSpec(func, limit_value, options)
            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def endpoint(*args: Any, **kwargs: Any) -> Any:
                    request = _request_of(args, kwargs)
                    return await _limits_of(request).run_async(spec, request, args, kwargs)

            else:

                @functools.wraps(func)
                def endpoint(*args: Any, **kwargs: Any) -> Any:
                    request = _request_of(args, kwargs)
                    return _limits_of(request).run_sync(spec, request, args, kwargs)

            setattr(endpoint, SPEC, spec)
            return cast(F, endpoint)

        return decorate


limiter = RouteLimiter()


def configure_route_limits(app: FastAPI, storage: StorageOptions, namespace: str) -> RouteLimits:
    """Give `app` its route limits (storage, strategy, outage policy from RATE_LIMIT__*) and its 429/503 answers."""
    if unused := sorted(name for name in os.environ if name.upper().startswith("RATELIMIT_")):
        log.warning("slowapi reads %s from the environment; route limits are set with RATE_LIMIT__*", ", ".join(unused))
    # slowapi logs every refusal at WARNING, with its key: a line per refused request is a log flood under attack.
    # Refusals are counted (the rate-limit rejections metric, policy per-route) as on /mcp; slowapi's errors still log.
    logging.getLogger("slowapi").setLevel(logging.ERROR)
    limits = RouteLimits(storage, namespace=namespace)
    app.state.limiter = limits
    app.add_exception_handler(RouteLimitError, _answer)
    return limits


async def _answer(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RouteLimitError)
    body = {"error": "rate_limited", "error_description": exc.description}
    headers = {"Retry-After": str(exc.retry_after), "Cache-Control": "no-store"}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def _request_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    request = kwargs.get("request")
    if request is None:
        request = next((arg for arg in args if isinstance(arg, Request)), None)
    if not isinstance(request, Request):
        raise TypeError("a rate-limited route must be called with its `request`")
    return request


def _limits_of(request: Request) -> RouteLimits:
    limits = getattr(request.app.state, "limiter", None)
    if not isinstance(limits, RouteLimits):
        raise RuntimeError(
            "route limits are not configured on this app: call configure_route_limits(app, storage, namespace)"
        )
    return limits
