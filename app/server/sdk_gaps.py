"""Methods clients use that `MCPServer` doesn't serve: `logging/setLevel` and `resources/(un)subscribe`.

Both are handshake-era (2025-06-18 / 2025-11-25) features. Tools keep using the SDK's own calls:
`ctx.info(...)` for logs, and `ctx.notify_resource_updated(uri)`, which reaches 2026-07-28
`subscriptions/listen` streams through the SDK's bus and, via the bridge below, `resources/subscribe` sessions too.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any, get_args

from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import EmptyResult, LoggingLevel, SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams

from app.core.sdk_private import lowlevel_server, narrow_log_levels, request_connection

log = logging.getLogger("app.mcp")

_LEVELS: tuple[LoggingLevel, ...] = get_args(LoggingLevel)
# Per connection: the log levels it asked for, and the resource URIs it subscribed to. Weak, so they die with it.
_log_levels: weakref.WeakKeyDictionary[Connection, frozenset[LoggingLevel]] = weakref.WeakKeyDictionary()
_subscribed: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()
_sending: set[asyncio.Task[None]] = set()


async def _set_log_level(ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams) -> EmptyResult:
    _log_levels[request_connection(ctx)] = frozenset(_LEVELS[_LEVELS.index(params.level) :])
    return EmptyResult()


def apply_log_level(ctx: ServerRequestContext[Any, Any]) -> None:
    """Narrow this request's deliverable log levels to what its connection asked for."""
    wanted = _log_levels.get(request_connection(ctx))
    if wanted is not None:
        narrow_log_levels(ctx, wanted)


async def _subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
    # Authorization already ran in HTTP: subscribing to a URI needs what reading it needs.
    _subscribed.setdefault(request_connection(ctx), set()).add(str(params.uri))
    return EmptyResult()


async def _unsubscribe(ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
    _subscribed.get(request_connection(ctx), set()).discard(str(params.uri))
    return EmptyResult()


def _bridge(event: object) -> None:
    """Forward the SDK bus's resource-updated events to handshake-era subscribers."""
    if not isinstance(event, ResourceUpdated):
        return
    for connection, uris in list(_subscribed.items()):
        if event.uri in uris:
            task = asyncio.get_running_loop().create_task(_send_updated(connection, event.uri))
            _sending.add(task)
            task.add_done_callback(_sending.discard)


async def _send_updated(connection: Connection, uri: str) -> None:
    try:
        await connection.send_resource_updated(uri)
    except Exception as exc:  # a closed session must not break the tool that published
        log.debug("resource update not delivered: %s", type(exc).__name__)


def fill_sdk_gaps(server: MCPServer[Any], bus: InMemorySubscriptionBus, sessions: bool = True) -> None:
    """Register the missing handlers; `bus` is the one the server publishes `ctx.notify_*` events on.

    Only with sessions: without one, a level set or a subscription made would outlive nothing (each request is its
    own connection), so the methods are not served and the capabilities derived from them are not advertised."""
    if not sessions:
        server.middleware.append(advertise_request_logging)
        return
    lowlevel = lowlevel_server(server)
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, _set_log_level)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, _subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, _unsubscribe)
    bus.subscribe(_bridge)


async def advertise_request_logging(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """SDK middleware, stateless mode only: 2026-07-28 log delivery is per request (`_meta` log level) and works
    without sessions, but the SDK derives the `logging` capability from the `logging/setLevel` handler, which
    stateless mode leaves out. Advertise what is honoured."""
    result = await call_next(ctx)
    if ctx.method == "server/discover" and isinstance(result, dict):
        capabilities = result.get("capabilities")
        if isinstance(capabilities, dict):
            capabilities.setdefault("logging", {})
    return result
