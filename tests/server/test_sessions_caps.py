"""Handshake-era sessions are bounded: per principal (429), per process (503), and by idle time; never queued.

Real uvicorn, raw `initialize` requests as any client sends them, and a hypothesis run of two callers interleaving
session openings, requests with ids of every JSON type, replays and deletions of their own and each other's sessions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.calls import rpc
from tests.support.servers import ServerThread

ALICE, BOB, CAROL = (f"aaaaaaaa-0000-4000-8000-00000000000{n}" for n in (1, 2, 3))
INIT = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
ACCEPT = "application/json, text/event-stream"


async def _open(http: httpx2.AsyncClient, bearer: str, init: Any = None) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {bearer}", "Accept": ACCEPT}
    return await http.post("/mcp", json=rpc("initialize", INIT if init is None else init), headers=headers)


def _session(bearer: str, opened: httpx2.Response) -> dict[str, str]:
    session_id = opened.headers["mcp-session-id"]
    return {"Authorization": f"Bearer {bearer}", "Accept": ACCEPT, "Mcp-Session-Id": session_id,
            "MCP-Protocol-Version": "2025-11-25"}  # fmt: skip


async def test_sessions_are_capped_per_principal_and_per_process(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(security={"max_sessions_per_principal": 2, "max_sessions": 3})
    alice, bob, carol = token(oid=ALICE), token(oid=BOB), token(oid=CAROL)
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        first, second = await _open(http, alice), await _open(http, alice)
        assert first.status_code == second.status_code == 200
        third = await _open(http, token(oid=ALICE))  # the same person with a fresh token (another client, say)
        assert third.status_code == 429 and "mcp-session-id" not in third.headers
        assert "SECURITY__MAX_SESSIONS_PER_PRINCIPAL" in third.json()["error"]["message"]
        assert (await _open(http, bob)).status_code == 200  # another principal has its own budget
        full = await _open(http, carol)  # the process holds three: the fourth is the SDK's 503, at once
        assert full.status_code == 503 and "mcp-session-id" not in full.headers
        ended = await http.delete("/mcp", headers=_session(alice, first))  # Alice ends one: room for her again
        assert ended.status_code in (200, 204)
        again = await _open(http, alice)
        assert again.status_code == 200
        still = await http.post("/mcp", json=rpc("ping"), headers=_session(alice, second))
        assert still.status_code == 200  # the sessions within the caps were never touched


async def test_concurrent_openings_by_one_principal_stop_at_its_cap(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    """Eight connections opening sessions at once, as a load generator would: exactly the cap succeeds."""
    server = serve(security={"max_sessions_per_principal": 5})
    alice = token(oid=ALICE)
    async with httpx2.AsyncClient(base_url=server.url, timeout=30, limits=httpx2.Limits(max_connections=8)) as http:
        answers = await asyncio.gather(*[_open(http, alice) for _ in range(40)])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 5 + [429] * 35


async def test_an_idle_session_expires_and_frees_its_place(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(security={"max_sessions_per_principal": 1, "session_idle_seconds": 1})
    alice = token(oid=ALICE)
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        opened = await _open(http, alice)
        assert opened.status_code == 200
        assert (await _open(http, alice)).status_code == 429
        await asyncio.sleep(2.5)
        gone = await http.post("/mcp", json=rpc("ping"), headers=_session(alice, opened))
        assert gone.status_code == 404  # expired: the client opens a new session
        assert (await _open(http, alice)).status_code == 200


_IDS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_INITS = st.one_of(_IDS, st.fixed_dictionaries({"protocolVersion": _IDS}))
_STEP = st.one_of(
    st.tuples(st.just("open"), st.integers(0, 1), st.one_of(st.just(INIT), _INITS)),
    st.tuples(st.sampled_from(["call", "call_other", "call_ended"]), st.integers(0, 1), _IDS),
    st.tuples(st.just("delete"), st.integers(0, 1), st.booleans()),
)


def test_two_callers_interleaving_on_sessions_never_get_a_5xx_other_than_the_process_cap(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(
        security={"max_sessions_per_principal": 3, "max_sessions": 5}, rate_limit={"default": "100000/minute"}
    )
    bearers = [token(oid=ALICE), token(oid=BOB)]
    statuses: list[int] = []

    async def run(steps: list[tuple[str, int, Any]]) -> None:
        held: list[list[dict[str, str]]] = [[], []]  # per caller: its open sessions' headers
        ended: list[dict[str, str]] = []  # sessions deleted: replayed later
        async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
            for step, who, value in steps:
                target = {"call": held[who], "call_other": held[1 - who], "call_ended": ended}.get(step)
                if step == "open":
                    response = await _open(http, bearers[who], value)
                    if response.status_code == 200 and "mcp-session-id" in response.headers:
                        held[who].append(_session(bearers[who], response))
                elif target:  # the caller's own session, the other's, or one already deleted
                    headers = {**target[-1], "Authorization": f"Bearer {bearers[who]}"}
                    message = {"jsonrpc": "2.0", "id": value, "method": "ping"}
                    response = await http.post("/mcp", json=message, headers=headers)
                elif step == "delete" and held[who]:
                    ended.append(held[who].pop(0 if value else -1))
                    response = await http.delete("/mcp", headers=ended[-1])
                else:
                    continue
                statuses.append(response.status_code)
                assert "Traceback" not in response.text
                # 503 only as the process cap's answer ("Too many open sessions"), never an error
                assert response.status_code < 500 or "Too many open sessions" in response.text, response.text[:300]
            for sessions in held:  # leave no session open for the next example
                for headers in sessions:
                    await http.delete("/mcp", headers=headers)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(steps=st.lists(_STEP, min_size=1, max_size=16))
    @example(steps=[("open", 0, INIT), ("call", 0, 1), ("call_other", 1, 2), ("open", 1, [1])])
    def interleave(steps: list[tuple[str, int, Any]]) -> None:
        asyncio.run(run(steps))

    interleave()
    assert {200, 400, 404} <= set(statuses)


@pytest.mark.parametrize("field", ["max_sessions_per_principal", "max_sessions", "session_idle_seconds"])
def test_session_bounds_refuse_nonsense_values(field: str) -> None:
    from pydantic import ValidationError

    from app.settings import SecuritySettings

    with pytest.raises(ValidationError):
        SecuritySettings(**{field: 0})


async def test_an_answered_opening_no_longer_counts_when_the_client_opens_the_next() -> None:
    """A client that has read the answer that opened its session may open another at once, before the first
    request's task resumes: the first must count once (as an open session), not twice (also as an opening)."""
    from mcp.server.lowlevel.server import Server
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from app.auth.principal import Principal
    from app.server.sessions import SessionScope

    manager = StreamableHTTPSessionManager(Server("probe"))
    caller = Principal(tid="t", sub="s", oid="o", client_id="c", scopes=frozenset(), roles=frozenset(), issuer="i",
                       token_version="2.0", token_id="x")  # fmt: skip
    answers: list[int] = []
    opened = iter(["first-session", "second-session"])

    async def sdk(scope: Any, receive: Any, send: Any) -> None:
        session_id = next(opened)
        manager._server_instances[session_id] = object()  # type: ignore[assignment]  # the SDK now holds it
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"mcp-session-id", session_id.encode())]}
        )
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    layer = SessionScope(sdk, sessions=True, events=False, manager=manager, per_principal=2)
    scope = {"type": "http", "method": "POST", "headers": [], "state": {"principal": caller}}

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def client(message: Any) -> None:
        if message["type"] == "http.response.start":
            answers.append(message["status"])
        if message["type"] == "http.response.body" and len(answers) == 1:
            await layer(dict(scope), receive, client)  # the next opening, before the first request has returned

    await layer(dict(scope), receive, client)
    assert answers == [200, 200]
    await layer(dict(scope), receive, client)  # a third, with two open: the cap
    assert answers == [200, 200, 429]


async def test_principals_whose_sessions_all_ended_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-principal record is bounded: principals that never come back do not accumulate."""
    from mcp.server.lowlevel.server import Server
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from app.auth.principal import Principal
    from app.server import sessions

    monkeypatch.setattr(sessions, "SWEEP_PRINCIPALS", 3)
    manager = StreamableHTTPSessionManager(Server("probe"))
    counter = iter(range(100))

    async def sdk(scope: Any, receive: Any, send: Any) -> None:
        session_id = f"s{next(counter)}"
        headers = [(b"mcp-session-id", session_id.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})  # and the session is gone

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def client(message: Any) -> None:
        return None

    layer = sessions.SessionScope(sdk, sessions=True, events=False, manager=manager, per_principal=2)
    for n in range(10):
        caller = Principal(tid="t", sub=f"s{n}", oid=f"o{n}", client_id="c", scopes=frozenset(), roles=frozenset(),
                           issuer="i", token_version="2.0", token_id="x")  # fmt: skip
        await layer({"type": "http", "method": "POST", "headers": [], "state": {"principal": caller}}, receive, client)
    assert len(layer.opened) <= 4
