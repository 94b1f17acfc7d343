"""Plain `def` tools run on the framework's worker-thread pool (app/server/threads.py), as the SDK would run them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any

import httpx2
import pytest
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult
from pydantic import Field, ValidationError

from app.server.threads import ToolThreads
from app.settings import Settings
from tests.support.calls import call, mcp_client
from tests.support.servers import ServerThread
from tests.support.values import oid

READER = "mcp.read"


def forecast(ctx: Context, city: Annotated[str, Field(min_length=1, max_length=80)], days: int = 1) -> dict[str, Any]:
    """Tomorrow's forecast for a city."""
    return {"city": city, "days": days, "has_context": ctx is not None}


async def test_a_sync_tool_on_the_pool_is_listed_and_answers_exactly_as_the_sdk_would_run_it() -> None:
    threads = ToolThreads(2)
    plain, pooled = MCPServer("plain"), MCPServer("pooled")
    plain.add_tool(forecast)
    pooled.add_tool(threads.serve(forecast))
    try:
        assert [t.model_dump() for t in await pooled.list_tools()] == [t.model_dump() for t in await plain.list_tools()]
        arguments = {"city": "Oslo", "days": 2}
        expected = await plain.call_tool("forecast", arguments)
        assert isinstance(expected, CallToolResult)  # not InputRequiredResult: forecast asks the client nothing
        assert await pooled.call_tool("forecast", arguments) == expected
        assert expected.structured_content == {"city": "Oslo", "days": 2, "has_context": True}
    finally:
        threads.close()


async def test_async_tools_are_registered_unchanged() -> None:
    async def ping() -> str:
        """Pong."""
        return "pong"

    assert ToolThreads(1).serve(ping) is ping


async def test_a_sync_tool_runs_on_a_pool_thread_with_its_caller_and_can_reach_the_event_loop(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve()
    async with mcp_client(server.url, token(READER, oid=oid(41))) as client:
        result = await client.call_tool("probe_thread", {})
    assert not result.is_error
    seen = result.structured_content
    assert seen is not None
    assert seen["thread"].startswith("tool")  # the framework's pool, not anyio's
    assert seen["loop_reached"] is True  # anyio.from_thread works, as on the SDK's worker threads
    assert seen["caller"] == oid(41)  # context variables are carried into the thread


@pytest.mark.parametrize("threads", [1, 2])
async def test_tools_threads_bounds_how_many_sync_tools_run_at_once(
    serve: Callable[..., ServerThread], token: Callable[..., str], threads: int
) -> None:
    server = serve(tools={"threads": threads})
    bearer = token(READER)
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        started = time.monotonic()
        answers = await asyncio.gather(*(call(http, bearer, "probe_thread", {"seconds": 0.4}, i) for i in range(2)))
        elapsed = time.monotonic() - started
    names = {answer.json()["result"]["structuredContent"]["thread"] for answer in answers}
    assert len(names) == threads  # one thread ran both calls in turn, or each had its own
    if threads == 1:
        assert elapsed >= 0.8  # the second call waited for the only thread


def test_tools_threads_must_be_at_least_one() -> None:
    with pytest.raises(ValidationError, match="threads"):
        Settings(_env_file=None, tools={"threads": 0})
