"""Request limits at the edge: body size and read time, and concurrent tool calls per principal and overall."""

from __future__ import annotations

import logging
import math

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.operation import INVALID_REQUEST, operation_from_scope
from app.auth.principal import principal_from_scope
from app.core.asgi import jsonrpc_error, send_json
from app.observability.telemetry import record_rate_limit

log = logging.getLogger("app.bounds")

BUSY = -32030  # implementation-defined JSON-RPC server error: too many tool calls in flight
DRAIN_SECONDS = 1.0  # an oversized body is read and discarded for at most this long, and at most
DRAIN_FACTOR = 4  # this many times the cap, before the 413 goes out and the connection closes


class _BodyTooLarge(Exception):
    """Raised out of `receive` once a streamed body passes the cap; LimitBody answers 413."""


class _BodyTooSlow(Exception):
    """Raised out of `receive` when the body has not arrived by its deadline; LimitBody answers 408."""


class LimitBody:
    """413 for a body over the cap: from Content-Length before anything else runs, or while a chunked body is read.

    Slow clients: a body must arrive in full within `timeout` seconds of the request's headers, or the request is
    answered 408 and its connection closed (uvicorn would wait for it for as long as the client keeps sending). A
    request answered before its body has arrived (a refusal that never reads it, such as 401) reads what is still
    coming for a moment; if the body still has not ended, the connection closes with the answer, so a client
    trickling a body cannot hold the connection open after it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: list[bytes] = []
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared.append(value)
            elif name == b"transfer-encoding":
                chunked = True
        if declared and (not declared[0].isdigit() or int(declared[0]) > self.max_bytes):
            await self._refuse(receive, send)
            return
        if not chunked and (not declared or not int(declared[0])):
            await self.app(scope, receive, send)  # no body: nothing to wait for
            return
        # With one Content-Length the HTTP server delivers exactly that many bytes (anything after is the next
        # request), so a declared size within the cap needs no counting while the body is read.
        counting = len(declared) != 1 or chunked
        deadline = anyio.current_time() + self.timeout
        received = 0
        complete = started = False

        async def bounded_receive() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            with anyio.CancelScope(deadline=deadline) as waiting:
                message = await receive()  # uvicorn's receive is cancel-safe: nothing is consumed until it returns
            if waiting.cancelled_caught:
                raise _BodyTooSlow
            if message["type"] != "http.request":
                complete = True  # a disconnect: nothing more is coming
            else:
                complete = not message.get("more_body", False)
                if counting:
                    received += len(message.get("body", b""))
                    if received > self.max_bytes:
                        raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started, complete
            if message["type"] == "http.response.start":
                started = True
                if not complete:
                    complete = await self._drain(receive, deadline)
                if not complete:
                    message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(receive, send)
        except _BodyTooSlow:
            if not started:
                log.info("request body not received in time", extra={"timeout_seconds": self.timeout})
                error = jsonrpc_error(INVALID_REQUEST, f"request body not received within {self.timeout:g} s")
                await send_json(send, 408, error, [("Connection", "close")])

    async def _drain(self, receive: Receive, deadline: float = math.inf) -> bool:
        """Read and discard (a bounded amount of) what the client is still sending; whether the body ended."""
        with anyio.move_on_after(min(DRAIN_SECONDS, max(0.0, deadline - anyio.current_time()))):
            drained = 0
            while drained <= DRAIN_FACTOR * self.max_bytes:
                message = await receive()
                drained += len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return True
        return False

    async def _refuse(self, receive: Receive, send: Send) -> None:
        # Read (a bounded amount of) what the client is still sending first: closing a socket with unread data
        # makes the kernel send a reset, and the client would lose the 413 for a connection error.
        await self._drain(receive)
        error = jsonrpc_error(INVALID_REQUEST, f"request body too large (limit {self.max_bytes} bytes)")
        await send_json(send, 413, error, [("Connection", "close")])


class Slots:
    """Slots held per principal and overall (CapConcurrency, CapStreams). Plain ints: the event loop is
    single-threaded and nothing awaits between the check and the take."""

    def __init__(self, per_principal: int, overall: int) -> None:
        self.per_principal = per_principal
        self.overall = overall
        self.total = 0
        self.by_principal: dict[str, int] = {}

    def take(self, key: str) -> tuple[int, str] | None:
        """Takes a slot for `key`, or says whose limit is reached: (503, the server), or (429, this caller)."""
        mine = self.by_principal.get(key, 0)
        if self.total >= self.overall:
            return 503, "the server"
        if mine >= self.per_principal:
            return 429, "this caller"
        self.total += 1
        self.by_principal[key] = mine + 1
        return None

    def release(self, key: str) -> None:
        self.total -= 1
        left = self.by_principal[key] - 1
        if left:
            self.by_principal[key] = left
        else:
            del self.by_principal[key]


class CapConcurrency:
    """In-flight `tools/call` requests, per principal (429) and overall (503): excess is refused at once, not queued.

    A slot is held exactly while the call runs: from admission until its response is complete (or the call ends
    without one). The SDK's transport can return well after the response went out (stateless teardown), and
    holding the slot until then refused callers whose calls were long finished. The slot is freed just before the
    response's last bytes are handed on, not after: once they are written, the client may send its next call
    before this task runs again, and that call must find the slot free.

    """

    def __init__(self, app: ASGIApp, per_principal: int, overall: int) -> None:
        self.app = app
        self.slots = Slots(per_principal, overall)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation = operation_from_scope(scope)
        principal = principal_from_scope(scope)
        if operation is None or operation.method != "tools/call" or principal is None:
            await self.app(scope, receive, send)
            return
        key = principal.key
        if (refused := self.slots.take(key)) is not None:
            status, who = refused
            record_rate_limit("rejected", "in-flight")
            error = jsonrpc_error(BUSY, f"too many tool calls in flight for {who}; retry shortly", operation.request_id)
            await send_json(send, status, error, [("Retry-After", "1")])
            return
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self.slots.release(key)

        async def release_then_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                release()
            await send(message)

        try:
            await self.app(scope, receive, release_then_send)
        finally:
            release()
