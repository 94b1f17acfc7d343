"""The shipped notes tools: a write then a search by the same user; another user sees nothing."""

from app.toolkit.testing import ClientFactory


async def test_created_note_is_found_by_its_author_only(as_user: ClientFactory) -> None:
    async with as_user(scopes=["notes.read", "notes.write"], oid="aaaaaaaa-1111-4111-8111-000000000001") as client:
        await client.call_tool("create_note", {"title": "Oslo trip", "body": "Book the ferry"})
        found = await client.call_tool("search_notes", {"query": "ferry"})
    assert found.structured_content is not None
    assert [n["title"] for n in found.structured_content["result"]] == ["Oslo trip"]

    async with as_user(scopes=["notes.read"], oid="aaaaaaaa-1111-4111-8111-000000000002") as client:
        other = await client.call_tool("search_notes", {"query": "ferry"})
    assert other.structured_content == {"result": []}


async def test_bad_arguments_are_a_tool_error_not_a_crash(as_user: ClientFactory) -> None:
    async with as_user(scopes=["notes.read"]) as client:
        result = await client.call_tool("search_notes", {"query": ""})
    assert result.is_error
