"""OpenTelemetry: providers from the standard `OTEL_*` variables, this server's metrics,
and the attributes only the framework knows (who called, auth and rate-limit outcome, tool errors).

With no exporter configured nothing is installed: the API stays the no-op default, the SDK's MCP spans and
FastAPI's HTTP span are left out of the request path, and the instruments below are proxies that record nothing.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import os
import secrets
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fastapi.telemetry import TelemetryConfig
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span
from pydantic import SecretStr
from starlette.types import Scope

from app.core.sdk_private import open_sessions
from app.observability.exporters import providers_from_env

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from app.auth.principal import Principal
log = logging.getLogger("app.telemetry")

# Span attributes the SDK cannot know. `enduser.*` follow the semantic conventions; the rest are this server's.
ENDUSER_ID = "enduser.id"
ENDUSER_SCOPE = "enduser.scope"
TENANT_ID = "tenant.id"
AUTH_OUTCOME = "auth.outcome"  # "success" | "failure"
AUTH_FAILURE_REASON = "auth.failure_reason"
RATE_LIMIT_OUTCOME = "rate_limit.outcome"  # "allowed" | "rejected"
TOOL_IS_ERROR = "tool.is_error"
PRINCIPAL_KIND = "auth.principal.kind"  # "user" | "app" | "agent"
AGENT_ID = "auth.agent.id"  # an Entra Agent ID agent's own app id (azp / appid): an identity, not a person
AGENT_PARENT = "auth.agent.parent_app"  # its parent app (xms_par_app_azp)
AGENT_DELEGATED = "auth.agent.delegated"  # it acts for a signed-in user (then enduser.id is that user's)
SERVER_NAME = "mcp.server.name"  # which of the app's MCP servers served the request (several may share one app)
HTTP_SPAN_KEY = "otel.http_span"  # scope["state"] key: the HTTP server span's context, for the MCP span's link
_PROBES = frozenset({"/healthz", "/readyz"})

# The semantic conventions' advisory buckets for mcp.*.operation.duration.
DURATION_BUCKETS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]

# Instruments come from the global meter: proxies until a MeterProvider is installed, so any module (the rate
# limiter included) can record without plumbing, and recording costs nothing while telemetry is off.
_meter = metrics.get_meter("secure-mcp-server")
OPERATION_DURATION = _meter.create_histogram(
    "mcp.server.operation.duration",
    unit="s",
    description="Duration of an MCP request as handled by the server; isError tool results count as errors.",
    explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
)
AUTH_FAILURES = _meter.create_counter(
    "mcp.server.auth.failures", unit="{failure}", description="Requests refused by authentication, by reason."
)
AUDIT_WRITE_FAILURES = _meter.create_counter(
    "mcp.server.audit.write_failures",
    unit="{record}",
    description="Audit records the sink did not take (logged, never partly written), by error.type.",
)
RATE_LIMIT_REJECTIONS = _meter.create_counter(
    "mcp.server.rate_limit.rejections", unit="{request}", description="Requests refused by the rate limiter."
)
_session_managers: weakref.WeakSet[Any] = weakref.WeakSet()


def _observe_sessions(_: CallbackOptions) -> Iterable[Observation]:
    count = sum(open_sessions(manager) for manager in list(_session_managers))
    yield Observation(count)


_meter.create_observable_up_down_counter(
    "mcp.server.active_sessions",
    callbacks=[_observe_sessions],
    unit="{session}",
    description="Open MCP sessions (stateful mode; always 0 when stateless).",
)

_rate_limit_outcome: contextvars.ContextVar[str | None] = contextvars.ContextVar("rate_limit_outcome", default=None)


def record_rate_limit(outcome: Literal["allowed", "rejected"], policy: str | None = None) -> None:
    """For the rate limiter: mark the current request's span (and its MCP span) and count a rejection.

    `policy` names the limit that applied (a fixed, low-cardinality label such as "per-principal")."""
    _rate_limit_outcome.set(outcome)
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(RATE_LIMIT_OUTCOME, outcome)
    if outcome == "rejected":
        RATE_LIMIT_REJECTIONS.add(1, {"rate_limit.policy": policy} if policy else {})


def rate_limit_outcome() -> str | None:
    """The outcome the rate limiter recorded for this request, if any."""
    return _rate_limit_outcome.get()


@dataclass
class Telemetry:
    """What `setup_telemetry` found: whether traces / metrics are live, and how to label the caller."""

    tracing: bool
    metrics: bool
    enduser_id: Literal["hashed", "raw", "off"] = "hashed"
    owned: list[Any] = field(default_factory=list)  # providers this process installed from OTEL_*
    enduser_key: bytes = field(default=b"", repr=False)  # the pseudonym's HMAC key; empty: this process's own

    def fastapi_config(self) -> TelemetryConfig:
        """FastAPI's native OpenTelemetry makes the HTTP server span (the parent of the SDK's MCP spans)."""
        return {
            "tracing": self.tracing,
            "metrics": self.metrics,
            "logs": False,  # logs are ours: JSON on stderr, without exception messages that may carry input
            "operation_spans": False,  # one raw ASGI route: nothing for them to show but overhead
            "exclude": _untraced,
        }

    def track_sessions(self, session_manager: Any) -> None:
        _session_managers.add(session_manager)

    def flush(self) -> None:
        """Export what is buffered (graceful shutdown); the providers' own atexit hook shuts them down."""
        for provider in self.owned:
            provider.force_flush()

    def annotate(self, span: Span, principal: Principal | None) -> None:
        """Who is calling, on a recording span: hashed (or raw) object id, scopes, tenant, auth outcome, the kind of
        caller, and for an agent its app id, parent app and whether it acts for a user (ids of apps, capped)."""
        if principal is None or not span.is_recording():
            return
        if self.enduser_id != "off":
            raw = principal.oid or principal.sub
            span.set_attribute(ENDUSER_ID, raw if self.enduser_id == "raw" else enduser_hash(raw, self.enduser_key))
        span.set_attribute(ENDUSER_SCOPE, " ".join(sorted(principal.scopes or principal.roles)))
        span.set_attribute(TENANT_ID, principal.tid)
        span.set_attribute(AUTH_OUTCOME, "success")
        kind = principal.kind
        span.set_attribute(PRINCIPAL_KIND, kind)
        if kind == "agent":
            span.set_attribute(AGENT_ID, principal.client_id[:64])
            span.set_attribute(AGENT_DELEGATED, principal.on_behalf_of is not None)
            if principal.agent_parent is not None:
                span.set_attribute(AGENT_PARENT, principal.agent_parent)  # at most 64 characters (tokens.py)


def enduser_hash(value: str, key: bytes = b"") -> str:
    """A stable pseudonym for an object id: HMAC-SHA256 under `key` (TELEMETRY__ENDUSER_ID_KEY; empty: this
    process's random key). The same caller correlates across spans without being named, and without the key
    nobody can tell whose object id a pseudonym is (a plain hash of an id anyone can list would be reversible)."""
    return hmac.new(key or _PROCESS_KEY, value.encode(), hashlib.sha256).hexdigest()[:32]


_PROCESS_KEY = secrets.token_bytes(32)  # used when no key is configured: pseudonyms last as long as the process
_told_about_key = False


@dataclass(frozen=True)
class TelemetryOptions:
    """What telemetry reads from settings: the service name and TELEMETRY__ENDUSER_ID(_KEY)."""

    service_name: str = "secure-mcp-server"
    enduser_id: Literal["hashed", "raw", "off"] = "hashed"
    enduser_id_key: SecretStr | None = None
    production: bool = False


def _enduser_key(options: TelemetryOptions, tracing: bool) -> bytes:
    """The configured pseudonym key; without one, this process's, said once (warning in production) when it shows."""
    global _told_about_key
    configured = options.enduser_id_key
    if configured is not None:
        return configured.get_secret_value().encode()
    if tracing and options.enduser_id == "hashed" and not _told_about_key:
        _told_about_key = True
        log.log(
            logging.WARNING if options.production else logging.INFO,
            "enduser.id pseudonyms use a random per-process key: they change on restart and differ between "
            "processes; set TELEMETRY__ENDUSER_ID_KEY (Key Vault: telemetry--enduser-id-key) to keep them stable",
        )
    return b""


_installed: tuple[TracerProvider | None, MeterProvider | None] | None = None


def setup_telemetry(options: TelemetryOptions, env: Mapping[str, str] | None = None) -> Telemetry:
    """Install providers from `OTEL_*` once per process; report what is live (an embedding process's own
    providers, e.g. `opentelemetry-instrument` or a test harness, count too)."""
    global _installed
    env = os.environ if env is None else env
    mode = options.enduser_id
    if _flag(env.get("OTEL_SDK_DISABLED")):
        return Telemetry(tracing=False, metrics=False, enduser_id=mode, enduser_key=_enduser_key(options, False))
    if _installed is None:
        tracer_provider, meter_provider = providers_from_env(options.service_name, env)
        if tracer_provider is not None:
            trace.set_tracer_provider(tracer_provider)
        if meter_provider is not None:
            metrics.set_meter_provider(meter_provider)
        _installed = (tracer_provider, meter_provider)
        if (env.get("OTEL_LOGS_EXPORTER") or "none") != "none":
            log.warning("OTEL_LOGS_EXPORTER is ignored: logs are JSON lines on stderr, with trace and span ids")
    tracing = _live(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))
    metering = _live(metrics.get_meter_provider(), (metrics.NoOpMeterProvider,), proxy_name="_ProxyMeterProvider")
    return Telemetry(
        tracing=tracing,
        metrics=metering,
        enduser_id=mode,
        owned=[p for p in _installed if p is not None],
        enduser_key=_enduser_key(options, tracing),
    )


def _untraced(scope: Scope) -> bool:
    """Health probes, and any request with a query string: this server takes none, and FastAPI would record
    `url.query` on the span (a token sent there must never be exported)."""
    return bool(scope.get("query_string")) or scope.get("path") in _PROBES


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _live(provider: object, off: tuple[type, ...], proxy_name: str = "") -> bool:
    return not isinstance(provider, off) and type(provider).__name__ != proxy_name
