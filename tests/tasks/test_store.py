"""app/tasks/store.py, the same tests for both stores: `MemoryTaskStore` (one replica) and `RedisTaskStore` on a real
redis-server (every replica): the active slots and their caps, records, atomic changes, lost and expired tasks."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from app.core.taskids import new_task_id
from app.tasks.records import LOST, TERMINAL, Record, TaskOptions, new_record, now_ms
from app.tasks.store import FINISHED_PER_OWNER, MemoryTaskStore, RedisTaskStore, TaskStore
from tests.support.redis import RedisServer

pytestmark = pytest.mark.timeout(60)
LATER = 60_000  # ms: a lease that outlives any test


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[TaskStore]:
    if request.param == "memory":
        yield MemoryTaskStore()
        return
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    kept = RedisTaskStore(redis_server.uri, f"test-{secrets.token_hex(4)}")  # keys of its own per test
    yield kept
    await kept.aclose()


def _twin(store: TaskStore) -> TaskStore:
    """The store as another replica sees it: a second Redis connection pool on the same keys (memory: itself)."""
    return (
        RedisTaskStore(store.uri, store.prefix.removeprefix("mcp:tasks:"))
        if isinstance(store, RedisTaskStore)
        else store
    )


def _record(**fields: object) -> Record:
    record = new_record(new_task_id("long_job"), "long_job", "tenant/oid|client", TaskOptions(), None)
    return {**record, **fields}


def _later() -> int:
    return now_ms() + LATER


async def test_reserve_caps_the_tasks_of_one_owner(store: TaskStore) -> None:
    assert await store.reserve("t1", "alice", _later(), 2, 100) == "ok"
    assert await store.reserve("t2", "alice", _later(), 2, 100) == "ok"
    assert await store.reserve("t3", "alice", _later(), 2, 100) == "principal"
    assert await store.reserve("t4", "bob", _later(), 2, 100) == "ok"  # another owner has slots of their own


async def test_reserve_caps_the_tasks_of_everyone(store: TaskStore) -> None:
    assert await store.reserve("t1", "alice", _later(), 5, 2) == "ok"
    assert await store.reserve("t2", "bob", _later(), 5, 2) == "ok"
    assert await store.reserve("t3", "carol", _later(), 5, 2) == "overall"
    assert await store.reserve("t4", "alice", _later(), 5, 2) == "overall"


async def test_a_refused_reservation_takes_no_slot(store: TaskStore) -> None:
    assert await store.reserve("t1", "alice", _later(), 1, 100) == "ok"
    for n in range(5):
        assert await store.reserve(f"x{n}", "alice", _later(), 1, 100) == "principal"
    assert await store.reserve("t2", "bob", _later(), 1, 2) == "ok"  # the refusals did not count overall


async def test_a_slot_whose_lease_ran_out_drops_out(store: TaskStore) -> None:
    assert await store.reserve("gone", "alice", now_ms() - 1, 1, 1) == "ok"  # its replica stopped renewing
    assert await store.reserve("next", "alice", _later(), 1, 1) == "ok"
    assert await store.reserve("third", "alice", _later(), 1, 1) == "principal"


async def test_a_renewed_slot_is_kept(store: TaskStore) -> None:
    assert await store.reserve("kept", "alice", now_ms() - 1, 1, 10) == "ok"
    await store.renew("kept", "alice", _later())
    assert await store.reserve("next", "alice", _later(), 1, 10) == "principal"
    await store.renew("never-reserved", "alice", _later())  # renewing nothing takes no slot
    assert await store.reserve("other", "bob", _later(), 1, 2) == "ok"


async def test_release_hands_the_slot_back(store: TaskStore) -> None:
    assert await store.reserve("t1", "alice", _later(), 2, 2) == "ok"
    assert await store.reserve("t2", "alice", _later(), 2, 2) == "ok"
    assert await store.reserve("t3", "bob", _later(), 2, 2) == "overall"
    await store.release("t1", "alice")
    await store.release("t1", "alice")  # twice, and unknown ones: no effect
    await store.release("unknown", "nobody")
    assert await store.reserve("t3", "bob", _later(), 2, 2) == "ok"
    assert await store.reserve("t4", "alice", _later(), 2, 2) == "overall"


async def test_put_then_get_returns_the_record_on_every_replica(store: TaskStore) -> None:
    record = _record(inputs={"input-0": {"method": "elicitation/create"}}, status="input_required", asked=1)
    await store.put(record)
    twin = _twin(store)
    try:
        assert await store.get(record["id"]) == record
        assert await twin.get(record["id"]) == record
        assert await store.get(record["id"] + "x") is None
        assert await store.get(new_task_id("long_job")) is None
    finally:
        if twin is not store:
            await twin.aclose()


async def test_change_applies_the_mutation_and_returns_the_record_after(store: TaskStore) -> None:
    record = _record()
    await store.put(record)
    changed = await store.change(record["id"], lambda r: {**r, "message": "step 1"})
    assert changed is not None and changed["message"] == "step 1"
    assert await store.get(record["id"]) == changed
    assert await store.change(new_task_id("long_job"), lambda r: {**r, "message": "x"}) is None


async def test_concurrent_changes_all_land(store: TaskStore) -> None:
    """50 increments at once, from two replicas' connections: none is lost to another's write."""
    record = _record(asked=0)
    await store.put(record)
    twin = _twin(store)

    def bump(current: Record) -> Record:
        return {**current, "asked": current["asked"] + 1}

    try:
        writers = [(store if n % 2 else twin).change(record["id"], bump) for n in range(50)]
        after = await asyncio.gather(*writers)
        assert sorted(r["asked"] for r in after if r is not None) == list(range(1, 51))
        final = await store.get(record["id"])
        assert final is not None and final["asked"] == 50
    finally:
        if twin is not store:
            await twin.aclose()


async def test_a_change_that_returns_none_leaves_the_record(store: TaskStore) -> None:
    done = _record(status="completed", result={"content": [{"type": "text", "text": "ok"}]}, message="done")
    await store.put(done)

    def finish(current: Record) -> Record | None:  # as a run's end: terminal states never change
        if current["status"] in TERMINAL:
            return None
        return {**current, "status": "cancelled"}

    assert await store.change(done["id"], finish) == done
    assert await store.change(done["id"], lambda r: None) == done
    assert await store.get(done["id"]) == done


async def test_a_record_past_its_lease_reads_as_failed(store: TaskStore) -> None:
    stranded = _record(lease=now_ms() - 1, status="input_required", inputs={"input-0": {}}, answers={"input-0": {}})
    await store.put(stranded)
    failed = await store.get(stranded["id"])
    assert failed is not None
    assert failed["status"] == "failed" and failed["message"] == LOST
    assert failed["error"] == {"code": -32603, "message": LOST}
    assert failed["inputs"] == {} and failed["answers"] == {}
    twin = _twin(store)
    try:
        assert await twin.get(stranded["id"]) == failed  # written back: every replica reads the same
    finally:
        if twin is not store:
            await twin.aclose()
    running = _record(lease=_later())
    await store.put(running)
    assert await store.get(running["id"]) == running


async def test_a_finished_record_past_its_lease_keeps_its_state(store: TaskStore) -> None:
    for status in sorted(TERMINAL):
        ended = _record(lease=now_ms() - 1, status=status, result={"content": []})
        await store.put(ended)
        assert await store.get(ended["id"]) == ended


async def test_a_record_past_its_time_to_live_is_gone(store: TaskStore) -> None:
    record = _record(ttl_ms=50)
    await store.put(record)
    for _ in range(200):
        if await store.get(record["id"]) is None:
            break
        await asyncio.sleep(0.02)
    assert await store.get(record["id"]) is None
    assert await store.change(record["id"], lambda r: {**r, "message": "late"}) is None
    old = _record(created=now_ms() - 10_000, ttl_ms=5_000)  # expired before it was stored
    await store.put(old)
    await asyncio.sleep(0.01)
    assert await store.get(old["id"]) is None


async def _finish(store: MemoryTaskStore, record: Record) -> None:
    await store.put(record)
    await store.change(record["id"], lambda r: {**r, "status": "completed", "result": {"content": []}})


async def test_the_memory_store_keeps_each_callers_latest_finished_tasks_and_never_anothers() -> None:
    memory = MemoryTaskStore()
    running, quiet = _record(owner="alice|app"), _record(owner="bob|app")
    await memory.put(running)
    await _finish(memory, quiet)
    alices = [_record(owner="alice|app") for _ in range(FINISHED_PER_OWNER + 5)]
    for record in alices:
        await _finish(memory, record)
    assert [await memory.get(r["id"]) for r in alices[:5]] == [None] * 5  # alice's own oldest went first
    assert all([await memory.get(r["id"]) is not None for r in alices[5:]])
    assert await memory.get(running["id"]) is not None  # a running task is never dropped
    assert (await memory.get(quiet["id"]) or {}).get("status") == "completed"  # bob's result stays


async def test_the_memory_store_refuses_new_tasks_past_its_byte_budget_until_old_ones_expire() -> None:
    memory = MemoryTaskStore(max_bytes=20_000)
    big = {"content": [{"type": "text", "text": "x" * 30_000}]}
    first = _record(owner="alice|app", ttl_ms=300)
    await memory.put(first)
    await memory.change(first["id"], lambda r: {**r, "status": "completed", "result": big})
    assert memory.bytes > 20_000
    assert await memory.reserve("next", "bob|app", _later(), 10, 100) == "overall"  # full: 503, nothing dropped
    assert (await memory.get(first["id"]) or {}).get("result") == big
    await asyncio.sleep(0.35)  # its TTL passes: expired records free their bytes
    assert await memory.reserve("next", "bob|app", _later(), 10, 100) == "ok"
    assert memory.bytes == 0 and await memory.get(first["id"]) is None
