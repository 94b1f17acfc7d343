"""Builds the SDK `MCPServer` from the discovered catalog, with the caller bound and lists filtered per caller."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from mcp.server.caching import CacheableMethod, CacheHint
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.request_state import AESGCMRequestStateCodec, RequestStateSecurity
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, Completion, GetPromptResult, InputRequiredResult
from pydantic import BaseModel, ValidationError

from app.auth.authz import Guard
from app.auth.downstream import TokenSource, using
from app.auth.principal import Principal, acting_as, bound_principal, principal_from_scope
from app.catalog.registry import COMPLETION_REFS, Catalog, Kind
from app.core.sdk_private import OpenTelemetryMiddleware, prompt_lookup
from app.observability.observe import ObserveOperation, Observer
from app.observability.redaction import REDACTOR, Redactor
from app.secrets.store import SecretStore, bound_store
from app.server.ask import AskClient
from app.server.calls_authz import AuthorizeCalls, BindCaller
from app.server.content import ContentSafetyCheck, checking_content_with
from app.server.extensions import advertised_extensions, handshake_extensions, in_initialize
from app.server.hand_schemas import sdk_tool
from app.server.injection import served_function
from app.server.sdk_gaps import apply_log_level, fill_sdk_gaps
from app.server.threads import ToolThreads
from app.server.tool_bounds import ToolBounds
from app.tasks.parts import Tasks

log = logging.getLogger("app.mcp")
MAX_COMPLETIONS = 100  # the spec's cap on values in one completion result
REQUEST_STATE_KEYS = "mcp--request-state-keys"
# Results that carry tool or author text back to the client: scrubbed of secrets and tokens.
_SCRUBBED = {"tools/call", "resources/read", "prompts/get", "tasks/get"}

# list method -> (wire result field, catalog kind, wire key naming each item's target)
_LISTS = {
    "tools/list": ("tools", "tool", "name"),
    "prompts/list": ("prompts", "prompt", "name"),
    "resources/list": ("resources", "resource", "uri"),
    "resources/templates/list": ("resourceTemplates", "resource", "uriTemplate"),
}


@dataclass(frozen=True)
class ServerOptions:
    """What the MCP server itself is configured with (MCP__*, TOOLS__*, SECURITY__ tool bounds, LOG_LEVEL)."""

    name: str = "secure-mcp-server"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    list_ttl_ms: int = 60_000
    filter_lists: bool = True
    """TOOLS__FILTER_LIST: lists show each caller only what it may use."""
    stateless: bool = False
    tool_timeout_seconds: float = 30.0
    max_result_bytes: int = 1024 * 1024
    threads: int = 40
    """TOOLS__THREADS: the worker threads plain `def` tools run on, when no pool is handed in."""


def list_cache_hints(ttl_ms: int) -> dict[CacheableMethod, CacheHint]:
    """2026-07-28 `ttlMs` / `cacheScope` for the lists: filtered per caller, so always private (a cache hint only;
    authorization is decided on every request regardless)."""
    return {cast(CacheableMethod, method): CacheHint(ttl_ms=ttl_ms, scope="private") for method in _LISTS}


class FrameworkServer(MCPServer[Any]):
    """`MCPServer`, except that argument errors never echo the caller's values back."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError) and not isinstance(exc, UnexpectedToolError):
                # pydantic's text carries `input_value=…`: a raw argument must not reach results, logs or spans.
                raise ToolError(invalid_arguments(name, exc.__cause__)) from None
            raise

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        """The caller's mistakes are invalid params (-32602): the SDK reports them all as internal errors."""
        prompt = prompt_lookup(self)(name)
        if prompt is None:
            raise MCPError(code=INVALID_PARAMS, message=f"unknown prompt {name!r}")
        missing = sorted({a.name for a in prompt.arguments or [] if a.required} - set(arguments or {}))
        if missing:
            raise MCPError(code=INVALID_PARAMS, message=f"prompt {name!r} needs argument(s): {', '.join(missing)}")
        try:
            return await super().get_prompt(name, arguments, context)
        except ValueError as exc:
            refused = _validation_cause(exc)  # the SDK wraps validate_call's refusal twice
            if refused is None:
                raise
            raise MCPError(code=INVALID_PARAMS, message=invalid_arguments(name, refused, "prompt")) from None


def invalid_arguments(target: str, error: ValidationError, kind: str = "tool") -> str:
    """Which arguments were wrong and how, without their values."""
    problems = "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'arguments'}: {e['msg']} ({e['type']})" for e in error.errors()
    )
    return f"invalid arguments for {kind} {target!r}: {problems}"


def _validation_cause(exc: BaseException) -> ValidationError | None:
    cause = exc.__cause__
    while cause is not None and not isinstance(cause, ValidationError):
        cause = cause.__cause__
    return cause


def build_mcp_server(
    options: ServerOptions,
    catalog: Catalog,
    guard: Guard,
    store: SecretStore,
    observer: Observer,
    downstream: TokenSource | None = None,
    content_check: ContentSafetyCheck | None = None,
    threads: ToolThreads | None = None,
    caller: Callable[[], Principal | None] | None = None,
    tasks: Tasks | None = None,
) -> MCPServer[Any]:
    """Register every discovered tool, resource and prompt on a fresh `MCPServer`; sync tools run on `threads`.

    `caller`: the session's one caller (local mode), bound for every message and authorized inside the SDK, as there
    is no HTTP layer to do it. `tasks`: when tools may run as tasks, the layer that runs them (outside every layer a
    synchronous call goes through, so a task's run goes through them all) and the extension's methods."""
    local = [BindCaller(caller)] if caller is not None else []
    extensions = advertised_extensions(catalog, tasks, local=caller is not None)
    threads = threads or ToolThreads(options.threads)  # threads start on first use
    bus = InMemorySubscriptionBus()
    # Injected parameters (caller, secrets, downstream tokens) are filled here and never reach the SDK's schemas.
    tools = [sdk_tool(spec, served_function(spec, threads)) for spec in catalog.of("tool")]
    server: MCPServer[Any] = FrameworkServer(
        options.name,
        tools=tools,
        subscriptions=bus,
        log_level=options.log_level,
        request_state_security=request_state_security(store),
        cache_hints=list_cache_hints(options.list_ttl_ms),
        extensions=extensions or None,
        middleware=[
            *local,
            ObserveOperation(observer),
            *([AuthorizeCalls(guard)] if caller is not None else []),
            *([tasks.layer] if tasks is not None else []),  # app/tasks/run.py
            SecretGuard(store, REDACTOR),
            CallerContext(guard, options.filter_lists, downstream, content_check, handshake_extensions(extensions)),
            ToolBounds(catalog, options.tool_timeout_seconds, options.max_result_bytes),
            AskClient(),  # `ask` in tool bodies: pushed, or input-required at 2026-07-28 (app/server/ask.py)
        ],
    )
    if not observer.telemetry.tracing:
        # The SDK's MCP span middleware ships on; with no tracer installed it would only make no-op spans.
        chain = server.middleware
        chain[:] = [layer for layer in chain if not isinstance(layer, OpenTelemetryMiddleware)]
    for spec in catalog.of("resource"):
        server.resource(spec.uri or "", name=spec.name, **spec.options)(served_function(spec, threads))
    for spec in catalog.of("prompt"):
        server.prompt(name=spec.name, **spec.options)(served_function(spec, threads))
    completers = catalog.completers()
    if completers:
        server.completion()(_dispatch_completions(completers))  # type: ignore[no-untyped-call]  # untyped in the SDK
    fill_sdk_gaps(server, bus, sessions=not options.stateless)
    return server


def request_state_security(store: SecretStore) -> RequestStateSecurity:
    """Seal 2026-07-28 `requestState` with the shared key ring (first seals, all unseal); rotated in place.

    Sealed state is bound to the caller: the SDK's default binding reads an auth context our authentication
    layer doesn't set (it would bind nothing), so we bind to our `Principal`.
    """
    keys: list[str | bytes] = [key.get_secret_value() for key in store.ring(REQUEST_STATE_KEYS)]
    if not keys:
        # Settings refuse this in production when it matters (stateless or several workers).
        log.info("requestState is sealed with a per-process key (set MCP__REQUEST_STATE_KEYS to share one)")
        return RequestStateSecurity(keys=[os.urandom(32)], bind_principal=_caller_binding)
    security = RequestStateSecurity(keys=keys, bind_principal=_caller_binding)

    def rotate(current: SecretStore, changed: set[str]) -> None:
        if REQUEST_STATE_KEYS in changed and (current_ring := current.ring(REQUEST_STATE_KEYS)):
            ring = [key.get_secret_value() for key in current_ring]
            security.codec = AESGCMRequestStateCodec(ring)  # the boundary reads .codec per message

    store.on_change(rotate)
    return security


def _caller_binding(ctx: ServerRequestContext[Any, Any]) -> str | None:
    request = ctx.request
    principal = principal_from_scope(request.scope) if request is not None and hasattr(request, "scope") else None
    return f"{principal.key}|{principal.client_id}" if principal is not None else None


class SecretGuard:
    """SDK middleware: makes the store available to `secret()`, and keeps secrets and tokens out of what a
    tool, resource or prompt sends back (its results, its error text, its JSON-RPC errors)."""

    def __init__(self, store: SecretStore, redactor: Redactor) -> None:
        self.store, self.redactor = store, redactor

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        try:
            with bound_store(self.store):
                result = await call_next(ctx)
        except MCPError as exc:
            if ctx.method not in _SCRUBBED:
                raise
            message, data = self.redactor.text(exc.message), self.redactor.data(exc.data)
            if (message, data) == (exc.message, exc.data):
                raise
            raise MCPError(code=exc.code, message=message, data=data) from None
        if ctx.method not in _SCRUBBED or result is None:
            return result
        wire = (
            result.model_dump(mode="json", by_alias=True, exclude_none=True)
            if isinstance(result, BaseModel)
            else result
        )
        return self.redactor.data(wire)  # type: ignore[no-any-return]


def _dispatch_completions(
    completers: dict[tuple[Kind, str], Callable[..., Any]],
) -> Callable[..., Awaitable[Completion | None]]:
    """The SDK takes one completion handler; this routes each request to the target's own completer, found by
    exactly the (kind, target) authorization decided on (`COMPLETION_REFS`). An unknown target completes nothing."""

    async def complete(ref: Any, argument: Any, context: Any) -> Completion | None:
        kind, key = COMPLETION_REFS.get(getattr(ref, "type", None) or "", (None, ""))
        target = getattr(ref, key, None) if kind is not None else None
        completer = completers.get((kind, target)) if isinstance(target, str) else None  # type: ignore[arg-type]
        if completer is None:
            return None
        values = completer(argument.name, argument.value, dict((context and context.arguments) or {}))
        values = await values if inspect.isawaitable(values) else values
        found = [str(v) for v in values]
        return Completion(values=found[:MAX_COMPLETIONS], total=len(found), has_more=len(found) > MAX_COMPLETIONS)

    return complete


class CallerContext:
    """SDK middleware: binds the HTTP request's principal for the handler, and hides what it may not use; a
    handshake-era `initialize` result names the era-independent extensions (app/server/extensions.py)."""

    def __init__(
        self,
        guard: Guard,
        filter_lists: bool,
        downstream: TokenSource | None,
        content_check: ContentSafetyCheck | None = None,
        extensions: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        self.guard = guard
        self.filter_lists = filter_lists
        self.downstream = downstream
        self.content_check = content_check
        self.extensions = extensions or {}

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        request = ctx.request
        scope = getattr(request, "scope", None) if request is not None else None
        principal = principal_from_scope(scope) if scope is not None else bound_principal()  # stdio: the session's
        apply_log_level(ctx)
        with acting_as(principal), using(self.downstream), checking_content_with(self.content_check):
            result = await call_next(ctx)
        if ctx.method == "initialize":
            return in_initialize(result, self.extensions)
        listing = _LISTS.get(ctx.method)
        if listing is None or principal is None or not self.filter_lists or result is None:
            return result
        field, kind, key = listing
        items = result.get(field) if isinstance(result, dict) else None  # the runner hands middleware the wire form
        if isinstance(items, list) and isinstance(result, dict):
            result[field] = [item for item in items if self.guard.allows(principal, kind, str(item.get(key)))]
        return result
