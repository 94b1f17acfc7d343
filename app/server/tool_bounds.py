"""Tool run time and result size: SDK middleware around `tools/call`."""

from __future__ import annotations

import asyncio
import json
import logging
from functools import partial
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic_core import to_json

from app.catalog.registry import Catalog, Policy
from app.tasks.run import current_run

log = logging.getLogger("app.bounds")


def tool_error(text: str, version: str | None) -> dict[str, Any]:
    """A `tools/call` result the caller's model can read: the call failed, and why. In wire form, for the protocol
    version `version`: a middleware that answers without `call_next` owns the envelope the SDK would have filled, and
    2026-07-28 clients refuse a result without `resultType`."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if version in MODERN_PROTOCOL_VERSIONS:
        result["resultType"] = "complete"
    return result


class ToolBounds:
    """SDK middleware for `tools/call`: a run-time deadline (the task is cancelled) and a cap on the result size."""

    def __init__(self, catalog: Catalog, default_timeout: float, max_result_bytes: int) -> None:
        """`default_timeout`: SECURITY__TOOL_TIMEOUT_SECONDS; `max_result_bytes`: SECURITY__MAX_RESULT_BYTES."""
        # Each tool's limits from the one lookup (`Catalog.policy`), resolved once; an unknown name gets the defaults.
        server_wide = Policy(rate=None, timeout=default_timeout, max_result_bytes=max_result_bytes)
        self.policies = {spec.name: catalog.policy(spec.name, server_wide) for spec in catalog.of("tool")}
        self.default = server_wide

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params if isinstance(ctx.params, dict) else {}
        name = str(params.get("name", ""))
        policy = self.policies.get(name, self.default)
        run = current_run()
        timeout = (
            run.options.max_run_seconds if run is not None else policy.timeout
        )  # a task's run: TASKS__MAX_RUN_SECONDS
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
            return tool_error(
                f"tool {name!r} did not finish within {timeout:g} s and was cancelled", ctx.protocol_version
            )
        result = task.result()
        size = _wire_size(result)
        if size > policy.max_result_bytes:
            log.warning("tool result too large", extra={"tool": name, "bytes": size})
            message = f"tool {name!r} returned {size} bytes, over the {policy.max_result_bytes}-byte limit"
            return tool_error(message, ctx.protocol_version)
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
