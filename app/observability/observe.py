"""What the request path reports: one call per event, fanned out to span attributes, metrics and the audit log.

`Observer` is called by the authentication and authorization layers; `ObserveOperation` is SDK middleware that
times every MCP request (inside the SDK's own OpenTelemetry span, which it enriches) and audits tool calls.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanContext
from pydantic import ValidationError
from starlette.types import Scope

from app.auth.principal import Principal, bound_principal, principal_from_scope
from app.catalog.registry import Catalog
from app.observability.audit import AuditLog, NamedAudit
from app.observability.audit_fields import bounded, canonical_json, client_ip, digest, principal_fields, text_digest
from app.observability.telemetry import (
    AUTH_FAILURE_REASON,
    AUTH_FAILURES,
    AUTH_OUTCOME,
    HTTP_SPAN_KEY,
    OPERATION_DURATION,
    RATE_LIMIT_OUTCOME,
    SERVER_NAME,
    TOOL_IS_ERROR,
    Telemetry,
    rate_limit_outcome,
)

# The semantic conventions' well-known methods; anything else a client sends is recorded as _OTHER (cardinality).
KNOWN_METHODS = frozenset(
    {
        "completion/complete",
        "elicitation/create",
        "initialize",
        "logging/setLevel",
        "notifications/cancelled",
        "notifications/initialized",
        "notifications/message",
        "notifications/progress",
        "ping",
        "prompts/get",
        "prompts/list",
        "resources/list",
        "resources/read",
        "resources/subscribe",
        "resources/templates/list",
        "resources/unsubscribe",
        "roots/list",
        "sampling/createMessage",
        "tools/call",
        "tools/list",
        "server/discover",
        "subscriptions/listen",
        "tasks/get",  # the Tasks extension's (app/tasks/)
        "tasks/update",
        "tasks/cancel",
    }
)


# Raw arguments of a tool that opted in (`audit_arguments=True`) are written up to this size of canonical JSON.
MAX_AUDITED_ARGUMENTS = 4096


class Observer:
    """Knows the telemetry switches, the audit sink, and which names are real (so labels stay bounded).

    Audit records bound everything a caller chose (`_caller_fields`): a record stays a few hundred bytes however
    large the request, and a made-up name never reads as a real one."""

    def __init__(self, telemetry: Telemetry, audit: AuditLog, catalog: Catalog, server: str | None = None) -> None:
        """`server`: the MCP server's name, on its audit records (`server`), its metrics (`server`) and its spans
        (`mcp.server.name`); one app may serve several."""
        self.telemetry = telemetry
        self.server = server
        self.audit: AuditLog | NamedAudit = audit.named(server) if server else audit
        self.labels = {"server": server} if server else {}
        self.tools = frozenset(spec.name for spec in catalog.of("tool"))
        self.prompts = frozenset(spec.name for spec in catalog.of("prompt"))
        self.audit_arguments = frozenset(spec.name for spec in catalog.of("tool") if spec.audit_arguments)
        # Every target name a record may carry verbatim: tools, prompts, resource URIs and templates as declared.
        uris = frozenset(spec.uri for spec in catalog.of("resource") if spec.uri is not None)
        self.targets = self.tools | self.prompts | uris

    def _span(self) -> Span:
        """The current span; without a live tracer provider there is none, so skip the context lookups."""
        return trace.get_current_span() if self.telemetry.tracing else INVALID_SPAN

    # ---- HTTP layers -----------------------------------------------------------------------------------------
    def auth_failed(self, scope: Scope, reason: str, started: float) -> None:
        AUTH_FAILURES.add(1, {AUTH_FAILURE_REASON: reason, **self.labels})
        span = self._span()
        if span.is_recording():
            span.set_attributes({AUTH_OUTCOME: "failure", AUTH_FAILURE_REASON: reason})
            if self.server:
                span.set_attribute(SERVER_NAME, self.server)
        self.audit.record(
            "authn_failure",
            outcome="failure",
            reason=reason,
            principal=None,
            client_ip=bounded(client_ip(scope)),
            correlation_id=correlation_id(span),
            latency_ms=_ms(started),
        )

    def auth_succeeded(self, scope: Scope, principal: Principal) -> None:
        span = self._span()  # FastAPI's HTTP server span
        if span.is_recording():
            self.telemetry.annotate(span, principal)
            scope.setdefault("state", {})[HTTP_SPAN_KEY] = span.get_span_context()  # for the MCP span's link

    def authz_denied(
        self, scope: Scope, principal: Principal, message: Any, target: str | None, reason: str, started: float
    ) -> None:
        span = self._span()
        params = message.get("params") if isinstance(message, dict) else None
        params = params if isinstance(params, dict) else {}
        method = message.get("method") if isinstance(message, dict) else None
        method = method if isinstance(method, str) else None
        self.audit.record(
            "authz_denied",
            outcome="denied",
            reason=reason,
            **self._named(method, target),
            principal=principal_fields(principal),
            client_ip=bounded(client_ip(scope)),
            request_id=bounded(message.get("id") if isinstance(message, dict) else None),
            correlation_id=correlation_id(span),
            latency_ms=_ms(started),
            **self._arguments(target if method == "tools/call" else None, params.get("arguments")),
        )

    def route_access(
        self, scope: Scope, principal: Principal, route: str, denied_reason: str | None, started: float
    ) -> None:
        """One audit record per guarded route call: allowed, or denied with the reason."""
        self.audit.record(
            "route_access",
            outcome="denied" if denied_reason else "allowed",
            reason=denied_reason,
            http_method=bounded(scope.get("method")),
            route=bounded(route),
            principal=principal_fields(principal),
            client_ip=bounded(client_ip(scope)),
            correlation_id=correlation_id(self._span()),
            latency_ms=_ms(started),
        )

    # ---- MCP operations --------------------------------------------------------------------------------------
    def operation(self, ctx: ServerRequestContext[Any, Any], error_type: str | None, seconds: float) -> None:
        method = ctx.method
        name = ctx.params.get("name") if ctx.params else None
        name = name if isinstance(name, str) else None
        scope = getattr(ctx.request, "scope", None) or {}
        principal = principal_from_scope(scope) or bound_principal()  # over stdio, the signed-in user's
        span = self._span()  # the SDK's MCP span (this runs inside its middleware)
        if self.telemetry.metrics:
            attributes = {"mcp.method.name": method if method in KNOWN_METHODS else "_OTHER", **self.labels}
            if method == "tools/call" and name is not None:
                attributes["gen_ai.tool.name"] = name if name in self.tools else "_OTHER"
            elif method == "prompts/get" and name is not None:
                attributes["gen_ai.prompt.name"] = name if name in self.prompts else "_OTHER"
            if error_type is not None:
                attributes["error.type"] = error_type
            OPERATION_DURATION.record(seconds, attributes)
        if span.is_recording():
            self.telemetry.annotate(span, principal)
            if self.server:
                span.set_attribute(SERVER_NAME, self.server)
            if (outcome := rate_limit_outcome()) is not None:
                span.set_attribute(RATE_LIMIT_OUTCOME, outcome)
            if method == "tools/call":
                span.set_attribute(TOOL_IS_ERROR, error_type == "tool_error")
            _link_transport(span, scope)
        if method == "tools/call" and self.audit.enabled:
            self.audit.record(
                "tool_call",
                outcome="success" if error_type is None else "error",
                reason=error_type,
                **self._named(method, name),
                principal=principal_fields(principal),
                client_ip=bounded(client_ip(scope)),
                request_id=bounded(ctx.request_id),
                correlation_id=correlation_id(span),
                latency_ms=round(seconds * 1000, 3),
                **self._arguments(name, ctx.params.get("arguments") if ctx.params else None),
            )

    def _named(self, method: str | None, target: str | None) -> dict[str, Any]:
        """`method` and `target` as a record carries them; every other field the caller chose (`request_id`, and
        `client_ip`, a trusted proxy's word) is `bounded`, and raw arguments are capped (`_arguments`).

        `method`: a known MCP method as is, anything else `bounded`. `target`: a name the catalog declares as is;
        any other string is caller text, so `target` is null and `target_unknown` holds its `sha256:` digest (a
        made-up name can neither pass for a real one nor make the record large)."""
        fields: dict[str, Any] = {"method": method if method is None or method in KNOWN_METHODS else bounded(method)}
        if target is None or target in self.targets:
            fields["target"] = target
        else:
            fields["target"], fields["target_unknown"] = None, text_digest(target)
        return fields

    def _arguments(self, tool: str | None, arguments: Any) -> dict[str, Any]:
        """A digest of the arguments always; the arguments themselves only for tools that opted in, and only up to
        `MAX_AUDITED_ARGUMENTS` bytes of canonical JSON (beyond: `arguments_omitted: "too_large"`, digest only)."""
        if tool is None:
            return {}
        arguments = arguments if arguments is not None else {}
        if tool not in self.audit_arguments:
            return {"args_sha256": digest(arguments)}
        canonical = canonical_json(arguments)
        fields: dict[str, Any] = {"args_sha256": hashlib.sha256(canonical).hexdigest()}
        if len(canonical) <= MAX_AUDITED_ARGUMENTS:
            fields["arguments"] = arguments
        else:
            fields["arguments_omitted"] = "too_large"
        return fields


class ObserveOperation:
    """SDK middleware: duration metric, span enrichment and the tool-call audit record for every MCP request."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        started = time.perf_counter()
        error_type: str | None = None
        try:
            result = await call_next(ctx)
        except MCPError as exc:
            error_type = str(exc.error.code)
            raise
        except ValidationError:
            error_type = str(INVALID_PARAMS)
            raise
        except BaseException as exc:
            error_type = type(exc).__qualname__
            raise
        finally:
            if error_type is not None:
                self.observer.operation(ctx, error_type, time.perf_counter() - started)
        # The runner hands middleware the wire form, so a failed tool is `{"isError": true, ...}` here.
        failed = ctx.method == "tools/call" and isinstance(result, (dict, Mapping)) and result.get("isError") is True
        self.observer.operation(ctx, "tool_error" if failed else None, time.perf_counter() - started)
        return result


# Unique per process without a syscall per request (uuid4 reads os.urandom each time).
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count()


def correlation_id(span: Span) -> str:
    """The trace id when tracing (so an audit record leads to its trace), else a fresh random id."""
    if span is not INVALID_SPAN:  # tracing off: no span context to ask
        context = span.get_span_context()
        if context.is_valid:
            return format(context.trace_id, "032x")
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def _link_transport(span: Span, scope: Mapping[str, Any]) -> None:
    """Semantic conventions: the MCP span's parent is the `_meta` context; the HTTP span is recorded as a link."""
    state = scope.get("state") or {}
    http: SpanContext | None = state.get(HTTP_SPAN_KEY) if isinstance(state, Mapping) else None
    parent = getattr(span, "parent", None)
    if http is not None and http.is_valid and (parent is None or parent.span_id != http.span_id):
        span.add_link(http)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
