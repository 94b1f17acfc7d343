"""`AdmitTasks`: the per-caller and overall task caps, answered in HTTP (429 / 503 + Retry-After, never queued).

A `tools/call` that will become a task (the tool may run as one and the request declared the extension) takes an
active slot here, before dispatch; `TaskLayer` creates the task in it. A slot the request did not use (the SDK
refused the call first) is handed back when the request ends.
"""

from __future__ import annotations

import contextlib
from typing import Any

from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.operation import operation_from_scope, parsed_message
from app.auth.principal import principal_from_scope
from app.catalog.registry import TaskMode
from app.core.asgi import jsonrpc_error, send_json
from app.core.taskids import new_task_id
from app.edge.bounds import BUSY
from app.tasks.records import EXTENSION, TaskOptions, now_ms, owner_of
from app.tasks.run import SLOT_KEY
from app.tasks.signals import refused
from app.tasks.store import StoreUnavailable, TaskStore, reachable

_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"


def declared_in(message: Any) -> bool:
    """The parsed request declares the extension at 2026-07-28 (as `declares_tasks` reads it inside the SDK)."""
    params = message.get("params") if isinstance(message, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or meta.get(_VERSION_KEY) not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = meta.get(_CAPABILITIES_KEY)
    extensions = capabilities.get("extensions") if isinstance(capabilities, dict) else None
    return isinstance(extensions, dict) and EXTENSION in extensions


class AdmitTasks:
    def __init__(self, app: ASGIApp, modes: dict[str, TaskMode], store: TaskStore, options: TaskOptions) -> None:
        self.app, self.modes, self.store, self.options = app, modes, store, options
        self.caps = (options.max_per_principal, options.max_active)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation = operation_from_scope(scope)
        principal = principal_from_scope(scope)
        tool = operation.tool if operation is not None else None
        if tool is None or principal is None or self.modes.get(tool, "forbidden") == "forbidden":
            await self.app(scope, receive, send)
            return
        if not declared_in(parsed_message()):
            await self.app(scope, receive, send)
            return
        owner = owner_of(principal.key, principal.client_id)
        task_id = new_task_id(tool)
        until = now_ms() + int(self.options.lease_seconds * 1000)
        options = self.options
        try:
            with reachable():
                admission = await self.store.reserve(task_id, owner, until, *self.caps)
        except StoreUnavailable as exc:
            error = jsonrpc_error(BUSY, exc.error.message, operation.request_id if operation else None)
            await send_json(send, 503, error, [("Retry-After", "1")])
            return
        if admission != "ok":
            status = 429 if admission == "principal" else 503
            error = jsonrpc_error(BUSY, refused(admission), operation.request_id if operation else None)
            await send_json(send, status, error, [("Retry-After", str(max(1, options.poll_interval_ms // 1000)))])
            return
        state = scope.setdefault("state", {})
        state[SLOT_KEY] = (task_id, owner)
        try:
            await self.app(scope, receive, send)
        finally:
            if not state.pop("task_created", False):
                with contextlib.suppress(Exception):  # a slot not handed back expires with its lease
                    await self.store.release(task_id, owner)
