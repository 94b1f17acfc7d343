"""Resource limits: request body size, concurrent tool calls, tool run time and tool result size."""

from __future__ import annotations

import asyncio
import json
import logging
from functools import partial
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from pydantic_core import to_json
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.principal import principal_from_scope
from app.authz import INVALID_REQUEST, operation_from_scope
from app.http import jsonrpc_error, send_json
from app.registry import Catalog
from app.settings import SecuritySettings
from app.telemetry import record_rate_limit

log = logging.getLogger("app.bounds")

BUSY = -32030  # implementation-defined JSON-RPC server error: too many tool calls in flight
DRAIN_SECONDS = 1.0  # an oversized body is read and discarded for at most this long, and at most
DRAIN_FACTOR = 4  # this many times the cap, before the 413 goes out and the connection closes


class _BodyTooLarge(Exception):
    """Raised out of `receive` once a streamed body passes the cap; LimitBody answers 413."""


class LimitBody:
    """413 for a body over the cap: from Content-Length before anything else runs, or while a chunked body is read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

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
        if len(declared) == 1 and not chunked:
            # The HTTP server delivers exactly Content-Length bytes (anything after is the next request), so a
            # declared size within the cap needs no counting while the body is read.
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(receive, send)

    async def _refuse(self, receive: Receive, send: Send) -> None:
        # Read (a bounded amount of) what the client is still sending first: closing a socket with unread data
        # makes the kernel send a reset, and the client would lose the 413 for a connection error.
        with anyio.move_on_after(DRAIN_SECONDS):
            drained = 0
            while drained <= DRAIN_FACTOR * self.max_bytes:
                message = await receive()
                drained += len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
        error = jsonrpc_error(INVALID_REQUEST, f"request body too large (limit {self.max_bytes} bytes)")
        await send_json(send, 413, error, [("Connection", "close")])


class CapConcurrency:
    """In-flight `tools/call` requests, per principal (429) and overall (503): excess is refused at once, not queued.

    Counters are plain ints: the event loop is single-threaded and nothing awaits between check and increment.
    """

    def __init__(self, app: ASGIApp, per_principal: int, overall: int) -> None:
        self.app = app
        self.per_principal = per_principal
        self.overall = overall
        self.total = 0
        self.by_principal: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation = operation_from_scope(scope)
        principal = principal_from_scope(scope)
        if operation is None or operation.method != "tools/call" or principal is None:
            await self.app(scope, receive, send)
            return
        key = principal.key
        mine = self.by_principal.get(key, 0)
        if self.total >= self.overall or mine >= self.per_principal:
            status, who = (503, "the server") if self.total >= self.overall else (429, "this caller")
            record_rate_limit("rejected", "in-flight")
            error = jsonrpc_error(BUSY, f"too many tool calls in flight for {who}; retry shortly", operation.request_id)
            await send_json(send, status, error, [("Retry-After", "1")])
            return
        self.total += 1
        self.by_principal[key] = mine + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.total -= 1
            left = self.by_principal[key] - 1
            if left:
                self.by_principal[key] = left
            else:
                del self.by_principal[key]


def tool_error(text: str) -> dict[str, Any]:
    """A `tools/call` result the caller's model can read: the call failed, and why."""
    return {"content": [{"type": "text", "text": text}], "isError": True}


class ToolBounds:
    """SDK middleware for `tools/call`: a run-time deadline (the task is cancelled) and a cap on the result size."""

    def __init__(self, catalog: Catalog, settings: SecuritySettings) -> None:
        self.default_timeout = settings.tool_timeout_seconds
        self.timeouts = {s.name: s.limits.timeout for s in catalog.of("tool") if s.limits.timeout}
        self.max_result_bytes = settings.max_result_bytes

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params if isinstance(ctx.params, dict) else {}
        name = str(params.get("name", ""))
        timeout = self.timeouts.get(name) or self.default_timeout
        # A task rather than a cancel scope: an async tool that catches the cancellation (or a thread pool that
        # waits for its thread) would hold the caller past the deadline. The caller is answered at it either way.
        # (One future woken by the task or the timer: asyncio.wait would build sets and callbacks per call.)
        loop = asyncio.get_running_loop()
        task: asyncio.Future[HandlerResult] = asyncio.ensure_future(call_next(ctx))
        finished = loop.create_future()
        task.add_done_callback(partial(_settle, finished))
        timer = loop.call_later(timeout, _wake, finished)
        try:
            await finished
        finally:
            timer.cancel()
            if not task.done():
                task.cancel()
        if not task.done():
            log.warning("tool timed out", extra={"tool": name, "timeout_seconds": timeout})
            return tool_error(f"tool {name!r} did not finish within {timeout:g} s and was cancelled")
        result = task.result()
        size = _wire_size(result)
        if size > self.max_result_bytes:
            log.warning("tool result too large", extra={"tool": name, "bytes": size})
            return tool_error(f"tool {name!r} returned {size} bytes, over the {self.max_result_bytes}-byte limit")
        return result


_COMPACT = json.JSONEncoder(separators=(",", ":"), default=str)  # built once: json.dumps(**options) builds one per call


def _wire_size(result: HandlerResult) -> int:
    """Bytes of the result as compact, ASCII-escaped JSON: pydantic-core's encoding (several times faster than
    json's, which is used for what pydantic-core refuses: lone surrogates)."""
    if result is None:
        return 0
    if isinstance(result, dict):
        try:
            return len(to_json(result, ensure_ascii=True, fallback=str))
        except ValueError:  # PydanticSerializationError
            return len(_COMPACT.encode(result))
    return len(result.model_dump_json(by_alias=True, exclude_none=True))


def _settle(finished: asyncio.Future[None], task: asyncio.Future[Any]) -> None:
    """The tool's task ended: wake the caller, and retrieve the outcome so an abandoned task's late failure is not
    reported as 'never retrieved'."""
    if not task.cancelled():
        task.exception()
    _wake(finished)


def _wake(finished: asyncio.Future[None]) -> None:
    if not finished.done():
        finished.set_result(None)
