"""Sessions across two replicas behind real nginx (config/nginx.test.conf.template: affinity on the caller's token)
with a real Redis event store: server push works, a stream dropped mid-call resumes with Last-Event-ID and loses
nothing, and losing a replica ends its sessions cleanly (404, then a new session on the other).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import redis
from mcp.shared.exceptions import MCPError
from mcp_types import LoggingMessageNotificationParams, ResourceUpdatedNotification

from tests.support.entra import EntraStandIn
from tests.support.nginx import AppProcess, client, nginx_in_front, require_nginx, start_app
from tests.support.redis import RedisServer
from tests.support.servers import free_port
from tests.support.sessions import SESSION_TOOLS, elicit, sample

require_nginx()

# Handshake-era features (logging/setLevel, resources/subscribe, ctx.log) are exercised on purpose: the SDK marks
# them deprecated for 2026-07-28, and clients of 2025-06-18 and 2025-11-25 still use them.
pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]


@dataclass
class Replicas:
    public: str
    apps: list[AppProcess]
    redis: RedisServer


@pytest.fixture(scope="module")
def replicas(entra: EntraStandIn) -> Iterator[Replicas]:
    workdir = Path(tempfile.mkdtemp(prefix="replicas-"))
    workdir.chmod(0o755)  # nginx workers drop to an unprivileged user when the test runs as root
    store = RedisServer().start()
    listen = free_port()
    env = {"TOOLS__DIR": str(SESSION_TOOLS), "RATE_LIMIT__STORAGE_URI": store.uri}
    apps = [start_app(entra, workdir, f"http://127.0.0.1:{listen}", **env) for _ in range(2)]
    try:
        with nginx_in_front(workdir, listen, apps) as public:
            yield Replicas(public, apps, store)
    finally:
        store.close()


def _caller(token: Callable[..., str], n: int) -> str:
    return token(oid=f"cccccccc-0000-4000-8000-{n:012d}")


async def test_server_push_works_through_nginx(replicas: Replicas, token: Callable[..., str]) -> None:
    levels: list[str] = []
    updated = anyio.Event()

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        levels.append(params.level)

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updated.set()

    callbacks: dict[str, Any] = {"sampling_callback": sample, "elicitation_callback": elicit}
    callbacks |= {"logging_callback": on_log, "message_handler": on_message}
    async with client(replicas.public, _caller(token, 1), mode="legacy", **callbacks) as (sdk, _):
        assert sdk.session.protocol_version == "2025-11-25"
        where = {(await sdk.call_tool("push_where", {})).structured_content["result"] for _ in range(3)}
        assert len(where) == 1  # affinity: the whole session on one replica
        sampled = await sdk.call_tool("push_sample", {"prompt": "hi"})
        elicited = await sdk.call_tool("push_elicit", {})
        asked = await sdk.call_tool("ask_both", {"prompt": "hi"})  # `ask`: pushed over the session
        await sdk.set_logging_level("error")
        await sdk.call_tool("push_logs", {})
        await sdk.subscribe_resource("push://value")
        await sdk.call_tool("push_change", {})
        with anyio.fail_after(10):
            await updated.wait()
    assert sampled.structured_content == {"result": "model said: echo hi"}
    assert elicited.structured_content == {"result": "accept: teal"}
    assert asked.structured_content == {"result": "teal; model said: echo hi"}
    assert levels == ["error"]

    levels.clear()
    modern: dict[str, Any] = {"mode": "2026-07-28", "logging_callback": on_log, "log_level": "error"}
    modern |= {"sampling_callback": sample, "elicitation_callback": elicit}
    async with client(replicas.public, _caller(token, 1), **modern) as (sdk, _):
        # `ask` at 2026-07-28: input-required rounds, each a new request through nginx, the answers sealed.
        asked = await sdk.call_tool("ask_both", {"prompt": "hi"})
        assert asked.structured_content == {"result": "teal; model said: echo hi"}
        assert (await sdk.call_tool("push_logs", {})).structured_content == {"result": "logged"}
        # The listen stream and the call that changes the resource reach the same replica (same caller, same key).
        async with sdk.listen(resource_subscriptions=["push://value"]) as subscription:
            await sdk.call_tool("push_change", {})
            with anyio.fail_after(10):
                event = await subscription.__anext__()
    assert levels == ["error"]
    assert "push://value" in str(event)


async def test_a_stream_dropped_mid_call_resumes_from_redis(replicas: Replicas, token: Callable[..., str]) -> None:
    updates: list[str | None] = []
    resumed: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append(message)

    async with client(replicas.public, _caller(token, 2), mode="legacy") as (sdk, responses):
        result = await sdk.call_tool("push_dropped", {"count": 3}, progress_callback=on_progress)
        resumed = [r.request.headers["last-event-id"] for r in responses if "last-event-id" in r.request.headers]
    assert result.structured_content == {"result": "finished"}
    assert updates == [f"before {n}" for n in (1, 2, 3)] + [f"after {n}" for n in (4, 5, 6)]
    assert len(resumed) == 1
    scope = resumed[0].split(".", 1)[0]
    stored = redis.Redis.from_url(replicas.redis.uri).keys(f"*:mcp-events:{scope}:*")
    assert stored, "the events were not kept in Redis"


async def test_losing_a_replica_ends_its_sessions_cleanly(replicas: Replicas, token: Callable[..., str]) -> None:
    """Runs last in this module: it kills one replica."""
    caller = _caller(token, 3)
    async with client(replicas.public, caller, mode="legacy") as (sdk, responses):
        pid = (await sdk.call_tool("push_where", {})).structured_content["result"]
        lost = next(app for app in replicas.apps if app.proc.pid == pid)
        lost.proc.kill()
        lost.proc.wait(timeout=10)
        with pytest.raises(MCPError, match="Session not found"):  # the other replica does not know the session
            await sdk.call_tool("push_where", {})
        assert any(r.status_code == 404 for r in responses)
    async with client(replicas.public, caller, mode="legacy") as (sdk, _):  # the client opens a new session
        again = (await sdk.call_tool("push_where", {})).structured_content["result"]
    assert again != pid
    assert httpx2.get(f"{replicas.public}/healthz", timeout=5).status_code == 200
