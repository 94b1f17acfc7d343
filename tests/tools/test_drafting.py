"""The shipped drafting tool: it asks the user for a style, then the client's model for the text."""

from typing import Any

from mcp_types import CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult, TextContent

from app.toolkit.testing import TestServer


async def _choose_formal(context: Any, params: ElicitRequestParams) -> ElicitResult:
    return ElicitResult(action="accept", content={"tone": "formal", "bullets": False})


async def _echo_model(context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
    asked = params.messages[0].content
    text = asked.text if isinstance(asked, TextContent) else ""
    return CreateMessageResult(role="assistant", model="test", content=TextContent(type="text", text=f"<{text}>"))


async def test_the_draft_is_written_in_the_chosen_style(mcp_server: TestServer) -> None:
    token = mcp_server.issuer.user_token(["notes.read"])
    callbacks: dict[str, Any] = {"elicitation_callback": _choose_formal, "sampling_callback": _echo_model}
    async with mcp_server.client(token, mode="2026-07-28", **callbacks) as client:
        result = await client.call_tool("draft_note", {"topic": "Oslo"})
    assert result.structured_content == {"result": "<Write a formal note about 'Oslo', as one paragraph.>"}
