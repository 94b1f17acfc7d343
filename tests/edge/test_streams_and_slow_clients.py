"""Long-lived streams are capped and end; slow clients are bounded.

Streams: 2026-07-28 `subscriptions/listen` streams and stateful `GET /mcp` SSE streams, per principal (429) and per
process (503), end cleanly at SECURITY__MAX_STREAM_SECONDS; a stateless `GET /mcp` is 405. Slow clients: uvicorn's
connection limit and keep-alive come from SERVER__*, a body that does not arrive in SECURITY__BODY_TIMEOUT_SECONDS
is 408, a request answered before its body arrived closes the connection, token attempts still being checked count
against the per-IP budget, and nginx drops a client that is slow to send its headers.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import httpx2
import limits.storage.memory
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from mcp.server.subscriptions import ListenHandler

from app.edge.windows import Windows
from app.settings.serving import SecuritySettings
from tests.support.app_process import app_process
from tests.support.calls import MODERN_HEADERS, mcp_client, rpc
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread, app_state, free_port
from tests.support.values import REPO

pytestmark = pytest.mark.timeout(60)

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
LEGACY = {"MCP-Protocol-Version": "2025-11-25", "Accept": "application/json, text/event-stream"}
BOB = "bbbbbbbb-0000-4000-8000-000000000002"
CAROL = "cccccccc-0000-4000-8000-000000000003"


def listen_request(id_: int) -> tuple[dict[str, str], dict[str, Any]]:
    headers = {**MODERN_HEADERS, "Mcp-Method": "subscriptions/listen"}
    params = {"notifications": {"toolsListChanged": True}, "_meta": META}
    return headers, rpc("subscriptions/listen", params, id_)


@asynccontextmanager
async def listening(http: httpx2.AsyncClient, token: str, id_: int = 1) -> AsyncIterator[httpx2.Response]:
    """A listen stream, open (headers received) for as long as the block runs."""
    headers, body = listen_request(id_)
    headers["Authorization"] = f"Bearer {token}"
    async with http.stream("POST", "/mcp", json=body, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
        yield response


async def first_message(response: httpx2.Response) -> dict[str, Any]:
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            return json.loads(line[5:])  # type: ignore[no-any-return]
    raise AssertionError("the stream ended without a message")


def listen_handler(server: ServerThread) -> Any:
    """The SDK's ListenHandler of a served app (private: its open subscription slots)."""
    lowlevel = app_state(server).mcp._lowlevel_server
    handler = lowlevel._request_handlers["subscriptions/listen"]
    return handler.handler


# ---- listen streams: caps and lifetime -------------------------------------------------------------------------------
async def test_a_principal_over_its_stream_cap_gets_429_while_others_still_listen(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(security={"max_streams_per_principal": 2, "max_streams": 10})
    alice, bob = token(), token(oid=BOB)
    async with AsyncExitStack() as streams:
        http = await streams.enter_async_context(httpx2.AsyncClient(base_url=server.url, timeout=10))
        for id_ in (1, 2):
            opened = await streams.enter_async_context(listening(http, alice, id_))
            assert opened.status_code == 200
        refused = await streams.enter_async_context(listening(http, alice, 3))
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["id"] == 3 and refused.json()["error"]["code"] == -32030
        # Another principal is not affected: its stream opens and is acknowledged (no SDK "limit reached").
        other = await streams.enter_async_context(listening(http, bob, 4))
        assert other.status_code == 200
        assert (await first_message(other))["method"] == "notifications/subscriptions/acknowledged"


async def test_the_process_stream_cap_gives_503(serve: Callable[..., ServerThread], token: Callable[..., str]) -> None:
    server = serve(security={"max_streams_per_principal": 2, "max_streams": 2})
    async with AsyncExitStack() as streams:
        http = await streams.enter_async_context(httpx2.AsyncClient(base_url=server.url, timeout=10))
        for id_, oid in enumerate(("aaaaaaaa-0000-4000-8000-000000000001", BOB)):
            opened = await streams.enter_async_context(listening(http, token(oid=oid), id_))
            assert opened.status_code == 200
        refused = await streams.enter_async_context(listening(http, token(oid=CAROL), 9))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == -32030


async def test_a_listen_stream_ends_cleanly_at_its_lifetime_and_frees_its_slots(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(security={"max_streams_per_principal": 1, "max_stream_seconds": 1})
    started = time.monotonic()
    frames: list[dict[str, Any]] = []
    async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http:
        async with listening(http, token(), 7) as stream:
            assert stream.status_code == 200
            try:
                async with asyncio.timeout(6):
                    async for line in stream.aiter_lines():  # raises if the stream ends in a protocol error
                        if line.startswith("data:"):
                            frames.append(json.loads(line[5:]))
            except TimeoutError:
                pytest.fail("the listen stream was still open after 6 s; its lifetime is 1 s")
        elapsed = time.monotonic() - started
        assert 0.9 < elapsed < 5, f"the stream ended after {elapsed:.1f} s, not at its 1 s lifetime"
        # The spec's graceful close: the listen result, stamped with the subscription id, is the last frame.
        assert frames[0]["method"] == "notifications/subscriptions/acknowledged"
        assert frames[-1]["id"] == 7 and "result" in frames[-1], frames[-1]
        # The SDK released its subscription slot, and ours is free again: a new stream opens.
        await _eventually(lambda: not listen_handler(server)._streams)
        async with listening(http, token(), 8) as again:
            assert again.status_code == 200


async def test_the_official_client_sees_a_graceful_end_at_the_lifetime(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(security={"max_stream_seconds": 1})
    async with mcp_client(server.url, token(), mode="2026-07-28") as client:
        for _ in range(2):  # ends gracefully (no SubscriptionLost), and the client listens again
            async with asyncio.timeout(6), client.listen(tools_list_changed=True) as subscription:
                events = [event async for event in subscription]
            assert events == []
        assert (await client.call_tool("probe_read", {})).is_error is False


# ---- stateful GET streams: caps and lifetime -------------------------------------------------------------------------
async def test_a_stateless_get_is_405(serve: Callable[..., ServerThread], token: Callable[..., str]) -> None:
    server = serve(mcp={"stateless": True})
    headers = {"Authorization": f"Bearer {token()}", "Accept": "text/event-stream"}
    async with (
        httpx2.AsyncClient(base_url=server.url, timeout=10) as http,
        http.stream("GET", "/mcp", headers=headers) as response,
    ):
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"


async def _session(http: httpx2.AsyncClient, token: str) -> str:
    """A stateful session opened with raw requests (initialize, then initialized); its id."""
    auth = {"Authorization": f"Bearer {token}"}
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw-test", "version": "0"}}
    response = await http.post("/mcp", json=rpc("initialize", params), headers={**LEGACY, **auth})
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    done = await http.post("/mcp", json=initialized, headers={**LEGACY, **auth, "Mcp-Session-Id": session})
    assert done.status_code == 202
    return session


async def test_stateful_get_streams_are_capped_per_principal(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(mcp={"stateless": False}, security={"max_streams_per_principal": 1})
    alice, bob = token(), token(oid=BOB)
    async with AsyncExitStack() as streams:
        http = await streams.enter_async_context(httpx2.AsyncClient(base_url=server.url, timeout=10))
        sessions = [await _session(http, alice), await _session(http, alice), await _session(http, bob)]

        def get(session: str, who: str) -> Any:
            headers = {**LEGACY, "Accept": "text/event-stream", "Authorization": f"Bearer {who}"}
            return http.stream("GET", "/mcp", headers={**headers, "Mcp-Session-Id": session})

        first = await streams.enter_async_context(get(sessions[0], alice))
        assert first.status_code == 200 and first.headers["content-type"].startswith("text/event-stream")
        second = await streams.enter_async_context(get(sessions[1], alice))
        assert second.status_code == 429
        other = await streams.enter_async_context(get(sessions[2], bob))
        assert other.status_code == 200


async def test_the_official_client_reopens_its_get_stream_after_the_lifetime(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(mcp={"stateless": False}, security={"max_stream_seconds": 1, "max_streams_per_principal": 1})
    gets: list[int] = []

    async def record(response: httpx2.Response) -> None:
        if response.request.method == "GET":
            gets.append(response.status_code)

    headers = {"Authorization": f"Bearer {token()}"}
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers=headers, timeout=30, event_hooks={"response": [record]}) as http,
        Client(streamable_http_client(f"{server.url}/mcp", http_client=http), mode="legacy") as client,
    ):
        await _eventually(lambda: len(gets) >= 3, within=8, what=lambda: f"GET streams opened in 8 s: {gets}")
        # Each stream ended cleanly at its lifetime and freed its slot (cap 1): every reconnect was served.
        assert set(gets) == {200}, gets
        assert (await client.call_tool("probe_read", {})).is_error is False


# ---- slow clients: uvicorn's limits, body time, connections answered early -------------------------------------------
def connect(url: str) -> socket.socket:
    host, port = url.rsplit("//", 1)[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Read until the peer closes; (closed in time, everything read)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    data = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, data
        if not chunk:
            return True, data
        data += chunk
    return False, data


@pytest.mark.slow  # a subprocess or many generated examples: the whole suite (make test-all)
def test_python_m_app_limits_connections_and_keep_alive(entra: EntraStandIn, tmp_path: Path) -> None:
    env = {"SERVER__LIMIT_CONCURRENCY": "2", "SERVER__KEEP_ALIVE_SECONDS": "1"}
    with app_process(entra, tmp_path, **env) as url:
        # Keep-alive: an idle connection is closed after SERVER__KEEP_ALIVE_SECONDS (uvicorn's default is 5 s).
        idle = connect(url)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        closed, answer = closed_within(idle, 3)
        assert answer.startswith(b"HTTP/1.1 200")
        assert closed, "an idle keep-alive connection was still open after 3 s"
        idle.close()
        # Two clients that never finish their headers hold two connections; the limit is 2, so the next is 503.
        slow = [connect(url) for _ in range(2)]
        try:
            for sock in slow:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            time.sleep(0.3)
            assert httpx2.get(f"{url}/healthz", timeout=5).status_code == 503
        finally:
            for sock in slow:
                sock.close()
        time.sleep(0.3)
        assert httpx2.get(f"{url}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_that_does_not_arrive_in_time_gets_408(
    serve: Callable[..., ServerThread], token: Callable[..., str], framing: str
) -> None:
    server = serve(security={"body_timeout_seconds": 1})
    length = b"Content-Length: 200\r\n" if framing == "content-length" else b"Transfer-Encoding: chunked\r\n"
    sock = connect(server.url)
    started = time.monotonic()
    sock.sendall(
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n%s\r\n"
        % (server.port, token().encode(), length)
    )
    sock.sendall(b'{"jsonrpc":' if framing == "content-length" else b'b\r\n{"jsonrpc":\r\n')
    closed, answer = closed_within(sock, 5)
    elapsed = time.monotonic() - started
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), f"after {elapsed:.1f} s: {answer[:80]!r}"
    assert closed and elapsed < 3


def test_a_request_answered_before_its_body_arrived_closes_the_connection(
    serve: Callable[..., ServerThread],
) -> None:
    """A refused request (here 401) whose body is still coming: the connection closes with the answer, so a client
    trickling a body cannot keep it open."""
    server = serve()
    sock = connect(server.url)
    sock.sendall(
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{" % server.port
    )
    closed, answer = closed_within(sock, 2)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 401")
    assert b"connection: close" in answer.lower()
    assert closed, "the connection stayed open after the 401"


async def test_token_attempts_still_being_checked_count_against_the_client_budget(
    serve: Callable[..., ServerThread],
) -> None:
    """Concurrent attempts while validation waits (a kid miss waits for the issuer's keys): each admitted attempt
    counts against the per-IP budget while it is in progress, not only once it has been answered."""
    server = serve(rate_limit={"unauthenticated": "3/minute"})
    validator = app_state(server).validator
    original = validator.validate

    async def slow(token: str) -> Any:
        await asyncio.sleep(0.5)
        return await original(token)

    validator.validate = slow
    headers = {**MODERN_HEADERS, "Authorization": "Bearer not-a-token", "Mcp-Method": "tools/list"}
    async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http:
        answers = await asyncio.gather(
            *(http.post("/mcp", json=rpc("tools/list", {"_meta": META}), headers=headers) for _ in range(8))
        )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [401] * 3 + [429] * 5, statuses


@settings(max_examples=200, deadline=None)
@given(
    strategy=st.sampled_from(["moving-window", "sliding-window-counter", "fixed-window"]),
    steps=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=24),
            st.integers(min_value=0, max_value=4),  # 0: a hit; otherwise a test of that cost
            st.sampled_from([parse("3/second"), parse("4/2 seconds"), parse("2/4 seconds")]),
        ),
        max_size=50,
    ),
)
def test_the_windows_test_with_a_cost_as_limits_does(strategy: Any, steps: list[tuple[int, int, Any]]) -> None:
    """`Windows.test(cost=)` (the pending attempts above) decides as `limits`' memory storage does. Each step adds
    1/4096 s, so no entry is ever exactly one period old (where `limits`' own hit and test disagree)."""
    clock = _Clock()
    reference_class: Callable[[MemoryStorage], RateLimiter] = {
        "moving-window": MovingWindowRateLimiter,
        "sliding-window-counter": SlidingWindowCounterRateLimiter,
        "fixed-window": FixedWindowRateLimiter,
    }[strategy]
    with mock.patch.object(limits.storage.memory, "time", clock):
        storage = MemoryStorage()
        reference, windows = reference_class(storage), Windows(strategy, clock=clock)
        for eighths, cost, item in steps:
            clock.now += eighths / 8 + 1 / 4096
            if cost:
                assert windows.test(item, "k", cost) == reference.test(item, "k", cost=cost), (cost, item)
            else:
                assert windows.hit(item, "k") == reference.hit(item, "k")
        storage.reset()


class _Clock:
    def __init__(self) -> None:
        self.now = 1_048_576.0

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


def test_the_stream_cap_stays_below_the_sdks_subscription_limit() -> None:
    """SECURITY__MAX_STREAMS may not exceed the SDK's own listen-stream limit (MCPServer keeps its default), so no
    caller ever gets the SDK's "Subscription limit reached"."""
    sdk_limit = inspect.signature(ListenHandler.__init__).parameters["max_subscriptions"].default
    ceiling = [m.le for m in SecuritySettings.model_fields["max_streams"].metadata if getattr(m, "le", None)]
    assert ceiling == [sdk_limit]
    defaults = SecuritySettings()
    assert defaults.max_streams_per_principal * 8 <= defaults.max_streams <= sdk_limit


# ---- slow clients: nginx ---------------------------------------------------------------------------------------------
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def test_nginx_config_bounds_slow_clients() -> None:
    conf = (REPO / "config" / "nginx.conf").read_text()
    for directive in ("client_header_timeout", "client_body_timeout", "send_timeout", "keepalive_timeout"):
        assert re.search(rf"^\s*{directive}\s+\d+s;", conf, re.M), f"config/nginx.conf sets no {directive}"


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_nginx_drops_a_client_slow_to_send_its_headers(tmp_path: Path) -> None:
    """The test template's client_header_timeout is 2 s (production: 10 s); nginx's default would be 60 s."""
    tmp_path.chmod(0o755)
    listen, upstream = free_port(), f"127.0.0.1:{free_port()}"
    values = {"PREFIX": str(tmp_path), "LISTEN_PORT": str(listen), "UPSTREAM_1": upstream, "UPSTREAM_2": upstream}
    template = (REPO / "config" / "nginx.test.conf.template").read_text()
    (tmp_path / "nginx.conf").write_text(re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: values[m.group(1)], template))
    assert NGINX is not None
    prefix, conf, error_log = str(tmp_path), str(tmp_path / "nginx.conf"), str(tmp_path / "error.log")
    nginx = subprocess.Popen(
        [NGINX, "-p", prefix, "-e", error_log, "-c", conf, "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", listen), timeout=5)
                break
            except OSError:
                assert nginx.poll() is None and time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        closed, _ = closed_within(sock, 5)
        sock.close()
        assert closed, "nginx kept a client with unfinished headers for more than 5 s"
        assert time.monotonic() - started > 1.5
    finally:
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nginx.kill()
            nginx.wait()


# ---- helpers ---------------------------------------------------------------------------------------------------------
async def _eventually(
    check: Callable[[], bool], within: float = 3.0, what: Callable[[], str] = lambda: "condition not met in time"
) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, what()
        await asyncio.sleep(0.05)
