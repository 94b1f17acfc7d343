"""Resource limits on a real uvicorn: body size, tool timeouts, concurrent tool calls, result size."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx2
import pytest

from app.catalog.discovery import discover
from app.catalog.registry import ToolDiscoveryError
from tests.support import probe
from tests.support.calls import call, mcp_client, modern_call
from tests.support.servers import ServerThread
from tests.support.values import READER, oid


def tool_text(response: httpx2.Response) -> tuple[bool, str]:
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    return bool(result.get("isError")), result["content"][0]["text"]


async def test_oversized_body_gets_413_before_authentication(serve: Callable[..., ServerThread]) -> None:
    server = serve(security={"max_body_bytes": 4096})
    async with httpx2.AsyncClient(base_url=server.url) as http:
        # No token at all: the size is refused first, so the caller learns nothing about auth.
        response = await http.post(
            "/mcp", content=b"{" + b" " * 5000 + b"}", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == -32600
    assert "www-authenticate" not in response.headers


async def test_chunked_body_is_capped_while_read(serve: Callable[..., ServerThread], token: Callable[..., str]) -> None:
    server = serve(security={"max_body_bytes": 4096})
    headers = {"Authorization": f"Bearer {token(READER)}", "Content-Type": "application/json"}

    async def chunks(total: int) -> AsyncIterator[bytes]:
        yield b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"'
        for _ in range(total // 1024):
            yield b"x" * 1024
        yield b'"}}'

    async with httpx2.AsyncClient(base_url=server.url) as http:
        big = await http.post("/mcp", content=chunks(8192), headers=headers)
        small = await http.post(
            "/mcp", content=chunks(1024), headers={**headers, "Accept": "application/json, text/event-stream"}
        )
    assert "content-length" not in big.request.headers  # really sent chunked
    assert big.status_code == 413
    assert small.status_code != 413


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_slow_tool_gets_a_timeout_error_within_timeout_plus_half_a_second(
    serve: Callable[..., ServerThread], token: Callable[..., str], mode: str
) -> None:
    """For clients of both protocol eras: a 2026-07-28 client refuses a result without `resultType`."""
    server = serve(security={"tool_timeout_seconds": 1.0})
    async with mcp_client(server.url, token(READER), mode=mode) as client:
        started = time.monotonic()
        result = await client.call_tool("probe_sleep", {"seconds": 20})
        elapsed = time.monotonic() - started
    assert result.is_error
    assert "did not finish within 1 s" in result.content[0].text  # type: ignore[union-attr]
    assert elapsed < 10  # cut off at its deadline, long before the tool's own 20 s (margin for a loaded machine)


async def test_decorator_timeout_cancels_the_tool(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve()  # default timeout 30 s; the tools declare timeout=0.5
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        started = time.monotonic()
        patient = await call(http, token(READER), "probe_patient", {"seconds": 1.2})
        async_elapsed = time.monotonic() - started
        started = time.monotonic()
        blocking = await call(http, token(READER), "probe_blocking", {"seconds": 6})
        sync_elapsed = time.monotonic() - started
    assert tool_text(patient) == (True, "tool 'probe_patient' did not finish within 0.5 s and was cancelled")
    assert tool_text(blocking)[0]
    # Both answered before the tools' own ends (1.2 s and 6 s), the blocking one with a wide margin for load.
    assert async_elapsed < 1.2 and sync_elapsed < 4
    await asyncio.sleep(1.0)  # past the moment the async tool would have finished
    assert "patient:1.2" not in probe.calls  # it was cancelled, not left running


async def test_stays_responsive_while_50_slow_tools_run(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(security={"max_concurrent_calls_per_principal": 50, "max_concurrent_calls": 60})
    busy, other = token(READER, oid=oid(1)), token(READER, oid=oid(2))
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        slow = [asyncio.create_task(call(http, busy, "probe_sleep", {"seconds": 6}, i)) for i in range(50)]
        await asyncio.sleep(0.5)
        quick = await call(http, other, "probe_read", {"note": "responsive"})
        still_running = sum(not task.done() for task in slow)
        results = await asyncio.gather(*slow)
    assert tool_text(quick) == (False, "read ok")
    # Answered while every slow call still ran: it did not wait behind them (an order, not a wall-clock bound, so a
    # loaded machine cannot fail it; the slow calls' 6 s is the margin).
    assert still_running == 50
    assert all(tool_text(response) == (False, "slept 6.0") for response in results)


async def test_in_flight_tool_calls_are_capped_per_principal_and_overall(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(security={"max_concurrent_calls_per_principal": 2, "max_concurrent_calls": 3})
    first, second, third = (token(READER, oid=oid(n)) for n in (11, 12, 13))
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        held = [asyncio.create_task(call(http, first, "probe_sleep", {"seconds": 1.5}, i)) for i in range(2)]
        await asyncio.sleep(0.4)
        over_own = await call(http, first, "probe_read", request_id=7)
        refused_while_held = not any(task.done() for task in held)
        held.append(asyncio.create_task(call(http, second, "probe_sleep", {"seconds": 1.5})))
        await asyncio.sleep(0.4)
        over_all = await call(http, third, "probe_read", request_id=8)
        listing_still_fine = await http.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": modern_call("x")[1]["params"]},
            headers={**modern_call("x")[0], "Mcp-Method": "tools/list", "Authorization": f"Bearer {third}"},
        )
        finished = await asyncio.gather(*held)
        after = await call(http, first, "probe_read")
    assert over_own.status_code == 429 and over_own.headers["retry-after"] == "1"
    assert over_own.json()["id"] == 7 and "this caller" in over_own.json()["error"]["message"]
    assert refused_while_held  # answered while both held calls still ran: refused at once, not queued behind them
    assert over_all.status_code == 503 and over_all.json()["id"] == 8
    assert listing_still_fine.status_code == 200  # only tool calls are capped
    assert all(tool_text(r) == (False, "slept 1.5") for r in finished)
    assert tool_text(after) == (False, "read ok")


async def test_oversized_tool_result_becomes_a_tool_error(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(security={"max_result_bytes": 2048})
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        small = await call(http, token(READER), "probe_big", {"size": 100})
        big = await call(http, token(READER), "probe_big", {"size": 5000})
    assert tool_text(small) == (False, "x" * 100)
    is_error, text = tool_text(big)
    assert is_error and "over the 2048-byte limit" in text
    assert "xxxx" not in big.text
    async with mcp_client(server.url, token(READER), mode="auto") as client:  # a 2026-07-28 client reads it too
        modern = await client.call_tool("probe_big", {"size": 5000})
    assert modern.is_error and "over the 2048-byte limit" in modern.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize(("option", "message"), [('rate="ten per minute"', "rate="), ("timeout=0", "timeout=")])
def test_bad_per_tool_limits_fail_startup(tmp_path: Path, option: str, message: str) -> None:
    (tmp_path / "bad.py").write_text(
        f'from app import tool\n\n\n@tool(scopes=["x"], {option})\ndef bad() -> str:\n    return ""\n'
    )
    with pytest.raises(ToolDiscoveryError, match=message):
        discover(tmp_path)
