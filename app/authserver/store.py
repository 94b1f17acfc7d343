"""Facade state: registrations, transactions, codes, consents, sessions and refresh records, with a time to live.

In memory (one replica) or in Redis (shared by replicas). Every record is keyed by a hash of the secret that names it
(a code, a state, a refresh token) and sealed with AES-GCM under a key derived from that secret, so the store (a Redis
dump, a replica's memory) holds no usable code or token: only the holder of the secret can find and open its record.
`take` is atomic (Redis GETDEL): a code is consumed once, across replicas too.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "mcp-authserver:"
RECORD_OVERHEAD = 200  # bytes a memory record costs beyond its name and value (the dict slot, the tuple, the float)
SWEEP_SECONDS = 1.0  # at the bound, expired records are swept at most this often


class StateStoreError(RuntimeError):
    """The state store cannot hold more, or cannot be reached."""


class StateStore(Protocol):
    """Raw records by name, each with a time to live."""

    async def put(self, name: str, value: bytes, ttl: int, share: float = 1.0) -> None:
        """Store `value`; `share` < 1 lets this record fill only that part of a bounded store (StateStoreError)."""
        ...

    async def get(self, name: str) -> bytes | None: ...

    async def take(self, name: str) -> bytes | None:
        """The record, removed in the same step: a second `take` of the name finds nothing."""
        ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """One process's records (a single replica), bounded in bytes (AUTH_SERVER__MEMORY_MAX_BYTES); expired records
    are swept when the bound is reached."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.used = max_bytes, 0
        self._records: dict[str, tuple[bytes, float]] = {}
        self._swept = 0.0

    async def put(self, name: str, value: bytes, ttl: int, share: float = 1.0) -> None:
        now, cost = time.monotonic(), _cost(name, value)
        old = self._records.get(name)
        room = self.max_bytes * share - (self.used - (_cost(name, old[0]) if old else 0))
        if cost > room and now - self._swept >= SWEEP_SECONDS:
            self._swept = now
            for key in [k for k, (_, expires) in self._records.items() if expires <= now]:
                self._drop(key)
            old = self._records.get(name)
            room = self.max_bytes * share - (self.used - (_cost(name, old[0]) if old else 0))
        if cost > room:
            raise StateStoreError("the authorization server's state is full; retry later")
        self._drop(name)
        self._records[name] = (value, now + ttl)
        self.used += cost

    async def get(self, name: str) -> bytes | None:
        found = self._records.get(name)
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    async def take(self, name: str) -> bytes | None:
        found = self._drop(name)  # one step on the event loop: atomic for this process
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    def _drop(self, name: str) -> tuple[bytes, float] | None:
        found = self._records.pop(name, None)
        if found is not None:
            self.used -= _cost(name, found[0])
        return found

    async def aclose(self) -> None:
        self._records.clear()
        self.used = 0


def _cost(name: str, value: bytes) -> int:
    return len(name) + len(value) + RECORD_OVERHEAD


class RedisStore:
    """Records in Redis: SET with EX, GET, GETDEL (atomic take; Redis 6.2 or later)."""

    def __init__(self, uri: str) -> None:
        from redis.asyncio import from_url  # imported only when configured

        self._redis = from_url(uri, socket_timeout=5, socket_connect_timeout=5)

    async def put(self, name: str, value: bytes, ttl: int, share: float = 1.0) -> None:
        await self._call("set", name, value, ex=max(1, ttl))  # bounded by the server's own maxmemory

    async def get(self, name: str) -> bytes | None:
        return _bytes(await self._call("get", name))

    async def take(self, name: str) -> bytes | None:
        return _bytes(await self._call("getdel", name))

    async def _call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await getattr(self._redis, command)(*args, **kwargs)
        except RedisError as exc:  # unreachable, refused: a clear 503, never a traceback (nor the URI)
            raise StateStoreError(f"the authorization server's state store failed ({type(exc).__name__})") from None

    async def aclose(self) -> None:
        await self._redis.aclose()


def _bytes(value: object) -> bytes | None:
    return value.encode() if isinstance(value, str) else bytes(value) if isinstance(value, bytes) else None


def open_store(uri: str | None, max_memory_bytes: int) -> StateStore:
    if uri is None or uri.startswith("memory://"):
        return MemoryStore(max_memory_bytes)
    return RedisStore(uri)


class Sealed:
    """JSON records named by a secret: stored under its hash, encrypted under a key derived from it."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def put(self, kind: str, secret: str, record: dict[str, Any], ttl: int, share: float = 1.0) -> None:
        nonce = os.urandom(12)
        sealed = nonce + AESGCM(_key(secret)).encrypt(nonce, json.dumps(record).encode(), kind.encode())
        await self.store.put(_name(kind, secret), sealed, ttl, share)

    async def get(self, kind: str, secret: str) -> dict[str, Any] | None:
        return _open(kind, secret, await self.store.get(_name(kind, secret)))

    async def take(self, kind: str, secret: str) -> dict[str, Any] | None:
        return _open(kind, secret, await self.store.take(_name(kind, secret)))


def _name(kind: str, secret: str) -> str:
    return PREFIX + kind + ":" + hashlib.sha256(f"name:{secret}".encode()).hexdigest()


def _key(secret: str) -> bytes:
    return hashlib.sha256(f"seal:{secret}".encode()).digest()


def _open(kind: str, secret: str, sealed: bytes | None) -> dict[str, Any] | None:
    if sealed is None or len(sealed) < 29:
        return None
    try:
        record = json.loads(AESGCM(_key(secret)).decrypt(sealed[:12], sealed[12:], kind.encode()))
    except (InvalidTag, ValueError):
        return None
    return record if isinstance(record, dict) else None
