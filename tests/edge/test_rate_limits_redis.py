"""Two real app processes share one real redis-server: limits hold across replicas, and survive Redis dying."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable, Iterator

import httpx2
import pytest

from tests.support.calls import modern_call
from tests.support.entra import EntraStandIn
from tests.support.redis import RedisServer
from tests.support.replicas import Replica, replicas_ready
from tests.support.servers import ServerThread

if shutil.which("redis-server") is None:
    if os.environ.get("CI"):  # CI installs it (.ci/test-packages): missing there is a failure, not a skip
        raise RuntimeError("redis-server is not installed")
    pytest.skip("redis-server is not installed (make test installs it when run as root)", allow_module_level=True)

pytestmark = (
    pytest.mark.slow
)  # its tests share Redis and two replicas, on one worker (ONE_WORKER_MODULES in the top-level conftest.py)

READER = "mcp.read"
OUTAGE = "rate-limit storage unavailable"
RECOVERED = "rate-limit storage is reachable again"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def replicas(
    entra: EntraStandIn, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Replica]]:
    with replicas_ready(
        entra,
        redis,
        tmp_path_factory.mktemp("replicas"),
        RATE_LIMIT__DEFAULT="20/minute",
        SECURITY__MAX_CONCURRENT_CALLS_PER_PRINCIPAL="64",  # the bursts here test rates, not concurrency
    ) as started:
        yield started


async def call(http: httpx2.AsyncClient, base: str, token: str, tool: str, request_id: int) -> httpx2.Response:
    headers, body = modern_call(tool)
    body["id"] = request_id
    return await http.post(f"{base}/mcp", json=body, headers={**headers, "Authorization": f"Bearer {token}"})


async def burst(replicas: list[Replica], token: str, tool: str, count: int, first_id: int = 1) -> list[httpx2.Response]:
    """`count` concurrent calls, alternating between the replicas."""
    async with httpx2.AsyncClient(timeout=30) as http:
        return list(
            await asyncio.gather(*(call(http, replicas[i % 2].url, token, tool, first_id + i) for i in range(count)))
        )


def assert_refused(response: httpx2.Response, request_id: int, scope: str) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert body["id"] == request_id
    assert body["error"]["data"]["scope"] == scope


def oid(n: int) -> str:
    return f"aaaaaaaa-0000-4000-8000-{n:012d}"


async def test_one_principals_limit_holds_across_both_replicas(
    replicas: list[Replica], token: Callable[..., str]
) -> None:
    first, second = token(READER, oid=oid(101)), token(READER, oid=oid(102))
    responses = await burst(replicas, first, "probe_read", 40)
    ok = [r for r in responses if r.status_code == 200]
    refused = [(i, r) for i, r in enumerate(responses, start=1) if r.status_code != 200]
    assert len(ok) == 20, [r.status_code for r in responses]
    assert all(not r.json()["result"].get("isError") for r in ok)
    for request_id, response in refused:
        assert_refused(response, request_id, "principal")
    # Each replica got 20 of the 40 calls: unshared counts would have let all 40 through.

    # A different principal has its own bucket, on either replica.
    others = await burst(replicas, second, "probe_read", 4)
    assert [r.status_code for r in others] == [200] * 4


async def test_per_tool_limit_is_independent_of_the_global_one(
    replicas: list[Replica], token: Callable[..., str]
) -> None:
    caller = token(READER, oid=oid(201))
    limited = await burst(replicas, caller, "probe_limited", 5)
    assert sorted(r.status_code for r in limited) == [200, 200, 200, 429, 429]
    for request_id, response in enumerate(limited, start=1):
        if response.status_code == 429:
            assert_refused(response, request_id, "tool")
            assert "3 per 1 minute" in response.json()["error"]["message"]
    # The caller's global budget (20) is far from spent: other tools still answer, on both replicas.
    others = await burst(replicas, caller, "probe_read", 4, first_id=100)
    assert [r.status_code for r in others] == [200] * 4


async def test_redis_stopped_mid_test_fails_open_to_per_process_limits(
    replicas: list[Replica], redis: RedisServer, token: Callable[..., str]
) -> None:
    caller = token(READER, oid=oid(301))
    assert [r.status_code for r in await burst(replicas, caller, "probe_read", 2)] == [200, 200]
    outages_before = [replica.log_count(OUTAGE) for replica in replicas]
    redis.stop()
    try:
        # Documented fail_open: calls go on, each process enforcing the limit from its own in-memory counts.
        per_replica = [await burst([replica, replica], caller, "probe_read", 25) for replica in replicas]
        for responses in per_replica:
            statuses = [r.status_code for r in responses]
            assert 500 not in statuses
            assert statuses.count(200) == 20 and statuses.count(429) == 5, statuses
        for replica, before in zip(replicas, outages_before, strict=True):
            assert replica.log_count(OUTAGE) == before + 1, replica.log_path.read_text()  # once, not per request
    finally:
        redis.start()
    await asyncio.sleep(1.2)  # past the storage retry interval
    fresh = token(READER, oid=oid(302))
    assert [r.status_code for r in await burst(replicas, fresh, "probe_read", 2)] == [200, 200]
    assert all(replica.log_count(RECOVERED) >= 1 for replica in replicas)


async def test_fail_closed_answers_503_while_redis_is_down_and_logs_once(
    serve: Callable[..., ServerThread], token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    redis_server = RedisServer().start()
    try:
        server = serve(rate_limit={"storage_uri": redis_server.uri, "on_storage_error": "fail_closed"})
        caller = token(READER, oid=oid(401))
        async with httpx2.AsyncClient(timeout=30) as http:
            assert (await call(http, server.url, caller, "probe_read", 1)).status_code == 200
            redis_server.stop()
            caplog.set_level(logging.ERROR, logger="app.ratelimit")
            responses = [await call(http, server.url, caller, "probe_read", 10 + i) for i in range(8)]
            anonymous = await http.post(f"{server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        for request_id, response in enumerate(responses, start=10):
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["id"] == request_id
        assert anonymous.status_code == 503
        assert sum(OUTAGE in record.getMessage() for record in caplog.records) == 1
    finally:
        redis_server.close()
