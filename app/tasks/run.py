"""Running a tool as a task: `TaskLayer` (SDK middleware) answers a `tools/call` with a task handle and runs the rest
of the chain in the background, where the tool body can report its status and ask the client (`TaskRun`).

The layer sits outside SecretGuard, CallerContext, ToolBounds and AskClient (app/server/build.py), so a task's run
goes through the same scrubbing, caller binding, content checks and size cap as a synchronous call: its result is
the one the call would have returned. Only the deadline differs (TASKS__MAX_RUN_SECONDS instead of the tool's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from functools import partial
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, CallToolRequestParams
from mcp_types.jsonrpc import MISSING_REQUIRED_CLIENT_CAPABILITY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError

from app.auth.principal import Principal, bound_principal, principal_from_scope
from app.catalog.registry import TaskMode
from app.core.binding import bind
from app.core.taskids import new_task_id
from app.edge.bounds import BUSY
from app.observability.observe import Observer
from app.tasks.records import EXTENSION, TERMINAL, Record, TaskOptions, new_record, now_ms, owner_of
from app.tasks.signals import TaskSignals, refused
from app.tasks.store import TaskStore, reachable

log = logging.getLogger("app.tasks")
TICK = 0.5  # seconds between a run's looks at its record (a cancel or an answer sent to another replica)
MAX_STATUS = 500  # characters of a status message kept
SLOT_KEY = "task_slot"  # scope["state"]: the slot AdmitTasks reserved for this request, (task id, owner)
_RUN: ContextVar[TaskRun | None] = ContextVar("task_run", default=None)


def current_run() -> TaskRun | None:
    """The task the current tool body runs as; None in a synchronous call."""
    return _RUN.get()


def declares_tasks(ctx: ServerRequestContext[Any, Any]) -> bool:
    """The request itself declared the extension (2026-07-28 per-request capabilities; no earlier era can)."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = ctx.session.client_capabilities
    extensions = capabilities.extensions if capabilities is not None else None
    return bool(extensions) and EXTENSION in extensions  # type: ignore[operator]


def _wants_task_notifications(params: Any) -> bool:
    wanted = params.get("notifications") if isinstance(params, dict) else None
    return isinstance(wanted, dict) and "taskIds" in wanted


def missing_capability() -> MCPError:
    return MCPError(
        code=MISSING_REQUIRED_CLIENT_CAPABILITY,
        message=f"Missing required client capability: the Tasks extension ({EXTENSION})",
        data={"requiredCapabilities": {"extensions": {EXTENSION: {}}}},
    )


class TaskRun:
    """One running task, as its tool body sees it: `report` a status message, `ask` the client and wait."""

    def __init__(self, store: TaskStore, record: Record, options: TaskOptions, audit: Callable[..., None]) -> None:
        self.store, self.task_id, self.options, self.audit = store, record["id"], options, audit
        self.wake = asyncio.Event()

    async def report(self, message: str) -> None:
        text = str(message)[:MAX_STATUS]

        def put(record: Record) -> Record | None:
            if record["status"] in TERMINAL:
                return None
            return {**record, "message": text, "updated": now_ms()}

        try:
            await self.store.change(self.task_id, put)
        except Exception as exc:  # a status line is not worth failing the tool over
            _still_cancelled(exc)
            log.warning("task status not stored", extra={"error": type(exc).__name__})

    async def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """Put `request` (an `elicitation/create` or `sampling/createMessage` request) to the client as one of the
        task's `inputRequests`, and wait for its answer from `tasks/update` (any replica)."""
        keys: list[str] = []

        def put(record: Record) -> Record | None:
            if record["status"] in TERMINAL:
                return None
            key = f"input-{record['asked']}"  # never reused over the task's life
            keys[:] = [key]
            inputs = {**record["inputs"], key: request}
            return {**record, "asked": record["asked"] + 1, "inputs": inputs, "status": "input_required",
                    "updated": now_ms()}  # fmt: skip

        with reachable():  # the question cannot be put: the tool fails with that JSON-RPC error
            await self.store.change(self.task_id, put)
        if not keys:
            raise asyncio.CancelledError  # the task ended (cancelled, or expired) while the tool was still running
        key = keys[0]
        self.audit("input_requested")
        answers: list[dict[str, Any]] = []

        def take(record: Record) -> Record | None:
            if key not in record["answers"]:
                return None
            answers.append(record["answers"][key])
            inputs = {k: v for k, v in record["inputs"].items() if k != key}
            rest = {k: v for k, v in record["answers"].items() if k != key}
            status = record["status"] if record["status"] in TERMINAL or inputs else "working"
            return {**record, "inputs": inputs, "answers": rest, "status": status, "updated": now_ms()}

        while True:
            try:
                record = await self.store.change(self.task_id, take)
            except Exception as exc:  # a blip: keep waiting (past the lease, the task reads as failed anyway)
                _still_cancelled(exc)
                log.warning("task store unavailable to a waiting task", extra={"error": type(exc).__name__})
                await asyncio.sleep(TICK)
                continue
            if answers:
                return answers[0]
            if record is None or record["status"] in TERMINAL:
                raise asyncio.CancelledError
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), TICK)


class TaskLayer:
    """SDK middleware around `tools/call`: a tool that may run as a task, called by a request that declared the
    extension, gets a `CreateTaskResult` and runs in the background; any other call passes through unchanged."""

    def __init__(
        self,
        modes: dict[str, TaskMode],
        store: TaskStore,
        options: TaskOptions,
        signals: TaskSignals,
        observer: Observer,
    ) -> None:
        self.modes, self.store, self.options, self.signals, self.observer = modes, store, options, signals, observer

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            if (
                ctx.method == "subscriptions/listen"
                and _wants_task_notifications(ctx.params)
                and not declares_tasks(ctx)
            ):
                raise missing_capability()  # none are sent (clients poll), but only a declaring client may ask
            return await call_next(ctx)
        name = (ctx.params or {}).get("name")
        mode = self.modes.get(name, "forbidden") if isinstance(name, str) else "forbidden"
        if mode == "forbidden":
            return await call_next(ctx)
        if not declares_tasks(ctx):
            if mode == "required":
                raise missing_capability()
            return await call_next(ctx)
        assert isinstance(name, str)
        try:  # refused now, as the synchronous call would be: not as a task that fails
            CallToolRequestParams.model_validate(ctx.params)
        except ValidationError:
            raise MCPError(code=INVALID_PARAMS, message="Invalid request parameters") from None
        scope = getattr(ctx.request, "scope", None)
        principal = principal_from_scope(scope) if scope is not None else bound_principal()
        if principal is None:
            return await call_next(ctx)  # cannot happen behind authentication; then no task to bind to anyone
        owner = owner_of(principal.key, principal.client_id)
        state = scope.setdefault("state", {}) if isinstance(scope, dict) else {}
        slot = state.get(SLOT_KEY)
        with reachable():
            if slot is None:  # no HTTP admission in front (stdio): reserve here
                task_id = new_task_id(name)
                admission = await self.store.reserve(task_id, owner, self._lease(), *self._caps())
                if admission != "ok":
                    raise MCPError(code=BUSY, message=refused(admission))
            else:
                task_id = slot[0]
            record = new_record(task_id, name, owner, self.options, self.signals.trace_parent())
            await self.store.put(record)  # durable before the handle is returned (the extension's MUST)
        state["task_created"] = True
        self.signals.start(self._run(ctx, call_next, record, principal), record)
        self.signals.audit(record, principal, "created")
        return {"resultType": "task", **self.signals.shown(record)}

    def _lease(self) -> int:
        return now_ms() + int(self.options.lease_seconds * 1000)

    def _caps(self) -> tuple[int, int]:
        return self.options.max_per_principal, self.options.max_active

    async def _run(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, record: Record, principal: Principal
    ) -> None:
        task_id, started = record["id"], time.perf_counter()
        run = TaskRun(self.store, record, self.options, lambda action: self.signals.audit(record, principal, action))
        with bind(_RUN, run), self.signals.span(record):
            tool = asyncio.ensure_future(call_next(ctx))  # a copy of this context: `current_run()` is `run`
            self.signals.running[task_id] = (tool, run)
            try:
                outcome = await self._watch(tool, run, record)
            finally:
                self.signals.running.pop(task_id, None)
                if not tool.done():
                    tool.cancel()
            try:
                final = await self._finish(task_id, outcome)
                await self.store.release(task_id, record["owner"])
            except Exception as exc:  # the store is down: the record reads as failed once the lease runs out
                log.warning("task outcome not stored", extra={"error": type(exc).__name__})
                final = {"status": "lost"}
            status = final["status"] if final is not None else "expired"
            self.signals.finished(record, principal, status, time.perf_counter() - started)

    async def _watch(self, tool: asyncio.Future[HandlerResult], run: TaskRun, record: Record) -> Record:
        """Wait for the tool, renewing the lease and looking for a cancel; what the record should end as."""
        renew_every, renewed = self.options.lease_seconds / 3, time.monotonic()
        while not tool.done():
            await asyncio.wait({tool}, timeout=TICK)
            if tool.done():
                break
            try:
                current = await self.store.get(record["id"])
                if current is not None and current["answers"]:
                    run.wake.set()
                if current is not None and time.monotonic() - renewed >= renew_every:
                    until, renewed = self._lease(), time.monotonic()
                    await self.store.change(record["id"], partial(_leased, until=until))
                    await self.store.renew(record["id"], record["owner"], until)
            except Exception as exc:  # a store blip: look again next tick; past the lease, others see it failed
                log.warning("task store unavailable to a running task", extra={"error": type(exc).__name__})
                continue
            if current is None or current["status"] in TERMINAL or current.get("cancel"):
                tool.cancel()
                await asyncio.wait({tool})
                return {"status": "cancelled"}
        return outcome_of(tool)

    async def _finish(self, task_id: str, outcome: Record) -> Record | None:
        def end(record: Record) -> Record | None:
            if record["status"] in TERMINAL:
                return None  # terminal states never change
            # The last progress message ("step 3 of 5") is stale at the end; an outcome may bring its own.
            return {**record, "message": None, **outcome, "inputs": {}, "answers": {}, "updated": now_ms()}

        return await self.store.change(task_id, end)


def _still_cancelled(error: Exception) -> None:
    """Re-raise a cancel of the running tool that a store error hid: a Redis client cleaning up after a cancelled
    command (UNWATCH on a broken connection) can raise in place of the CancelledError, and a tool whose cancel was
    caught as a store blip would run on after its task was cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from error


def _leased(record: Record, until: int) -> Record:
    return {**record, "lease": until}


def outcome_of(tool: asyncio.Future[HandlerResult]) -> Record:
    """What a finished run leaves: its result, or the JSON-RPC error it failed with (never an exception's text)."""
    if tool.cancelled():
        return {"status": "cancelled"}
    error = tool.exception()
    if isinstance(error, ValidationError):
        return {"status": "failed", "error": {"code": INVALID_PARAMS, "message": "Invalid request parameters"}}
    if isinstance(error, MCPError):
        failure = error.error.model_dump(mode="json", by_alias=True, exclude_none=True)
        return {"status": "failed", "error": failure, "message": error.error.message[:MAX_STATUS]}
    if error is not None:
        log.error("task run failed", extra={"error": type(error).__name__})
        return {"status": "failed", "error": {"code": INTERNAL_ERROR, "message": "Internal error"}}
    result = tool.result()
    wire = result.model_dump(mode="json", by_alias=True, exclude_none=True) if isinstance(result, BaseModel) else result
    return {"status": "completed", "result": {**dict(wire or {}), "resultType": "complete"}}
