"""The URL-mode elicitation of the connect page, for `AskClient` (app/server/ask.py): what a tool call answers when
on-behalf-of needs the user (`ConsentRequired`).

- 2026-07-28: an input-required round asking `elicitation/create` (mode `url`); the pending link rides the sealed
  `requestState`, so the retry reuses it, and a declined link ends the call with a tool error.
- 2025-11-25 (handshake era): the `-32042` URL elicitation required error, with one elicitation; a session hears
  `notifications/elicitation/complete` once the user is done (best effort, same process).
- A client that declared no URL mode (2025-06-18, or no session to remember capabilities): a tool error, without the
  link, since the spec forbids sending a mode the client did not declare.
- In a task: a JSON-RPC error saying so (a task cannot show the link and wait for the user's sign-in).
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Protocol

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError, UrlElicitationRequiredError
from mcp_types import INVALID_REQUEST, CallToolResult, ElicitRequest, ElicitRequestURLParams, InputRequiredResult
from mcp_types import TextContent as Text
from mcp_types.version import is_version_at_least

from app.auth.downstream import ConsentRequired
from app.core.sdk_private import request_connection
from app.tasks.run import current_run

log = logging.getLogger("app.connect")
CONNECT = "connect"  # the input request key of the connect link (beside `ask`'s `ask-N`)
_URL_MODE_FROM = "2025-11-25"  # first revision with URL-mode elicitation


class ConnectRound(Protocol):
    """What a 2026-07-28 round knows of the connect link (ask.py's `_Round`)."""

    connect: str | None

    def declined_connect(self) -> bool: ...

    def connect_state(self, link_id: str) -> str: ...


async def ask_to_connect(
    ctx: ServerRequestContext[Any, Any], consent: ConsentRequired, round_: ConnectRound | None
) -> Any:
    """The tool call's answer (the wire form) when the user must open the connect page; raises the `-32042` error
    in the handshake era."""
    if current_run() is not None:
        raise MCPError(code=INVALID_REQUEST, message=_IN_TASK)
    capabilities = ctx.session.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if (
        elicitation is None
        or elicitation.url is None
        or not is_version_at_least(ctx.protocol_version or "2025-03-26", _URL_MODE_FROM)
    ):
        return _tool_error(ctx, _NO_URL_MODE)  # never the link: it would reach someone the client could not ask
    if round_ is not None and round_.declined_connect():
        return _tool_error(ctx, "the user declined to open the connect link, so the call cannot go on")
    try:
        link = await consent.recovery.link(consent.need, reuse=round_.connect if round_ is not None else None)
    except Exception as exc:  # its store is full or unreachable: the call fails clearly, the client may retry
        log.warning("connect link not created", extra={"error": type(exc).__name__})
        return _tool_error(ctx, "the user must first allow this server to call a downstream API for them, and the "
                           "link for it cannot be made right now: try again in a moment")  # fmt: skip
    if round_ is not None:
        ask = ElicitRequest(params=ElicitRequestURLParams(message=link.message, url=link.url))
        result = InputRequiredResult(input_requests={CONNECT: ask}, request_state=round_.connect_state(link.id))
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)
    if ctx.session.can_send_request:  # a session: it is told when the user is done
        connection, complete = weakref.ref(request_connection(ctx)), {"elicitationId": link.elicitation_id}

        async def notify() -> None:
            if (alive := connection()) is not None:
                await alive.notify("notifications/elicitation/complete", complete)

        consent.recovery.on_complete(link.id, notify)
    params = ElicitRequestURLParams(message=link.message, url=link.url, elicitation_id=link.elicitation_id)
    raise UrlElicitationRequiredError([params], message=link.message)


def _tool_error(ctx: ServerRequestContext[Any, Any], text: str) -> Any:
    name = ctx.params.get("name") if isinstance(ctx.params, dict) else None
    result = CallToolResult(content=[Text(type="text", text=f"Error executing tool {name}: {text}")], is_error=True)
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


_NO_URL_MODE = (
    "the user must first allow this server to call a downstream API for them, and this client cannot show them "
    "where: it did not declare URL-mode elicitation (MCP 2025-11-25 or later, over a session, or 2026-07-28). Use "
    "a client that does, or ask an administrator to grant consent for the organization"
)
_IN_TASK = (
    "the user must first allow this server to call a downstream API for them, which a task cannot ask: call the "
    "tool once without a task to be given the link"
)
