"""`tasks/get`, `tasks/update` and `tasks/cancel`, served through the SDK's extension seam (`MCPServer(extensions=)`),
which also advertises the extension in `server/discover`.

Authorization ran before dispatch: the task id names its tool (app/core/taskids.py), so a caller without the tool's
scopes got a 403 step-up, as for `tools/call`. Here a task is found only by the caller that created it, through the
same client app: anyone else's task reads as unknown, with the very error an id that never existed gets.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, RequestParams
from mcp_types.jsonrpc import HEADER_MISMATCH
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from app.auth.principal import bound_principal, principal_from_scope
from app.core.taskids import MAX_TASK_ID
from app.tasks.records import EXTENSION, NOT_FOUND, TERMINAL, Record, TaskOptions, now_ms, owner_of
from app.tasks.run import declares_tasks, missing_capability
from app.tasks.signals import TaskSignals
from app.tasks.store import TaskStore, reachable

MAX_RESPONSES = 32  # answers in one tasks/update


class TaskParams(RequestParams):
    task_id: str = Field(alias="taskId", min_length=1, max_length=MAX_TASK_ID)


class UpdateParams(TaskParams):
    input_responses: dict[str, dict[str, Any]] = Field(alias="inputResponses", max_length=MAX_RESPONSES)


class TasksExtension(Extension):
    """The Tasks extension's methods, at 2026-07-28 (the era whose per-request capabilities can declare it)."""

    identifier = EXTENSION

    def __init__(self, store: TaskStore, signals: TaskSignals, options: TaskOptions) -> None:
        self.store, self.signals, self.options = store, signals, options

    def methods(self) -> list[MethodBinding]:
        versions = frozenset(MODERN_PROTOCOL_VERSIONS)
        return [
            MethodBinding("tasks/get", TaskParams, self.get, versions),
            MethodBinding("tasks/update", UpdateParams, self.update, versions),
            MethodBinding("tasks/cancel", TaskParams, self.cancel, versions),
        ]

    async def _mine(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> Record:
        """The caller's own task, or the not-found error (an unknown, expired or someone else's task alike)."""
        if not declares_tasks(ctx):  # the request itself must declare the extension, as for creating a task
            raise missing_capability()
        request = ctx.request
        headers = getattr(request, "headers", None)  # over HTTP: the routing header is required (stdio has none)
        if headers is not None and headers.get("mcp-name") != params.task_id:
            raise MCPError(code=HEADER_MISMATCH, message="Mcp-Name header must be the params.taskId")
        scope = getattr(request, "scope", None)
        principal = principal_from_scope(scope) if scope is not None else bound_principal()
        with reachable():
            record = await self.store.get(params.task_id)
        if record is None or principal is None or record["owner"] != owner_of(principal.key, principal.client_id):
            raise MCPError(code=INVALID_PARAMS, message=NOT_FOUND)
        return record

    async def get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        return self.signals.shown(await self._mine(ctx, params))

    async def update(self, ctx: ServerRequestContext[Any, Any], params: UpdateParams) -> dict[str, Any]:
        record = await self._mine(ctx, params)
        for answer in params.input_responses.values():
            size = len(json.dumps(answer, separators=(",", ":")))
            if size > self.options.max_answer_bytes:
                limit = self.options.max_answer_bytes  # the key is the caller's text: not echoed
                message = f"an inputResponses answer is {size} bytes, over the {limit}-byte limit"
                raise MCPError(code=INVALID_PARAMS, message=message)
        answered: list[str] = []

        def answer_outstanding(current: Record) -> Record | None:
            # Only outstanding questions take answers; others (never asked, answered, or the task ended) are ignored.
            fresh = {k: v for k, v in params.input_responses.items() if k in current["inputs"]}
            fresh = {k: v for k, v in fresh.items() if k not in current["answers"]}
            if current["status"] in TERMINAL or not fresh:
                return None
            answered[:] = list(fresh)
            return {**current, "answers": {**current["answers"], **fresh}, "updated": now_ms()}

        with reachable():
            await self.store.change(record["id"], answer_outstanding)
        if answered:
            self.signals.wake(record["id"])
            self.signals.audit(record, bound_principal(), "updated", answered=len(answered))
        return {}

    async def cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        record = await self._mine(ctx, params)

        flagged: list[bool] = []

        def flag(current: Record) -> Record | None:
            if current["status"] in TERMINAL or current.get("cancel"):
                return None  # ended, or asked already: acknowledged, nothing changes
            flagged.append(True)
            return {**current, "cancel": True, "message": "cancellation requested", "updated": now_ms()}

        with reachable():
            await self.store.change(record["id"], flag)
        if flagged:
            self.signals.audit(record, bound_principal(), "cancel_requested")
            self.signals.cancel_local(record["id"])
        return {}
