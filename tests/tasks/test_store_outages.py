"""The task store's bad days, with a real Redis: a replica that stops cleanly fails its running tasks at once (never
left `working`), and a Redis that is down gets callers a clear refusal or JSON-RPC error, never a 500."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx2
import pytest

from app.tasks.records import LOST
from app.tasks.store import RedisTaskStore
from tests.support.redis import RedisServer
from tests.support.servers import ServerThread
from tests.support.tasks import TasksClient, task_settings


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


async def test_a_replica_that_stops_cleanly_fails_its_running_tasks_at_once(
    serve: Callable[..., ServerThread], token: Callable[..., str], redis: RedisServer
) -> None:
    server = serve(**task_settings(), rate_limit={"storage_uri": redis.uri})
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        client = TasksClient(http, token("notes.read"))
        task_id = (await client.create("long_job", {"seconds": 60}))["taskId"]
        assert (await client.get(task_id))["status"] == "working"
    server.stop()
    store = RedisTaskStore(redis.uri, server.settings.mcp.server_name)  # type: ignore[attr-defined]
    try:
        record = await store.get(task_id)
    finally:
        await store.aclose()
    assert record is not None and record["status"] == "failed" and record["message"] == LOST


async def test_with_redis_down_tasks_are_refused_clearly_and_nothing_is_a_500(
    serve: Callable[..., ServerThread], token: Callable[..., str], redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(**task_settings(), rate_limit={"storage_uri": redis.uri})
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        client = TasksClient(http, token("notes.read"))
        task_id = (await client.create("long_job", {"seconds": 60}))["taskId"]
        redis.stop()
        created = await client.send("tools/call", {"name": "long_job", "arguments": {}}, "long_job")
        polled = await client.send("tasks/get", {"taskId": task_id}, task_id)
        plain = await TasksClient(http, token("notes.read"), declare=False).send(
            "tools/call", {"name": "long_job", "arguments": {"seconds": 0}}, "long_job"
        )
    assert created.status_code == 503 and created.headers["retry-after"] == "1"
    assert "task store is unavailable" in created.json()["error"]["message"]
    assert polled.status_code < 500
    error = polled.json()["error"] if polled.headers["content-type"].startswith("application/json") else None
    assert error is None or "task store is unavailable" in error["message"], polled.text
    assert "task store is unavailable" in polled.text
    assert plain.status_code == 200  # a call that is no task never needed the task store
    # The rate limiter says (at ERROR) that it fell back to in-memory counts; nothing else errs, nothing has a trace.
    assert not [r for r in caplog.records if (r.levelname == "ERROR" and r.name != "app.ratelimit") or r.exc_info]
