"""Authorization inside the SDK, for transports without an HTTP layer (local mode over stdio).

The same decisions as `AuthorizeOperation` over HTTP: each message classified by `classify` (the table that test
enumerates against the SDK's own), decided by `Guard.decide_all`. Over HTTP a refusal is a 403 step-up; here a tool
call the caller's scopes don't cover is a tool error, anything else a JSON-RPC error. A missing authentication
context (nothing here can send a claims challenge) and an agent policy refusal are answered the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST

from app.auth.authz import LOGGED, Guard
from app.auth.operation import classify
from app.auth.principal import Principal, acting_as, bound_principal
from app.server.tool_bounds import tool_error

log = logging.getLogger("app.authz")


class BindCaller:
    """SDK middleware, outermost: binds the session's one caller (local mode's signed-in user) for every message."""

    def __init__(self, caller: Callable[[], Principal | None]) -> None:
        self.caller = caller

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        with acting_as(self.caller()):
            return await call_next(ctx)


class AuthorizeCalls:
    """SDK middleware: refuses what the bound principal may not use, before the handler runs (default deny)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        principal = bound_principal()
        operation = classify({"method": ctx.method, "params": dict(ctx.params or {}), "id": ctx.request_id})
        if principal is None:
            raise MCPError(code=INVALID_REQUEST, message="not signed in")
        if operation.refusal is not None:
            if ctx.request_id is None:
                return None  # a notification the framework does not know: dropped, as it has no answer
            raise MCPError(code=operation.refusal.code, message=operation.refusal.message)
        decision = self.guard.decide_all(principal, operation.targets)
        if decision.allowed:
            return await call_next(ctx)
        log.info("authz denied", extra={"principal": principal.key, "reason": LOGGED[decision.refused]})
        message = f"forbidden: {decision.reason}"
        if ctx.method == "tools/call":  # the model sees why, and can tell the user which consent is missing
            return tool_error(message, ctx.protocol_version)
        raise MCPError(code=INVALID_REQUEST, message=message)
