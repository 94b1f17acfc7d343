"""The shipped whoami tool, tested the way a tool author tests theirs: with the `as_user` / `as_app` fixtures."""

from app.toolkit.testing import TEST_USER_OID, ClientFactory


async def test_whoami_as_user(as_user: ClientFactory) -> None:
    async with as_user(scopes=["mcp.read"]) as client:
        result = await client.call_tool("whoami", {})
    assert result.structured_content is not None
    assert result.structured_content["oid"] == TEST_USER_OID and result.structured_content["kind"] == "user"


async def test_whoami_as_app(as_app: ClientFactory) -> None:
    async with as_app(roles=["mcp.read.all"]) as client:
        result = await client.call_tool("whoami", {})
    assert result.structured_content is not None and result.structured_content["kind"] == "app"
