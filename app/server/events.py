"""Resumable session streams: the SDK's `EventStore`, scoped per session, in memory or in Redis.

The SDK hands the store a stream id (the JSON-RPC request id, or its GET stream's fixed key) and nothing else, so
two sessions' stream "1" would share a log. `SessionScope` (app/server/sessions.py) gives every session an
unguessable scope, bound to its principal, which the store keys everything by. Event ids are
`{scope}.{seq}.{stream hash}`: a `Last-Event-ID` from another session (or another caller) names a scope the request
is not in, and replays nothing.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage, jsonrpc_message_adapter

from app.server.sessions import SessionState, current_scope

log = logging.getLogger("app.mcp")
STORE_RETRY_SECONDS = 5.0


@dataclass
class _Log:
    entries: deque[tuple[int, str | None]]
    stream_id: StreamId
    expires: float = field(default=0.0)


def _is_seq(text: str) -> bool:
    """A sequence number as this store writes them: ASCII digits, bounded (int() refuses very long digit strings)."""
    return 0 < len(text) <= 18 and text.isascii() and text.isdigit()


class ScopedEventStore(EventStore):
    """What both backends share: ids, scoping, (de)serialisation. Subclasses keep and read per-stream logs."""

    def __init__(self, stream_events: int, ttl_seconds: int) -> None:
        self.stream_events, self.ttl = stream_events, ttl_seconds
        self._down_until = 0.0  # after a failure, skip the store a while: a hanging Redis must not stall sessions

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        current = current_scope() or SessionState(None)  # outside any request: stored, never replayable
        stream = hashlib.sha256(stream_id.encode()).hexdigest()[:16]
        data = None if message is None else jsonrpc_message_adapter.dump_json(message, by_alias=True).decode()
        seq = 0
        if time.monotonic() >= self._down_until:
            try:
                seq = await self._append(current.key, stream, stream_id, data)
            except Exception as exc:  # a store outage costs resumability, never the session
                log.warning("event not stored (the stream cannot be resumed past it): %s", type(exc).__name__)
                self._down_until = time.monotonic() + STORE_RETRY_SECONDS
        return f"{current.key}.{seq}.{stream}"

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        current = current_scope()
        parts = last_event_id.split(".")
        if current is None or len(parts) != 3 or parts[0] != current.key or not _is_seq(parts[1]):
            return None  # another session's (or a made-up) id: nothing to replay here
        try:
            found = await self._read(current.key, parts[2])
        except Exception as exc:
            log.warning("events not replayed: %s", type(exc).__name__)
            return None
        if found is None:
            return None
        stream_id, entries = found
        after = int(parts[1])
        for seq, data in entries:
            if seq > after and data is not None:
                message = jsonrpc_message_adapter.validate_json(data)
                await send_callback(EventMessage(message, f"{current.key}.{seq}.{parts[2]}"))
        return stream_id

    async def _append(self, scope: str, stream: str, stream_id: StreamId, data: str | None) -> int:
        raise NotImplementedError

    async def _read(self, scope: str, stream: str) -> tuple[StreamId, list[tuple[int, str | None]]] | None:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class MemoryEventStore(ScopedEventStore):
    """One process's events: per-stream and total caps, and a TTL after a stream's last event."""

    def __init__(self, stream_events: int, ttl_seconds: int, max_events: int) -> None:
        super().__init__(stream_events, ttl_seconds)
        self.max_events = max_events
        self._logs: OrderedDict[tuple[str, str], _Log] = OrderedDict()  # least recently written first
        self._seq: dict[str, int] = {}
        self._streams: dict[str, int] = {}  # logs per scope: a scope's counter goes with its last log
        self._total = 0

    async def _append(self, scope: str, stream: str, stream_id: StreamId, data: str | None) -> int:
        now = time.monotonic()
        seq = self._seq[scope] = self._seq.get(scope, 0) + 1
        key = (scope, stream)
        entry = self._logs.pop(key, None)
        if entry is None:
            entry = _Log(deque(maxlen=self.stream_events), stream_id)
            self._streams[scope] = self._streams.get(scope, 0) + 1
        self._total -= len(entry.entries)
        entry.entries.append((seq, data))
        entry.expires = now + self.ttl
        self._logs[key] = entry
        self._total += len(entry.entries)
        self._evict(now)
        return seq

    def _evict(self, now: float) -> None:
        while self._logs:
            key, oldest = next(iter(self._logs.items()))
            if oldest.expires > now and self._total <= self.max_events:
                return
            del self._logs[key]
            self._total -= len(oldest.entries)
            self._streams[key[0]] -= 1
            if not self._streams[key[0]]:
                del self._streams[key[0]], self._seq[key[0]]

    async def _read(self, scope: str, stream: str) -> tuple[StreamId, list[tuple[int, str | None]]] | None:
        entry = self._logs.get((scope, stream))
        if entry is None or entry.expires <= time.monotonic():
            return None
        return entry.stream_id, list(entry.entries)


class RedisEventStore(ScopedEventStore):
    """Events in Redis (they hold tool results: the Redis must be trusted, ACL'd and TLS'd like the data itself)."""

    def __init__(self, uri: str, stream_events: int, ttl_seconds: int, namespace: str) -> None:
        super().__init__(stream_events, ttl_seconds)
        from redis.asyncio import Redis

        self.redis: Any = Redis.from_url(uri, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.prefix = f"{namespace}:mcp-events"
        self._owner = True

    def under(self, namespace: str) -> RedisEventStore:
        """The same Redis connection pool, keyed under another server's name (one app, several MCP servers)."""
        other = copy.copy(self)
        other.prefix, other._owner = f"{namespace}:mcp-events", False
        return other

    async def _append(self, scope: str, stream: str, stream_id: StreamId, data: str | None) -> int:
        seq = int(await self.redis.incr(f"{self.prefix}:{scope}:seq"))
        key = f"{self.prefix}:{scope}:{stream}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, _pack(seq, data))
            pipe.ltrim(key, -self.stream_events, -1)
            pipe.set(f"{key}:id", stream_id, ex=self.ttl)
            pipe.expire(key, self.ttl)
            pipe.expire(f"{self.prefix}:{scope}:seq", self.ttl)
            await pipe.execute()
        return seq

    async def _read(self, scope: str, stream: str) -> tuple[StreamId, list[tuple[int, str | None]]] | None:
        key = f"{self.prefix}:{scope}:{stream}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(f"{key}:id")
            pipe.lrange(key, 0, -1)
            stream_id, raw = await pipe.execute()
        if stream_id is None:
            return None
        return stream_id.decode(), [_unpack(item) for item in raw]

    async def aclose(self) -> None:
        if self._owner:  # a store made by `under` shares its pool with the one that made it
            await self.redis.aclose()


def _pack(seq: int, data: str | None) -> str:
    return f"{seq}:" if data is None else f"{seq}:{data}"


def _unpack(raw: bytes) -> tuple[int, str | None]:
    seq, _, data = raw.decode().partition(":")
    return int(seq), data or None
