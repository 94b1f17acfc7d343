"""The session tools (tests/support/session_tools/) and the client callbacks the session tests answer them with."""

from __future__ import annotations

from mcp.client.context import ClientRequestContext
from mcp_types import CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult, TextContent

from tests.support.values import SUPPORT

SESSION_TOOLS = SUPPORT / "session_tools"


async def sample(_: ClientRequestContext, params: CreateMessageRequestParams) -> CreateMessageResult:
    asked = params.messages[0].content
    text = asked.text if isinstance(asked, TextContent) else "?"
    return CreateMessageResult(role="assistant", content=TextContent(type="text", text=f"echo {text}"), model="m")


async def elicit(_: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    return ElicitResult(action="accept", content={"colour": "teal"})
