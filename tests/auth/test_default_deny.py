"""Authorization is default-deny and keyed exactly as dispatch is: completion refs, listen streams, every method the
SDK can dispatch classified, refusals counted against the rate limit, in-flight slots held exactly while calls run.

Each test drives a real uvicorn with raw HTTP, as an attacker would, in both protocol eras where the method exists.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp_types import methods as sdk_methods
from starlette.types import Message

from app.auth.operation import CLASSIFIED, NOTIFICATIONS, TARGETED, UNTARGETED
from app.main import create_app
from tests.support import probe
from tests.support.calls import MODERN_HEADERS, rpc
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread, free_port
from tests.support.values import SUPPORT, settings_for

GUARDED_TOOLS = SUPPORT / "guarded_tools"
LEGACY = {"MCP-Protocol-Version": "2025-11-25", "Accept": "application/json, text/event-stream"}
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def request(era: str, method: str, params: dict[str, Any], id_: int = 1) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body of one JSON-RPC request, as a raw client of that protocol era sends it."""
    if era == "legacy":
        return LEGACY, rpc(method, params, id_)
    return {**MODERN_HEADERS, "Mcp-Method": method}, rpc(method, {**params, "_meta": META}, id_)


def answer(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC message of a JSON or a (finished) SSE response."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])  # type: ignore[no-any-return]
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def guarded(serve: Callable[..., ServerThread]) -> ServerThread:
    # Stateless: these tests post single handshake-era requests with no session (tests/server/test_sessions.py has
    # those).
    return serve(tools={"dir": GUARDED_TOOLS}, mcp={"stateless": True})


# ---- 1. completion refs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_a_ref_of_the_other_kind_never_reaches_a_protected_completer(
    guarded: ServerThread, token: Callable[..., str], era: str
) -> None:
    """A `ref/resource` naming a protected prompt (and a `ref/prompt` naming a protected template) is checked as
    what it says it is, and dispatch looks it up as exactly that: an unknown target completes nothing."""
    probe.calls.clear()
    auth = {"Authorization": f"Bearer {token('mcp.read')}"}
    argument = {"name": "topic", "value": ""}
    crossed = [
        {"type": "ref/resource", "uri": "guarded_prompt"},
        {"type": "ref/prompt", "name": "guarded://items/{item}"},
        {"type": "ref/resource", "uri": "no-such-target"},
    ]
    async with httpx2.AsyncClient(base_url=guarded.url, headers=auth, timeout=10) as http:
        for ref in crossed:
            headers, body = request(era, "completion/complete", {"ref": ref, "argument": argument})
            response = await http.post("/mcp", json=body, headers=headers)
            assert response.status_code == 200, response.text
            assert answer(response)["result"]["completion"]["values"] == []
        for ref in (
            {"type": "ref/prompt", "name": "guarded_prompt"},
            {"type": "ref/resource", "uri": crossed[1]["name"]},
        ):
            headers, body = request(era, "completion/complete", {"ref": ref, "argument": argument})
            response = await http.post("/mcp", json=body, headers=headers)
            assert response.status_code == 403
            assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
            assert "files.write" in response.headers["www-authenticate"]
    assert probe.calls == []  # no protected completer ran


async def test_a_completer_still_serves_the_target_it_belongs_to(
    guarded: ServerThread, token: Callable[..., str]
) -> None:
    auth = {"Authorization": f"Bearer {token('files.write mcp.read')}"}
    async with httpx2.AsyncClient(base_url=guarded.url, headers=auth, timeout=10) as http:
        for ref, values in (
            ({"type": "ref/prompt", "name": "guarded_prompt"}, ["secret-topic-1", "secret-topic-2"]),
            ({"type": "ref/resource", "uri": "guarded://items/{item}"}, ["secret-item"]),
        ):
            headers, body = request(
                "legacy", "completion/complete", {"ref": ref, "argument": {"name": "x", "value": ""}}
            )
            response = await http.post("/mcp", json=body, headers=headers)
            assert answer(response)["result"]["completion"]["values"] == values


# ---- 2. subscriptions/listen -------------------------------------------------------------------------------------
async def test_listen_needs_what_reading_each_resource_needs(guarded: ServerThread, token: Callable[..., str]) -> None:
    auth = {"Authorization": f"Bearer {token('mcp.read')}"}
    async with httpx2.AsyncClient(base_url=guarded.url, headers=auth, timeout=10) as http:
        uris = ["open://status", "guarded://items/7"]
        headers, body = request("modern", "subscriptions/listen", {"notifications": {"resourceSubscriptions": uris}})
        refused = await http.post("/mcp", json=body, headers=headers)
        assert refused.status_code == 403
        challenge = refused.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and "files.write" in challenge
        # What the caller may read, it may listen to: the stream opens.
        headers, body = request(
            "modern", "subscriptions/listen", {"notifications": {"resourceSubscriptions": uris[:1]}}
        )
        async with http.stream("POST", "/mcp", json=body, headers=headers) as opened:
            assert opened.status_code == 200
            assert opened.headers["content-type"].startswith("text/event-stream")


# ---- 3. default-deny ---------------------------------------------------------------------------------------------
def test_every_method_the_sdk_can_dispatch_is_classified(entra: EntraStandIn) -> None:
    """Both eras: the SDK's method tables and the handlers this server registers. An SDK upgrade that adds a method
    fails here instead of reaching a handler unchecked."""
    spec_methods = {method for method, _version in sdk_methods.CLIENT_REQUESTS}
    versions = {version for _method, version in sdk_methods.CLIENT_REQUESTS}
    assert {"2025-11-25", "2026-07-28"} <= versions
    app = create_app(settings_for(entra, free_port(), tools={"dir": GUARDED_TOOLS}))
    lowlevel = app.state.mcp._lowlevel_server
    registered = set(lowlevel._request_handlers)  # private: the handlers the SDK would dispatch to
    assert "tools/call" in registered and "subscriptions/listen" in registered
    unclassified = (spec_methods | registered | set(sdk_methods.SPEC_CLIENT_NOTIFICATION_METHODS)) - CLASSIFIED
    assert not unclassified, f"classify these in app/auth/operation.py: {sorted(unclassified)}"
    assert not UNTARGETED & TARGETED.keys() and not NOTIFICATIONS & (UNTARGETED | TARGETED.keys())


async def test_a_method_nobody_classified_is_refused_before_dispatch(
    entra: EntraStandIn, token: Callable[..., str]
) -> None:
    """Even a handler registered on the SDK server is never reached through a method authorization doesn't know."""
    settings = settings_for(entra, free_port(), tools={"dir": GUARDED_TOOLS})
    app = create_app(settings)
    reached: list[str] = []

    async def handler(ctx: Any, params: Any) -> dict[str, Any]:
        reached.append("new/method")
        return {}

    from mcp.types import RequestParams

    app.state.mcp._lowlevel_server.add_request_handler("new/method", RequestParams, handler)
    port = int(settings.resource_host.rsplit(":", 1)[1])
    with ServerThread(app, port=port) as server:
        auth = {"Authorization": f"Bearer {token('mcp.read files.write')}"}
        async with httpx2.AsyncClient(base_url=server.url, headers=auth, timeout=10) as http:
            for era in ("legacy", "modern"):
                headers, body = request(era, "new/method", {})
                response = await http.post("/mcp", json=body, headers={**headers, "Mcp-Method": "new/method"})
                assert response.status_code == 400
                assert response.json()["error"]["code"] == -32601
            notification = {"jsonrpc": "2.0", "method": "notifications/unheard_of"}
            response = await http.post("/mcp", json=notification, headers=LEGACY)
            assert response.status_code == 400
    assert reached == []


# ---- 5. refusals spend the budget --------------------------------------------------------------------------------
async def test_refused_requests_count_against_the_callers_rate_limit(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(tools={"dir": GUARDED_TOOLS}, rate_limit={"default": "3/minute"})
    auth = {"Authorization": f"Bearer {token('mcp.read')}"}
    async with httpx2.AsyncClient(base_url=server.url, headers=auth, timeout=10) as http:
        statuses = []
        for i in range(5):
            headers, body = request("legacy", "tools/call", {"name": "guarded_write", "arguments": {}}, i)
            statuses.append((await http.post("/mcp", json=body, headers=headers)).status_code)
        statuses.append((await http.post("/mcp", json=[rpc("ping")], headers=LEGACY)).status_code)  # a batch: 400
    assert statuses == [403, 403, 403, 429, 429, 429]


# ---- 8. in-flight accounting -------------------------------------------------------------------------------------
def _wrk(url: str, token: str, tool: str, connections: int, tmp_path: Path) -> tuple[int, int]:
    """(requests, non-2xx) of a 2-second wrk run of one `tools/call` over `connections` keep-alive connections."""
    wrk = shutil.which("wrk")
    if wrk is None:
        if os.environ.get("CI"):
            pytest.fail("wrk is not installed: .ci/test-packages installs it", pytrace=False)
        pytest.skip("wrk is not installed (apt-get install wrk)")
    body = json.dumps(rpc("tools/call", {"name": tool, "arguments": {}}))
    script = tmp_path / f"{tool}-{connections}.lua"
    headers = {**LEGACY, "Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    script.write_text(
        'wrk.method = "POST"\n'
        + f"wrk.body = [==[{body}]==]\n"
        + "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
        + "function done(s, l, r) io.write(string.format('WRK %d %d\\n', s.requests, s.errors.status)) end\n"
    )
    argv = [wrk, "-t1", f"-c{connections}", "-d2s", "--timeout", "10s", "-s", str(script), f"{url}/mcp"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    requests, non_2xx = (int(n) for n in next(ln for ln in out.splitlines() if ln.startswith("WRK ")).split()[1:])
    return requests, non_2xx


async def test_in_flight_slots_are_held_exactly_while_calls_run(
    serve: Callable[..., ServerThread], token: Callable[..., str], tmp_path: Path
) -> None:
    """12 keep-alive connections never have more than 12 calls in flight: with the default cap of 16 none may be
    refused as "in flight" (stateless mode, SSE answers). Past the cap, callers are refused. The rate limit is not
    what this measures, so it is raised; the in-flight caps keep their defaults."""
    server = serve(tools={"dir": GUARDED_TOOLS}, rate_limit={"default": "100000000/minute"}, mcp={"stateless": True})
    assert server.settings.security.max_concurrent_calls_per_principal == 16  # type: ignore[attr-defined]
    caller = token("mcp.read")
    requests, refused = await asyncio.to_thread(_wrk, server.url, caller, "open_read", 12, tmp_path)
    assert requests > 0 and refused == 0, f"{refused} of {requests} refused with 12 connections"
    requests, refused = await asyncio.to_thread(_wrk, server.url, caller, "slow_read", 24, tmp_path)
    assert requests > 0 and refused > 0  # 24 connections of a slow tool: past the cap, 429


async def test_a_slot_is_free_before_the_response_reaches_the_client() -> None:
    """The next call on a connection can arrive as soon as the last bytes of the previous answer are written, before
    the previous call's task runs again; it must find the slot free. Cap 1: the outer `send` starts that next call
    the moment it gets the final body, as a fast client on a keep-alive connection does."""
    from app.auth.operation import Operation
    from app.auth.principal import Principal
    from app.edge.bounds import CapConcurrency

    async def tool_call(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    cap = CapConcurrency(tool_call, per_principal=1, overall=1)
    caller = Principal("t", "s", "o", "c", frozenset({"mcp.read"}), frozenset(), "iss", "2.0", "jti")

    def scope() -> dict[str, Any]:
        state = {"operation": Operation("tools/call", 1), "principal": caller}
        return {"type": "http", "method": "POST", "path": "/mcp", "headers": [], "state": state}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def client(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
        elif len(statuses) < 3 and not message.get("more_body", False):
            await cap(scope(), receive, client)  # the next call, before the previous task resumes

    await cap(scope(), receive, client)
    assert statuses == [200, 200, 200]
    assert cap.slots.total == 0 and cap.slots.by_principal == {}
