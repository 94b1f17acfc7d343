"""Real nginx (config/nginx.test.conf.template) before two `python -m app` processes; the SDK client goes through it.

Loopback has a whole /8, so "another machine" is a client bound to 127.0.0.2 / 127.0.0.3, while the apps trust only
127.0.0.1/32 (where nginx connects from). One app serving two MCP servers (`/mcp` and `/hr/mcp`, docs/servers.md) is
put behind the same nginx configuration too.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from app.main import create_app
from tests.support.calls import modern_call
from tests.support.entra import EntraStandIn
from tests.support.nginx import (
    EDGE_TOOLS,
    HR_TOOLS,
    AppProcess,
    InProcessApp,
    client,
    nginx_in_front,
    require_nginx,
    start_app,
)
from tests.support.servers import ServerThread, free_port
from tests.support.values import settings_for

require_nginx()

# Its tests share nginx and two app processes (the `edge` fixture), on one worker (ONE_WORKER_MODULES in the
# top-level conftest.py).
# A loaded 2-core machine can take a while to start two app processes: readiness is waited on, generously.
pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

SPOOFED_CLIENT = "203.0.113.7"
HR_CLIENT_ID = "9e0d0c0b-0000-4000-8000-0000000000a1"  # the second server's own app registration


@dataclass
class Edge:
    public: str
    apps: list[AppProcess]
    workdir: Path

    @property
    def public_host(self) -> str:
        return self.public.split("://", 1)[1]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="edge-"))
    path.chmod(0o755)  # nginx workers drop to an unprivileged user when the test runs as root
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def edge(entra: EntraStandIn, workdir: Path) -> Iterator[Edge]:
    listen = free_port()
    apps = [start_app(entra, workdir, f"http://127.0.0.1:{listen}") for _ in range(2)]  # both start in parallel
    with nginx_in_front(workdir, listen, apps) as public:
        yield Edge(public, apps, workdir)


@pytest.fixture(scope="module")
def two_servers(entra: EntraStandIn) -> Iterator[str]:
    """nginx's public URL in front of one app serving two MCP servers: the first at `/mcp` (the edge tools) and `hr`
    at `/hr/mcp`, with its own app registration and tools. Built in this process (`create_app`), in production mode
    against the Entra stand-in; it is both of nginx's upstreams. Its own nginx prefix: `edge`'s nginx may be running."""
    listen = free_port()
    settings = settings_for(
        entra,
        listen,  # MCP__RESOURCE_HOST is nginx's address
        tools={"dir": EDGE_TOOLS},
        security={"trusted_proxies": ["127.0.0.1/32"]},
        # Its own lock file: the default (beside its folder) would be the first server's, which startup refuses.
        servers={
            "hr": {
                "path": "/hr/mcp",
                "tools_dir": HR_TOOLS,
                "lock_file": HR_TOOLS.parent / "hr.lock",
                "client_id": HR_CLIENT_ID,
            }
        },
    )
    app = InProcessApp(ServerThread(create_app(settings)).start())
    prefix = Path(tempfile.mkdtemp(prefix="edge-servers-"))
    prefix.chmod(0o755)
    try:
        with nginx_in_front(prefix, listen, [app, app]) as public:
            yield public
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def seen(result: Any) -> dict[str, Any]:
    assert not result.is_error, result
    return dict(result.structured_content)


# ---- through nginx --------------------------------------------------------------------------------------------


async def test_tools_call_through_nginx_reaches_both_processes(edge: Edge, token: Callable[..., str]) -> None:
    """Each caller's session stays on one process (affinity on its token); callers spread over both."""
    views: list[dict[str, Any]] = []
    for n in range(40):  # consistent hashing: a few callers land on both processes, almost surely well before 40
        async with client(edge.public, token(oid=f"aaaaaaaa-0000-4000-8000-{n:012d}")) as (sdk, _):
            mine = [seen(await sdk.call_tool("edge_seen", {})) for _ in range(3)]
        assert len({view["pid"] for view in mine}) == 1  # one session, one process
        views += mine
        if {view["pid"] for view in views} == {app.proc.pid for app in edge.apps}:
            break
    assert {view["pid"] for view in views} == {app.proc.pid for app in edge.apps}
    for view in views:
        # nginx (trusted) reported the real client and the public Host; the app believed it.
        assert view == {**view, "client": "127.0.0.3", "host": edge.public_host, "scheme": "http"}


async def test_sse_streams_through_nginx(edge: Edge, token: Callable[..., str]) -> None:
    """Progress sent before a 1 s pause reaches the client well before the result: nginx is not buffering."""
    progress_at: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        progress_at.append(time.monotonic())

    async with client(edge.public, token()) as (sdk, responses):
        result = await sdk.call_tool("edge_progress", {"pause": 1.0}, progress_callback=on_progress)
        done_at = time.monotonic()
    assert [c.text for c in result.content] == ["done"]  # type: ignore[union-attr]
    assert len(progress_at) == 1
    assert done_at - progress_at[0] > 0.6, "the progress notification arrived only with the result"
    streamed = [r for r in responses if r.headers.get("content-type", "").startswith("text/event-stream")]
    assert streamed, "no text/event-stream response came through nginx"
    assert all(r.headers["cache-control"].startswith("no-store") for r in streamed)
    assert all(r.headers["x-content-type-options"] == "nosniff" for r in responses)


async def test_prm_resource_is_the_public_url(edge: Edge) -> None:
    async with httpx2.AsyncClient(base_url=edge.public) as http:
        doc = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
        challenge = await http.post("/mcp", json={})
    assert doc["resource"] == f"{edge.public}/mcp"
    assert challenge.status_code == 401
    assert (
        f'resource_metadata="{edge.public}/.well-known/oauth-protected-resource/mcp"'
        in (challenge.headers["www-authenticate"])
    )
    assert all(f":{app.port}" not in str(doc) for app in edge.apps)


async def test_evil_origin_gets_403(edge: Edge, token: Callable[..., str]) -> None:
    headers, body = modern_call("edge_seen")
    headers["Authorization"] = f"Bearer {token()}"
    async with httpx2.AsyncClient(base_url=edge.public) as http:
        evil = await http.post("/mcp", headers={**headers, "Origin": "https://evil.example"}, json=body)
        evil_prm = await http.get("/.well-known/oauth-protected-resource/mcp", headers={"Origin": "null"})
        same_origin = await http.post("/mcp", headers={**headers, "Origin": edge.public}, json=body)
        no_origin = await http.post("/mcp", headers=headers, json=body)
    assert (evil.status_code, evil_prm.status_code) == (403, 403)
    assert (same_origin.status_code, no_origin.status_code) == (200, 200)


# ---- several MCP servers in one app, through nginx ------------------------------------------------------------


@pytest.mark.parametrize(("path", "name"), [("/mcp", "secure-mcp-server"), ("/hr/mcp", "hr")])
async def test_each_servers_path_and_its_metadata_are_routed_through_nginx(
    two_servers: str, path: str, name: str
) -> None:
    """The MCP location serves every server's path, and `/.well-known/` each one's own RFC 9728 metadata; each 401
    points at its own."""
    prm = f"/.well-known/oauth-protected-resource{path}"
    async with httpx2.AsyncClient(base_url=two_servers) as http:
        doc = await http.get(prm)
        challenge = await http.post(path, json={})
    assert doc.status_code == 200
    assert (doc.json()["resource"], doc.json()["resource_name"]) == (f"{two_servers}{path}", name)
    assert challenge.status_code == 401
    assert f'resource_metadata="{two_servers}{prm}"' in challenge.headers["www-authenticate"]


async def test_the_root_metadata_is_the_first_servers_and_other_paths_stay_unpublished(two_servers: str) -> None:
    async with httpx2.AsyncClient(base_url=two_servers) as http:
        root = (await http.get("/.well-known/oauth-protected-resource")).json()
        elsewhere = [await http.post(path, json={}) for path in ("/hr/mcp/", "/hr/mcp/x", "/hr", "/HR/mcp")]
    assert root["resource"] == f"{two_servers}/mcp"
    # nginx's own 404: the app's answers all carry nosniff.
    assert [(r.status_code, "x-content-type-options" in r.headers) for r in elsewhere] == [(404, False)] * 4


async def test_the_sdk_client_calls_the_second_server_through_nginx(
    two_servers: str, token: Callable[..., str]
) -> None:
    hr_token = token(scopes="hr.read", audience=HR_CLIENT_ID)
    async with client(two_servers, hr_token, path="/hr/mcp") as (sdk, responses):
        listed = [tool.name for tool in (await sdk.list_tools()).tools]
        answer = seen(await sdk.call_tool("hr_headcount", {"team": "payroll"}))
    assert listed == ["hr_headcount"]  # its own catalog, not the first server's
    assert answer == {"server": "hr", "team": "payroll", "headcount": 7, "host": two_servers.split("://", 1)[1]}
    assert all(r.url.path == "/hr/mcp" for r in responses)

    # Through the same edge, each server takes only tokens for its own app registration.
    headers, body = modern_call("hr_headcount", {"team": "payroll"})
    async with httpx2.AsyncClient(base_url=two_servers) as http:
        own = await http.post("/hr/mcp", headers={**headers, "Authorization": f"Bearer {hr_token}"}, json=body)
        first_servers = await http.post("/hr/mcp", headers={**headers, "Authorization": f"Bearer {token()}"}, json=body)
        at_first = await http.post("/mcp", headers={**headers, "Authorization": f"Bearer {hr_token}"}, json=body)
    assert (own.status_code, first_servers.status_code, at_first.status_code) == (200, 401, 401)


# ---- straight to one app process ------------------------------------------------------------------------------


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(edge: Edge, token: Callable[..., str]) -> None:
    app = edge.apps[0]
    spoof = {"X-Forwarded-For": SPOOFED_CLIENT, "X-Forwarded-Proto": "https", "X-Forwarded-Host": edge.public_host}
    async with client(app.url, token(), source="127.0.0.2", headers={**spoof, "Host": edge.public_host}) as (sdk, _):
        untrusted = seen(await sdk.call_tool("edge_seen", {}))
    async with client(app.url, token(), source="127.0.0.1", headers=spoof) as (sdk, _):
        trusted = seen(await sdk.call_tool("edge_seen", {}))
    assert (untrusted["client"], untrusted["scheme"]) == ("127.0.0.2", "http")
    assert (trusted["client"], trusted["scheme"], trusted["host"]) == (SPOOFED_CLIENT, "https", edge.public_host)

    # X-Forwarded-Host from an untrusted peer can't turn an unknown Host into the public one.
    prm = "/.well-known/oauth-protected-resource/mcp"
    direct = {"X-Forwarded-Host": edge.public_host}  # Host stays 127.0.0.1:{app port}, which is not allowed
    untrusted_transport = httpx2.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx2.AsyncClient(base_url=app.url, transport=untrusted_transport) as http:
        assert (await http.get(prm, headers=direct)).status_code == 421
    async with httpx2.AsyncClient(base_url=app.url) as http:
        assert (await http.get(prm, headers=direct)).status_code == 200


async def test_request_state_sealed_by_one_process_resumes_on_the_other(
    edge: Edge, serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    headers, body = modern_call("edge_two_rounds")
    headers = {**headers, "Authorization": f"Bearer {token()}", "Host": edge.public_host}
    first, second = edge.apps
    async with httpx2.AsyncClient() as http:
        round_one = (await http.post(f"{first.url}/mcp", headers=headers, json=body)).json()["result"]
        assert round_one["resultType"] == "input_required"
        state = round_one["requestState"]
        assert f"sealed-by-{first.proc.pid}" not in state  # sealed, not plaintext
        body["params"]["requestState"] = state
        round_two = (await http.post(f"{second.url}/mcp", headers=headers, json=body)).json()
        someone_else = {**headers, "Authorization": f"Bearer {token(oid='bbbbbbbb-0000-4000-8000-00000000000b')}"}
        replayed = (await http.post(f"{second.url}/mcp", headers=someone_else, json=body)).json()

        # Control: a process with another key ring refuses the same state.
        other = serve(tools={"dir": EDGE_TOOLS}, mcp={"request_state_keys": [secrets.token_urlsafe(32)]})
        foreign = (await http.post(f"{other.url}/mcp", headers={**headers, "Host": other.url[7:]}, json=body)).json()
    text = round_two["result"]["content"][0]["text"]
    assert text == f"sealed-by-{first.proc.pid} resumed-by-{second.proc.pid}"
    assert foreign["error"]["message"] == "Invalid or expired requestState"
    assert replayed["error"]["message"] == "Invalid or expired requestState"  # bound to the caller who started it
    assert "sealed-by" not in str(foreign)


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_during_a_call_finishes_it_and_exits_0(
    entra: EntraStandIn, workdir: Path, token: Callable[..., str], workers: int
) -> None:
    """With 2 workers uvicorn's supervisor relays SIGTERM to each (within 0.5 s); each worker drains on its own."""
    app = start_app(
        entra,
        workdir,
        LOG_LEVEL="INFO",  # to see uvicorn's "Waiting for connections to close"
        SERVER__DRAIN_SECONDS="1.5",  # room for the poll below to see the drain on a loaded machine
        SERVER__SHUTDOWN_GRACE_SECONDS="10",
        SERVER__WORKERS=str(workers),
        MCP__STATELESS="true" if workers > 1 else "false",  # sessions live in one worker: refused with two
    )
    try:
        app.wait_healthy()
        async with client(app.url, token(), source="127.0.0.1") as (sdk, _):
            await sdk.list_tools()  # the client checks results against output schemas; fetch them while we can
            call, running = _in_flight(sdk, 4.0)  # outlasts the drain
            await asyncio.wait_for(running.wait(), 30)  # the tool has started
            app.proc.send_signal(signal.SIGTERM)
            readiness = await _poll_readyz(app.url, until=503, within=2.5)  # draining: answering, but not ready
            result = await call
        assert readiness == {"status": "not ready"}
        texts = [c.text for c in result.content]
        assert len(texts) == 1
        assert texts[0].startswith("slept 4.0 in ")
        assert app.proc.wait(timeout=15) == 0, app.log.read_text()[-3000:]
        log = app.log.read_text()
        assert "Waiting for connections to close" in log  # the call was still running when shutdown began
        assert "Cancel" not in log  # and nothing was cut off by the grace timeout
    finally:
        app.stop()


async def test_a_call_longer_than_the_grace_period_is_cut_off_and_the_exit_is_still_0(
    entra: EntraStandIn, workdir: Path, token: Callable[..., str]
) -> None:
    app = start_app(entra, workdir, SERVER__SHUTDOWN_GRACE_SECONDS="1")
    try:
        app.wait_healthy()
        async with client(app.url, token(), source="127.0.0.1") as (sdk, _):
            await sdk.list_tools()
            call, running = _in_flight(sdk, 30.0)
            await asyncio.wait_for(running.wait(), 30)
            signalled = time.monotonic()
            app.proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(app.proc.wait, 15) == 0, app.log.read_text()[-3000:]
            stopped = time.monotonic() - signalled
            with pytest.raises(Exception) as dropped:  # noqa: PT011  # the SDK reports a cut stream in several ways
                await asyncio.wait_for(call, 10)
            assert not isinstance(dropped.value, TimeoutError), "the client never learned the call was cut off"
        assert stopped < 1 + 3, f"shutdown took {stopped:.1f} s with a 1 s grace period"
        assert "timeout graceful shutdown exceeded" in app.log.read_text()
    finally:
        app.stop()


async def _poll_readyz(url: str, until: int, within: float) -> Any:
    deadline = time.monotonic() + within
    async with httpx2.AsyncClient(base_url=url) as http:
        while True:
            try:
                response = await http.get("/readyz")
            except httpx2.TransportError:
                pytest.fail("the server stopped accepting before /readyz turned 503")
            if response.status_code == until or time.monotonic() > deadline:
                assert response.status_code == until
                return response.json()
            await asyncio.sleep(0.05)


async def test_readiness_is_false_while_the_jwks_is_unreachable(entra: EntraStandIn, workdir: Path) -> None:
    entra.down = True
    app = start_app(entra, workdir)
    try:
        app.wait_healthy()
        async with httpx2.AsyncClient(base_url=app.url) as http:
            not_ready = await http.get("/readyz")
            assert not_ready.status_code == 503
            assert not_ready.json() == {"status": "not ready"}  # no check names, hosts or errors
            assert (await http.get("/healthz")).status_code == 200  # liveness has no dependencies
            entra.down = False
            deadline = time.monotonic() + 15
            while (await http.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "readiness did not recover once the JWKS was back"
                await asyncio.sleep(0.25)
    finally:
        app.stop()


def _in_flight(sdk: Any, seconds: float) -> tuple[asyncio.Task[Any], asyncio.Event]:
    """An `edge_sleep` call, and the event its first progress notification sets: the tool is running."""
    running = asyncio.Event()

    async def progressed(progress: float, total: float | None, message: str | None) -> None:
        running.set()

    return asyncio.create_task(sdk.call_tool("edge_sleep", {"seconds": seconds}, progress_callback=progressed)), running
