"""Small pure-ASGI response helpers shared by the request-path layers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("app.http")

JsonHeaders = Iterable[tuple[str, str]]


async def send_json(send: Send, status: int, body: Any, headers: JsonHeaders = ()) -> None:
    """Send a complete JSON response; errors on the request path all go out through here."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
        *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


def jsonrpc_error(code: int, message: str, request_id: Any = None, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def header(scope_headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """All values of one (lower-case) header name."""
    return [value for key, value in scope_headers if key == name]


class EnsureResponse:
    """Answer 400 when the wrapped app returns without responding, rather than letting uvicorn send a bare 500.

    The SDK does this for a GET with `Last-Event-ID` when no event store is configured (we configure none).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, receive, tracking_send)
        if not started:
            log.warning("request left unanswered by the MCP transport", extra={"method": scope.get("method")})
            await send_json(send, 400, jsonrpc_error(-32600, "request not supported by this server"))
