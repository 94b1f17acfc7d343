"""The request path's plumbing: layers folded outermost first, lifespan parts entered in order and left in reverse."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.compose.http import closing, fold, lifespan

seen: list[str] = []


class Tag:
    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app, self.name = app, name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(self.name)
        await self.app(scope, receive, send)


async def test_layers_given_outermost_first_see_a_request_in_that_order() -> None:
    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append("endpoint")

    seen.clear()
    app = fold(endpoint, [Middleware(Tag, "outer"), Middleware(Tag, "middle"), Middleware(Tag, "inner")])
    await app({"type": "http"}, None, None)  # type: ignore[arg-type]
    assert seen == ["outer", "middle", "inner", "endpoint"]


async def test_parts_are_entered_in_order_and_left_in_reverse_even_when_a_closer_fails() -> None:
    events: list[str] = []

    @contextmanager
    def part(name: str) -> Any:
        events.append(f"enter {name}")
        try:
            yield
        finally:
            events.append(f"leave {name}")

    def broken() -> None:
        events.append("broken")
        raise RuntimeError("cannot close")

    async def closed() -> None:
        events.append("async closer")

    run = lifespan([lambda: part("a"), lambda: closing(closed, broken, lambda: events.append("sync closer")),
                    lambda: part("b")])  # fmt: skip
    with pytest.raises(RuntimeError, match="cannot close"):
        async with run(FastAPI()):
            events.append("serving")
    assert events == [
        "enter a", "enter b", "serving", "leave b", "sync closer", "broken", "async closer", "leave a",
    ]  # fmt: skip


async def test_several_servers_share_one_signing_key_cache_one_counter_and_one_redis_pool() -> None:
    """What the app shares once between its MCP servers, and what each keeps to itself."""
    import httpx2

    from app.compose.core import build_cores
    from app.compose.http import endpoints
    from app.edge.limiter import RateCounter
    from app.settings import Settings
    from tests.support.values import SUPPORT

    settings = Settings(
        _env_file=None,
        app_env="development",
        tools={"dir": SUPPORT / "two_servers" / "hr", "lock_mode": "off"},
        servers={"finance": {"path": "/finance/mcp", "tools_dir": SUPPORT / "two_servers" / "finance" / "tools"}},
        rate_limit={"storage_uri": "redis://127.0.0.1:1/0"},  # never reached: nothing here connects
        audit={"sink": "off"},
    )
    cores = build_cores(settings)
    async with httpx2.AsyncClient() as http:
        first, finance = endpoints(settings, cores, http, RateCounter(settings.rate_limit, "secure-mcp-server"))
    assert finance.validator._families is first.validator._families  # one JWKS cache per authority
    assert first.core.threads is finance.core.threads and first.core.audit is finance.core.audit
    assert first.core.catalog is not finance.core.catalog and first.core.guard is not finance.core.guard
    assert first.events is not None and finance.events is not None
    assert finance.events.redis is first.events.redis  # type: ignore[attr-defined]  # one Redis pool
    assert (first.events.prefix, finance.events.prefix) == (  # type: ignore[attr-defined]
        "secure-mcp-server:mcp-events",
        "finance:mcp-events",
    )
    assert first.challenges is not finance.challenges
