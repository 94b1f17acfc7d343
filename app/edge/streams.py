"""Long-lived streams: per-principal and per-process caps, and a maximum lifetime.

Two kinds of request hold a response open for as long as the client likes: a 2026-07-28 `subscriptions/listen`
(a POST whose response is the subscription's SSE stream) and, in stateful mode, `GET /mcp` (the session's
standalone SSE stream for server push). Each one holds a connection, about 80 KB of buffers and tasks, and a listen
stream holds one of the SDK's subscription slots (1024 per process; past them the SDK answers "Subscription limit
reached" to everyone). `CapStreams` admits a stream only under SECURITY__MAX_STREAMS_PER_PRINCIPAL (429) and
SECURITY__MAX_STREAMS (503), and ends it after SECURITY__MAX_STREAM_SECONDS.

Ending a stream: at the deadline `receive` reports `http.disconnect`, which is how the SDK learns a client went away
(its listen handler and its GET stream writer both watch for it, then release their slot and return); nothing the
SDK sends afterwards is forwarded. Then this layer closes the response itself: a listen stream gets the spec's
graceful close (the listen result, stamped with the subscription id, as the last frame, so clients see a deliberate
end rather than a drop), and every stream gets the final empty body chunk, a clean end of stream. The SDK's client
reopens a GET stream that ended cleanly; a listen client re-listens.

In stateless mode nothing can ever be pushed on a `GET /mcp` stream (there is no session to push for), so a GET is
answered 405 with `Allow: POST` instead of being held open forever.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.operation import INVALID_REQUEST, operation_from_scope
from app.auth.principal import principal_from_scope
from app.core.asgi import jsonrpc_error, send_json
from app.edge.bounds import BUSY, Slots
from app.observability.telemetry import record_rate_limit

log = logging.getLogger("app.streams")

LISTEN = "subscriptions/listen"
UNWIND_SECONDS = 2.0  # past the lifetime, the SDK has this long to notice the disconnect before it is cancelled
CLOSE_SECONDS = 5.0  # the closing frames get this long to reach a client that has stopped reading
_DISCONNECT: Message = {"type": "http.disconnect"}
_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}


class CapStreams:
    """Listen streams and stateful GET streams: admitted under the caps (429 / 503, never queued), ended at their
    lifetime. One budget covers both kinds (a client uses one protocol era or the other).

    """

    def __init__(self, app: ASGIApp, per_principal: int, overall: int, lifetime: float, stateless: bool) -> None:
        self.app = app
        self.slots = Slots(per_principal, overall)
        self.lifetime = lifetime
        self.stateless = stateless

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        listen_id: Any = None
        if method == "GET":
            if self.stateless:
                error = jsonrpc_error(INVALID_REQUEST, "Method Not Allowed: this server is stateless; send POST")
                await send_json(send, 405, error, [("Allow", "POST")])
                return
            if not _accepts_sse(scope):  # the SDK answers 406; nothing is held open
                await self.app(scope, receive, send)
                return
        elif method == "POST":
            operation = operation_from_scope(scope)
            if operation is None or operation.method != LISTEN or operation.refusal is not None:
                await self.app(scope, receive, send)
                return
            listen_id = operation.request_id
        else:
            await self.app(scope, receive, send)
            return
        principal = principal_from_scope(scope)
        if principal is None:
            await self.app(scope, receive, send)
            return
        key = principal.key
        if (refused := self.slots.take(key)) is not None:
            status, who = refused
            record_rate_limit("rejected", "streams")
            error = jsonrpc_error(BUSY, f"too many open streams for {who}; retry shortly", listen_id)
            await send_json(send, status, error, [("Retry-After", "1")])
            return
        try:
            await self._serve(scope, receive, send, method == "POST", listen_id)
        finally:
            self.slots.release(key)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, listen: bool, listen_id: Any) -> None:
        deadline = anyio.current_time() + self.lifetime
        started = finished = sse = False

        async def receive_until_deadline() -> Message:
            if anyio.current_time() >= deadline:
                return _DISCONNECT
            with anyio.CancelScope(deadline=deadline):
                return await receive()  # uvicorn's receive is cancel-safe: nothing is consumed until it returns
            return _DISCONNECT  # the lifetime ended while waiting: the client "went away"

        async def forward(message: Message) -> None:
            nonlocal started, finished, sse
            if started and anyio.current_time() >= deadline:
                return  # past the lifetime the end of this stream is ours to send
            if message["type"] == "http.response.start":
                started = True
                sse = any(
                    name == b"content-type" and value.startswith(b"text/event-stream")
                    for name, value in message.get("headers", ())
                )
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        with anyio.CancelScope(deadline=deadline + UNWIND_SECONDS) as backstop:
            await self.app(scope, receive_until_deadline, forward)
        if backstop.cancelled_caught:
            log.warning("a stream's handler did not return after its lifetime ended; it was cancelled")
        if not started or finished or anyio.current_time() < deadline:
            return
        with anyio.move_on_after(CLOSE_SECONDS):
            if listen and sse:
                await send({"type": "http.response.body", "body": _listen_result(listen_id), "more_body": True})
            await send(_END)


def _accepts_sse(scope: Scope) -> bool:
    return any(name == b"accept" and b"text/event-stream" in value for name, value in scope["headers"])


def _listen_result(request_id: Any) -> bytes:
    """The listen request's result as the final SSE frame: the spec's graceful close, as the SDK's own sends it."""
    message = {"jsonrpc": "2.0", "id": request_id, "result": {"_meta": {SUBSCRIPTION_ID_META_KEY: request_id}}}
    return b"event: message\r\ndata: " + json.dumps(message, separators=(",", ":")).encode() + b"\r\n\r\n"
