"""The event stores behind resumable streams, as units: scoping per session, caps, TTL; memory and a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest
from mcp.server.streamable_http import EventMessage
from mcp_types import JSONRPCNotification

from app.server import sessions
from app.server.events import MemoryEventStore, RedisEventStore, ScopedEventStore
from tests.support.redis import RedisServer


def _note(n: int) -> JSONRPCNotification:
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"progress": n})


@contextmanager
def _in_session(scope: sessions.SessionState) -> Iterator[None]:
    token = sessions._current.set(scope)  # what SessionScope does for every request of a session
    try:
        yield
    finally:
        sessions._current.reset(token)


async def _replay(store: ScopedEventStore, last: str) -> tuple[str | None, list[int]]:
    seen: list[int] = []

    async def collect(message: EventMessage) -> None:
        seen.append(message.message.params["progress"])  # type: ignore[union-attr,index]

    return await store.replay_events_after(last, collect), seen


@pytest.fixture(scope="module")
def redis_uri() -> Iterator[str]:
    server = RedisServer().start()
    yield server.uri
    server.close()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ScopedEventStore]:
    if request.param == "memory":
        yield MemoryEventStore(stream_events=3, ttl_seconds=60, max_events=100)
        return
    redis_store = RedisEventStore(request.getfixturevalue("redis_uri"), 3, 60, "test")
    yield redis_store
    await redis_store.aclose()


async def test_a_stream_replays_what_came_after_the_id_within_its_cap(store: ScopedEventStore) -> None:
    alice = sessions.SessionState("alice")
    with _in_session(alice):
        priming = await store.store_event("7", None)
        ids = [await store.store_event("7", _note(n)) for n in range(1, 5)]
        assert await _replay(store, ids[1]) == ("7", [3, 4])
        # Three events per stream: the priming row and the first note are gone, so all that is left comes back.
        assert await _replay(store, priming) == ("7", [2, 3, 4])


async def test_sessions_with_the_same_stream_id_never_mix(store: ScopedEventStore) -> None:
    alice, bob = sessions.SessionState("alice"), sessions.SessionState("bob")
    with _in_session(alice):
        first = await store.store_event("1", None)
        await store.store_event("1", _note(1))
    with _in_session(bob):
        bobs = await store.store_event("1", None)
        await store.store_event("1", _note(2))
        assert await _replay(store, bobs) == ("1", [2])
        assert await _replay(store, first) == (None, [])  # Alice's id on Bob's session: nothing
    with _in_session(alice):
        assert await _replay(store, first) == ("1", [1])
        assert await _replay(store, "made.up.id") == (None, [])
        assert await _replay(store, "no-dots") == (None, [])


async def test_event_ids_are_unguessable_and_name_their_session(store: ScopedEventStore) -> None:
    one, two = sessions.SessionState("alice"), sessions.SessionState("alice")
    with _in_session(one):
        a = await store.store_event("1", None)
    with _in_session(two):
        b = await store.store_event("1", None)
    assert a.split(".")[0] == one.key and b.split(".")[0] == two.key and one.key != two.key
    assert len(one.key) >= 22  # 128 random bits


async def test_memory_keeps_at_most_the_total_cap_dropping_the_least_recent_sessions() -> None:
    store = MemoryEventStore(stream_events=10, ttl_seconds=60, max_events=4)
    old, new = sessions.SessionState("a"), sessions.SessionState("b")
    with _in_session(old):
        first = await store.store_event("1", _note(1))
        await store.store_event("1", _note(2))
    with _in_session(new):
        for n in range(3, 6):
            await store.store_event("1", _note(n))
    with _in_session(old):
        assert await _replay(store, first) == (None, [])  # evicted: 5 events were over the cap of 4
    assert store._total <= 4


async def test_memory_forgets_a_stream_after_its_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("app.server.events.time.monotonic", lambda: now[0])  # the clock, not our code, is what is faked
    store = MemoryEventStore(stream_events=10, ttl_seconds=5, max_events=100)
    scope = sessions.SessionState("a")
    with _in_session(scope):
        first = await store.store_event("1", None)
        await store.store_event("1", _note(1))
        now[0] += 4
        assert await _replay(store, first) == ("1", [1])
        now[0] += 2
        assert await _replay(store, first) == (None, [])


async def test_a_store_outage_costs_resumability_not_the_session() -> None:
    store = RedisEventStore("redis://127.0.0.1:1/0", 3, 60, "test")  # nothing listens on port 1
    with _in_session(sessions.SessionState("a")):
        event_id = await store.store_event("1", _note(1))
        assert event_id.split(".")[1] == "0"  # not stored: an id that resumes nothing
        assert await _replay(store, event_id) == (None, [])
        assert store._down_until > 0  # and the next events skip the store for a while instead of waiting on it
        assert (await store.store_event("1", _note(2))).split(".")[1] == "0"
    await store.aclose()


def test_which_store_the_settings_choose() -> None:
    from pydantic import ValidationError

    from app.compose.parts import event_store_from
    from app.settings import Settings

    def settings(**values: object) -> Settings:
        return Settings(_env_file=None, app_env="development", **values)

    assert isinstance(event_store_from(settings()), MemoryEventStore)
    redis = {"storage_uri": "redis://127.0.0.1:6379/0"}
    assert isinstance(event_store_from(settings(rate_limit=redis)), RedisEventStore)
    assert isinstance(event_store_from(settings(rate_limit=redis, mcp={"event_store": "memory"})), MemoryEventStore)
    assert event_store_from(settings(mcp={"event_store": "off"})) is None
    assert event_store_from(settings(mcp={"stateless": True})) is None  # the SDK resumes only session streams
    with pytest.raises(ValidationError, match="MCP__EVENT_STORE=redis needs RATE_LIMIT__STORAGE_URI"):
        settings(mcp={"event_store": "redis"})
