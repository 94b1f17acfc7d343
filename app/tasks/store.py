"""Where tasks live: in this process (`memory`, one replica) or in Redis (`redis`, shared by every replica).

Both keep a record per task (records.py) for its time to live, and two sets of active tasks (per owner, and all of
this server's), each entry scored by the lease its replica renews: an entry whose replica stopped renewing drops out
on its own, so a crashed replica never holds a caller's slots. A record still `working` past its lease reads as
`failed` (`get`), so no task stays `working` forever.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Any, Literal

from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

from app.tasks.records import TERMINAL, Record, expired, lost, mark_lost, now_ms

log = logging.getLogger("app.tasks")
Admission = Literal["ok", "principal", "overall"]
Change = Callable[[Record], Record | None]  # the new record, or None to leave it as it is
FINISHED_PER_OWNER = 100  # finished tasks the memory store keeps per caller (Redis keeps each for its TTL)


class StoreUnavailable(MCPError):
    """The task store could not be reached: a JSON-RPC error for the request, never a 500 or a stack trace."""

    def __init__(self) -> None:
        super().__init__(code=INTERNAL_ERROR, message="the task store is unavailable; try again shortly")


@contextlib.contextmanager
def reachable() -> Iterator[None]:
    """Turn a store outage (Redis down or slow) into `StoreUnavailable`, logged by its type only."""
    try:
        yield
    except MCPError:
        raise
    except Exception as exc:  # redis-py's errors, OSError, timeouts: all mean the same to the caller
        log.warning("task store unavailable", extra={"error": type(exc).__name__})
        raise StoreUnavailable from None


class TaskStore:
    """The operations the task parts use; `MemoryTaskStore` and `RedisTaskStore` implement them."""

    async def reserve(self, task_id: str, owner: str, until: int, per_owner: int, overall: int) -> Admission:
        """Take an active slot for `task_id` until `until` (epoch ms), unless `owner` or the server is at its cap."""
        raise NotImplementedError

    async def renew(self, task_id: str, owner: str, until: int) -> None:
        raise NotImplementedError

    async def release(self, task_id: str, owner: str) -> None:
        raise NotImplementedError

    async def put(self, record: Record) -> None:
        """Store a new record; when this returns, `get` finds it on every replica."""
        raise NotImplementedError

    async def change(self, task_id: str, mutate: Change) -> Record | None:
        """Apply `mutate` to the record atomically; the record after (None: there is none)."""
        raise NotImplementedError

    async def get(self, task_id: str) -> Record | None:
        """The record, None once unknown or expired; a task whose replica is gone is failed first."""
        record = await self._read(task_id)
        if record is not None and lost(record, now_ms()):
            record = await self.change(task_id, lambda r: mark_lost(r, now_ms()) if lost(r, now_ms()) else None)
        return record

    async def _read(self, task_id: str) -> Record | None:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class MemoryTaskStore(TaskStore):
    """One process's tasks, bounded in bytes: a creation that would pass `max_bytes` is refused (503), and each
    caller keeps at most FINISHED_PER_OWNER finished tasks (its own oldest go first), so no caller's results are
    ever forgotten because of someone else's load."""

    def __init__(self, max_bytes: int = 128 * 1024 * 1024) -> None:
        self.records: OrderedDict[str, Record] = OrderedDict()  # creation order: the oldest expire first
        self.active: dict[str, dict[str, int]] = {"": {}}  # owner ("" for all) -> task id -> lease
        self.sizes: dict[str, int] = {}  # task id -> bytes, as stored (its JSON)
        self.finished: dict[str, deque[str]] = {}  # owner -> its finished tasks, oldest first
        self.max_bytes, self.bytes = max_bytes, 0

    def _live(self, owner: str, now: int) -> dict[str, int]:
        slots = self.active.setdefault(owner, {})
        for task_id in [t for t, until in slots.items() if until <= now]:  # as Redis: ZREMRANGEBYSCORE -inf now
            del slots[task_id]
        return slots

    async def reserve(self, task_id: str, owner: str, until: int, per_owner: int, overall: int) -> Admission:
        now = now_ms()
        self._expire(now)
        mine, everyone = self._live(owner, now), self._live("", now)
        if len(mine) >= per_owner:
            return "principal"
        if len(everyone) >= overall or self.bytes >= self.max_bytes:
            return "overall"
        mine[task_id] = everyone[task_id] = until
        return "ok"

    async def renew(self, task_id: str, owner: str, until: int) -> None:
        for slots in (self.active.get(owner, {}), self.active[""]):
            if task_id in slots:
                slots[task_id] = until

    async def release(self, task_id: str, owner: str) -> None:
        self.active.get(owner, {}).pop(task_id, None)
        self.active[""].pop(task_id, None)
        if not self.active.get(owner, True):
            del self.active[owner]

    async def put(self, record: Record) -> None:
        self.records[record["id"]] = record
        self._sized(record)

    def _sized(self, record: Record) -> None:
        size = len(json.dumps(record, separators=(",", ":")))
        self.bytes += size - self.sizes.get(record["id"], 0)
        self.sizes[record["id"]] = size

    def _drop(self, task_id: str) -> None:
        record = self.records.pop(task_id, None)
        self.bytes -= self.sizes.pop(task_id, 0)
        mine = self.finished.get(record["owner"]) if record is not None else None
        if mine is not None:
            while mine and mine[0] not in self.records:  # forget what expired, so callers long gone cost nothing
                mine.popleft()
            if not mine:
                del self.finished[record["owner"]]  # type: ignore[index]

    def _expire(self, now: int) -> None:
        while self.records and expired(next(iter(self.records.values())), now):
            self._drop(next(iter(self.records)))

    async def _read(self, task_id: str) -> Record | None:
        record = self.records.get(task_id)
        if record is not None and expired(record, now_ms()):
            self._drop(task_id)
            return None
        return record

    async def change(self, task_id: str, mutate: Change) -> Record | None:
        record = await self._read(task_id)  # no await between read and write below: atomic on the event loop
        if record is None:
            return None
        changed = mutate(dict(record))
        if changed is None:
            return record
        self.records[task_id] = changed
        if changed["status"] in TERMINAL and record["status"] not in TERMINAL:
            self._sized(changed)  # the result arrived: count it (other changes are bounded and small)
            mine = self.finished.setdefault(changed["owner"], deque())
            mine.append(task_id)
            while len(mine) > FINISHED_PER_OWNER:
                self._drop(mine.popleft())
        return changed


_RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[5]) then return 2 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[2] + 86400000)
redis.call('PEXPIREAT', KEYS[2], ARGV[2] + 86400000)
return 0
"""


class RedisTaskStore(TaskStore):
    """Records as JSON strings that expire with the task; active sets as sorted sets scored by lease."""

    def __init__(self, uri: str, prefix: str, client: Any = None) -> None:
        if client is None:
            from redis.asyncio import Redis

            client = Redis.from_url(uri, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.redis: Any = client
        self.uri, self.prefix = uri, f"mcp:tasks:{prefix}"
        self._reserve = self.redis.register_script(_RESERVE)

    def under(self, prefix: str) -> RedisTaskStore:
        """The same Redis connection pool, for another server of the app (its keys under its own name)."""
        return RedisTaskStore(self.uri, prefix, self.redis)

    def _key(self, task_id: str) -> str:
        return f"{self.prefix}:t:{task_id}"

    def _owner(self, owner: str) -> str:
        return f"{self.prefix}:owner:{hashlib.sha256(owner.encode()).hexdigest()[:32]}"

    async def reserve(self, task_id: str, owner: str, until: int, per_owner: int, overall: int) -> Admission:
        keys = [f"{self.prefix}:active", self._owner(owner)]
        refused = int(await self._reserve(keys=keys, args=[now_ms(), until, task_id, per_owner, overall]))
        return "ok" if refused == 0 else "principal" if refused == 1 else "overall"

    async def renew(self, task_id: str, owner: str, until: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(f"{self.prefix}:active", {task_id: until}, xx=True)
            pipe.zadd(self._owner(owner), {task_id: until}, xx=True)
            await pipe.execute()

    async def release(self, task_id: str, owner: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(f"{self.prefix}:active", task_id)
            pipe.zrem(self._owner(owner), task_id)
            await pipe.execute()

    async def put(self, record: Record) -> None:
        remaining = record["created"] + record["ttl_ms"] - now_ms()
        await self.redis.set(self._key(record["id"]), json.dumps(record), px=max(remaining, 1))

    async def _read(self, task_id: str) -> Record | None:
        raw = await self.redis.get(self._key(task_id))
        return json.loads(raw) if raw is not None else None

    async def change(self, task_id: str, mutate: Change) -> Record | None:
        from redis.exceptions import WatchError

        key = self._key(task_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return None
                    record = json.loads(raw)
                    changed = mutate(dict(record))
                    if changed is None:
                        await pipe.unwatch()
                        return record  # type: ignore[no-any-return]
                    pipe.multi()
                    pipe.set(key, json.dumps(changed), keepttl=True)
                    await pipe.execute()
                    return changed
                except WatchError:
                    continue  # changed under us (a poll, an update, the run): read again

    async def aclose(self) -> None:
        await self.redis.aclose()
