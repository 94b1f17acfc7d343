"""Pending connect requests (app/connect/links.py): one link per user and need while it is pending, none shared
between users or needs, records unreadable without the link, listeners bounded and told once."""

from __future__ import annotations

from typing import Any

import pytest

from app.auth.consent import ConsentNeed
from app.authserver.store import MemoryStore, StateStoreError
from app.connect.links import LINK_ID, Links

NEED = ConsentNeed("tenant-1", "user-1", ("https://graph.microsoft.com/User.Read",), "consent_required", client="app-1")


def _links(max_bytes: int = 1024 * 1024) -> tuple[Links, MemoryStore]:
    store = MemoryStore(max_bytes)
    return Links("https://mcp.contoso.example/", store, 600), store


async def test_one_link_per_user_and_need_while_it_is_pending() -> None:
    links, _ = _links()
    first = await links.link("", NEED, None)
    assert LINK_ID.fullmatch(first.id) and first.url == f"https://mcp.contoso.example/connect/{first.id}"
    assert (await links.link("", NEED, None)).id == first.id
    other_user = await links.link("", ConsentNeed("tenant-1", "user-2", NEED.scopes, NEED.reason), first.id)
    other_claims = await links.link("", ConsentNeed("tenant-1", "user-1", NEED.scopes, NEED.reason, "{}"), None)
    other_server = await links.link("hr", NEED, None)
    other_client = await links.link(
        "", ConsentNeed("tenant-1", "user-1", NEED.scopes, NEED.reason, client="app-2"), None
    )
    found = {first.id, other_user.id, other_claims.id, other_server.id, other_client.id}
    assert len(found) == 5  # `reuse` of another user's link: refused
    record = await links.get(first.id)
    assert record is not None and (record["user"], record["client"]) == ("user-1", "app-1")
    assert record["scopes"] == list(NEED.scopes)


async def test_records_are_sealed_and_named_by_a_hash_of_the_link() -> None:
    links, store = _links()
    link = await links.link("", NEED, None)
    stored = b" ".join(name.encode() + value for name, (value, _) in store._records.items())
    for private in (link.id.encode(), b"user-1", b"tenant-1", b"graph.microsoft.com"):
        assert private not in stored


async def test_completing_uses_the_link_up_and_tells_each_listener_once() -> None:
    links, _ = _links()
    link = await links.link("", NEED, None)
    told: list[str] = []

    async def notify() -> None:
        told.append("done")

    async def broken() -> None:
        raise ConnectionError("the session is gone")

    links.on_complete(link.id, broken)
    links.on_complete(link.id, notify)
    record = await links.get(link.id)
    assert record is not None
    await links.complete(link.id, record)
    await links.complete(link.id, record)
    assert told == ["done"] and await links.get(link.id) is None
    assert (await links.link("", NEED, None)).id != link.id  # a new call gets a fresh link


async def test_listeners_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.connect.links.MAX_WAITING", 3)
    links, _ = _links()

    async def notify() -> None: ...

    for n in range(10):
        links.on_complete(f"link-{n}", notify)
    assert list(links._waiting) == ["link-7", "link-8", "link-9"]


async def test_a_full_store_refuses_new_links() -> None:
    links, _ = _links(max_bytes=4096)

    async def many_users() -> None:
        for n in range(100):
            await links.link("", ConsentNeed("tenant-1", f"user-{n}", NEED.scopes, NEED.reason), None)

    with pytest.raises(StateStoreError):
        await many_users()


@pytest.mark.parametrize("link_id", ["", "short", "x" * 33, "a" * 31 + "/", "../" * 11])
async def test_malformed_ids_find_nothing(link_id: str) -> None:
    links, _ = _links()
    record: Any = await links.get(link_id)
    assert record is None
