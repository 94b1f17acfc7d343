"""The default deployment serves both eras: sessions with server push for handshake-era clients, stateless
2026-07-28, resumable streams; and what is advertised is what works, in every mode.

Real uvicorn, the official SDK client (`mcp.client.streamable_http`) at 2025-11-25 and at 2026-07-28.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import (
    LoggingMessageNotificationParams,
    ResourceUpdatedNotification,
)

from tests.support.calls import mcp_client, rpc
from tests.support.servers import ServerThread
from tests.support.sessions import SESSION_TOOLS, elicit, sample

# Handshake-era features (logging/setLevel, resources/subscribe, ctx.log) are exercised on purpose: the SDK marks
# them deprecated for 2026-07-28, and clients of 2025-06-18 and 2025-11-25 still use them.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")

MODERN = "2026-07-28"


@pytest.fixture
def default(serve: Callable[..., ServerThread]) -> ServerThread:
    """The default deployment: no MCP mode setting at all."""
    return serve(tools={"dir": SESSION_TOOLS})


def test_sessions_are_the_default(default: ServerThread) -> None:
    settings = default.settings  # type: ignore[attr-defined]
    assert settings.mcp.stateless is False
    assert settings.mcp.event_store == "auto"


async def test_sampling_and_elicitation_push_at_2025_11_25(default: ServerThread, token: Callable[..., str]) -> None:
    async with mcp_client(default.url, token(), sampling_callback=sample, elicitation_callback=elicit) as client:
        assert client.session.protocol_version == "2025-11-25"
        sampled = await client.call_tool("push_sample", {"prompt": "hi"})
        elicited = await client.call_tool("push_elicit", {})
    assert not sampled.is_error and sampled.structured_content == {"result": "model said: echo hi"}
    assert not elicited.is_error and elicited.structured_content == {"result": "accept: teal"}


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_log_level_error_keeps_info_away(default: ServerThread, token: Callable[..., str], mode: str) -> None:
    received: list[str] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        received.append(params.level)

    level: Any = "error" if mode == MODERN else None  # 2026-07-28 asks per request; 2025-11-25 with setLevel
    async with mcp_client(default.url, token(), mode=mode, logging_callback=on_log, log_level=level) as client:
        if mode == "legacy":
            await client.set_logging_level("error")
        result = await client.call_tool("push_logs", {})
    assert not result.is_error
    assert received == ["error"]


async def test_2026_without_a_level_gets_no_log_message(default: ServerThread, token: Callable[..., str]) -> None:
    received: list[str] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        received.append(params.level)

    async with mcp_client(default.url, token(), mode=MODERN, logging_callback=on_log) as client:
        result = await client.call_tool("push_logs", {})
    assert not result.is_error and result.structured_content == {"result": "logged"}
    assert received == []


async def test_resource_updates_reach_subscribers_in_both_eras(
    default: ServerThread, token: Callable[..., str]
) -> None:
    updated = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification) and str(message.params.uri) == "push://value":
            updated.set()

    async with mcp_client(default.url, token(), message_handler=on_message) as client:
        await client.subscribe_resource("push://value")
        await client.call_tool("push_change", {})
        with anyio.fail_after(10):
            await updated.wait()

    async with (
        mcp_client(default.url, token(), mode=MODERN) as client,
        client.listen(resource_subscriptions=["push://value"]) as subscription,
    ):
        await client.call_tool("push_change", {})
        with anyio.fail_after(10):
            event = await subscription.__anext__()
    assert "push://value" in str(event)


async def test_a_stream_closed_mid_call_resumes_and_loses_nothing(
    default: ServerThread, token: Callable[..., str]
) -> None:
    updates: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append(message)

    resumed: list[str] = []

    async def record(request: httpx2.Request) -> None:
        if "last-event-id" in request.headers:
            resumed.append(request.headers["last-event-id"])

    headers = {"Authorization": f"Bearer {token()}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30, event_hooks={"request": [record]}) as http,
        Client(streamable_http_client(f"{default.url}/mcp", http_client=http), mode="legacy") as client,
    ):
        result = await client.call_tool("push_dropped", {"count": 3}, progress_callback=on_progress)
    assert result.structured_content == {"result": "finished"}
    assert len(resumed) == 1  # the server closed the stream once; the client came back with Last-Event-ID
    assert updates == [f"before {n}" for n in (1, 2, 3)] + [f"after {n}" for n in (4, 5, 6)]


async def test_another_sessions_event_id_replays_nothing(default: ServerThread, token: Callable[..., str]) -> None:
    """Alice's stream ids, presented on Bob's session (or on another of Alice's), replay none of her events."""
    alice, bob = token(), token(oid="bbbbbbbb-0000-4000-8000-00000000000b")
    async with httpx2.AsyncClient(base_url=default.url, timeout=10) as http:
        first = await _open(http, alice)
        call = rpc("tools/call", {"name": "push_change", "arguments": {}}, id_=7)
        answer = await http.post("/mcp", json=call, headers=first)
        event_ids = [line[4:] for line in answer.text.splitlines() if line.startswith("id: ")]
        assert event_ids and '"result"' in answer.text
        for other in (await _open(http, bob), await _open(http, alice)):
            headers = {**other, "Last-Event-ID": event_ids[0], "Accept": "text/event-stream"}
            async with http.stream("GET", "/mcp", headers=headers) as replay:
                text = await _read_for(replay, 1.0)
            assert '"result"' not in text
        # The owner, on its own session, gets its result back.
        headers = {**first, "Last-Event-ID": event_ids[0], "Accept": "text/event-stream"}
        async with http.stream("GET", "/mcp", headers=headers) as replay:
            text = await _read_for(replay, 1.0)
        assert '"result"' in text


async def test_a_hostile_last_event_id_is_refused_cleanly(
    default: ServerThread, token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    """A Last-Event-ID in the session's own scope but with a sequence no store writes (5,000 digits: past what int()
    accepts; not ASCII digits) replays nothing, is never a 500 and logs no error (it once logged a traceback)."""
    async with httpx2.AsyncClient(base_url=default.url, timeout=10) as http:
        session = await _open(http, token())
        answer = await http.post(
            "/mcp", json=rpc("tools/call", {"name": "push_change", "arguments": {}}), headers=session
        )
        scope, _, stream = next(line[4:] for line in answer.text.splitlines() if line.startswith("id: ")).split(".")
        raw = {name.encode("ascii"): value.encode("ascii") for name, value in session.items()}
        for seq in ("9" * 5000, "\u0663", "-1", ""):
            last = f"{scope}.{seq}.{stream}".encode()  # bytes: a header may carry any octet
            headers = {**raw, b"Last-Event-ID": last, b"Accept": b"text/event-stream"}
            async with http.stream("GET", "/mcp", headers=headers) as replay:
                text = await _read_for(replay, 0.5)
                assert replay.status_code < 500, (seq[:10], replay.status_code)
            assert '"result"' not in text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


async def _open(http: httpx2.AsyncClient, bearer: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/json, text/event-stream"}
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    response = await http.post("/mcp", json=rpc("initialize", init), headers=headers)
    assert response.status_code == 200, response.text
    session = {**headers, "Mcp-Session-Id": response.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
    await http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    return session


async def _read_for(response: httpx2.Response, seconds: float) -> str:
    """What an open SSE stream sends within `seconds` (a replay comes at once; the stream then stays open)."""
    chunks: list[str] = []
    with anyio.move_on_after(seconds):
        async for chunk in response.aiter_text():
            chunks.append(chunk)
    return "".join(chunks)


async def test_a_session_resumes_as_of_the_version_it_negotiated(
    default: ServerThread, token: Callable[..., str]
) -> None:
    """The conformance suite's `server-sse-polling` opens a 2025-11-25 session, then sends 2025-03-26 in the header:
    the stream still opens with a priming event (an id, empty data) and its `retry`, so it can be resumed."""
    async with httpx2.AsyncClient(base_url=default.url, timeout=10) as http:
        session = {**await _open(http, token()), "MCP-Protocol-Version": "2025-03-26"}
        call = rpc("tools/call", {"name": "push_change", "arguments": {}}, id_=3)
        answer = await http.post("/mcp", json=call, headers=session)
    assert answer.status_code == 200
    first = answer.text.split("\r\n\r\n", 1)[0].replace("\r\n", "\n").split("\n")
    assert first[0].startswith("id: ") and "data: " in first and "retry: 1000" in first, first


async def test_a_request_id_already_in_flight_in_the_session_is_a_409(
    default: ServerThread, token: Callable[..., str]
) -> None:
    """The SDK keys a session's response streams by request id: a reused live id got a 500 and hung. Found when the
    bench replayed one request on many connections of one session."""
    async with httpx2.AsyncClient(base_url=default.url, timeout=20) as http:
        session = await _open(http, token())
        call = rpc("tools/call", {"name": "push_elicit", "arguments": {}}, id_=5)
        async with http.stream("POST", "/mcp", json=call, headers=session) as first:
            lines = first.aiter_lines()
            asked = await _next_message(lines)  # the tool now waits for the user: call 5 is in flight
            assert asked["method"] == "elicitation/create"
            reused = await http.post("/mcp", json=call, headers=session)
            answer = {"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "accept", "content": {"colour": "red"}}}
            assert (await http.post("/mcp", json=answer, headers=session)).status_code == 202
            result = await _next_message(lines)
            async for _ in lines:  # to the end of the response: then id 5 is free again
                pass
        quick = rpc("tools/call", {"name": "push_where", "arguments": {}}, id_=5)
        again = await http.post("/mcp", json=quick, headers=session)
    assert reused.status_code == 409
    assert reused.json()["error"]["message"] == "request id already in flight in this session"
    assert result["result"]["structuredContent"] == {"result": "accept: red"}
    assert again.status_code == 200


async def _next_message(lines: AsyncIterator[str]) -> dict[str, Any]:
    """The next JSON-RPC message on an SSE response (priming events have no data)."""
    async for line in lines:
        if line.startswith("data: ") and line[6:].strip():
            return json.loads(line[6:])  # type: ignore[no-any-return]
    raise AssertionError("the stream ended")


async def test_another_callers_session_is_a_404_even_when_resuming(
    default: ServerThread, token: Callable[..., str]
) -> None:
    """Bob presenting Alice's session id (with or without a Last-Event-ID) is told the session does not exist."""
    alice, bob = token(), token(oid="bbbbbbbb-0000-4000-8000-00000000000b")
    async with httpx2.AsyncClient(base_url=default.url, timeout=10) as http:
        hers = await _open(http, alice)
        answer = await http.post("/mcp", json=rpc("tools/call", {"name": "push_change", "arguments": {}}), headers=hers)
        event_id = next(line[4:] for line in answer.text.splitlines() if line.startswith("id: "))
        as_bob = {**hers, "Authorization": f"Bearer {bob}"}
        call = await http.post("/mcp", json=rpc("tools/call", {"name": "push_where", "arguments": {}}), headers=as_bob)
        resume = await http.get("/mcp", headers={**as_bob, "Accept": "text/event-stream", "Last-Event-ID": event_id})
    assert call.status_code == 404 and resume.status_code == 404
    assert "push" not in call.text + resume.text


async def test_another_caller_cannot_probe_a_sessions_request_ids_in_flight(
    default: ServerThread, token: Callable[..., str]
) -> None:
    """Bob reusing the id of Alice's call in flight, on her session id, gets the same 404 as any request on it: not
    the 409 that would tell him the id is in use (so that the session exists and what it is doing)."""
    alice, bob = token(), token(oid="bbbbbbbb-0000-4000-8000-00000000000b")
    async with httpx2.AsyncClient(base_url=default.url, timeout=20) as http:
        hers = await _open(http, alice)
        call = rpc("tools/call", {"name": "push_elicit", "arguments": {}}, id_=5)
        async with http.stream("POST", "/mcp", json=call, headers=hers) as first:
            lines = first.aiter_lines()
            asked = await _next_message(lines)  # the tool now waits for the user: Alice's call 5 is in flight
            assert asked["method"] == "elicitation/create"
            probe = await http.post("/mcp", json=call, headers={**hers, "Authorization": f"Bearer {bob}"})
            answer = {"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "accept", "content": {"colour": "red"}}}
            assert (await http.post("/mcp", json=answer, headers=hers)).status_code == 202
            result = await _next_message(lines)
    assert probe.status_code == 404, probe.text
    assert "in flight" not in probe.text and "push" not in probe.text
    assert result["id"] == 5 and result["result"]["structuredContent"] == {"result": "accept: red"}  # hers, untouched
