"""Settings of the serving process: the network edge and request limits, rate limits, and how uvicorn runs."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from app.settings.fields import HOST_RE, ORIGIN_RE, CsvList, Section, allow_list_entry, csv_list, rate_string


class SecuritySettings(Section):
    """The network edge (which peers may set forwarded headers, which Host and Origin values are served), and
    resource limits on every request: body size and read time, tool run time, concurrent tool calls, tool result size,
    long-lived streams."""

    trusted_proxies: CsvList = Field(default_factory=list)
    """IPs or CIDRs of your reverse proxies; only their `X-Forwarded-*` headers are believed. Empty: none."""
    allowed_hosts: CsvList | None = None
    """Host header values served (`host`, `host:port`, `host:*`); others get 421. Empty: the `MCP__RESOURCE_HOST` host
    (plus loopback in development)."""
    allowed_origins: CsvList | None = None
    """Origin values accepted when a request carries one (`https://host[:port]`); others get 403. Empty:
    `MCP__RESOURCE_HOST` (plus loopback in development)."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Request body cap in bytes; larger bodies get 413 before authentication."""
    tool_timeout_seconds: float = Field(default=30.0, gt=0)
    """Default tool run time in seconds (`@tool(timeout=...)` overrides it); past it the call is cancelled and becomes
    a tool error."""
    max_concurrent_calls: int = Field(default=128, ge=1)
    """Tool calls in flight per process; more get 503 at once."""
    max_concurrent_calls_per_principal: int = Field(default=16, ge=1)
    """Tool calls one principal may have in flight per process; more get 429 at once."""
    max_result_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Tool result cap in bytes (JSON on the wire); a larger result becomes a tool error."""
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """A request body must arrive in full within this many seconds of its headers; otherwise 408 and the connection
    closes."""
    max_streams_per_principal: int = Field(default=4, ge=1)
    """Long-lived streams (2026-07-28 `subscriptions/listen`, stateful `GET /mcp`) one principal may hold open per
    process; more get 429 at once."""
    max_streams: int = Field(default=256, ge=1, le=1024)
    """Long-lived streams open per process; more get 503 at once. At most 1024, the SDK's own listen-stream limit, so
    the SDK's "limit reached" is never what a caller sees."""
    max_stream_seconds: float = Field(default=3600.0, ge=1, le=86400)
    """A long-lived stream is ended cleanly after this many seconds (a listen stream with its graceful-close result);
    clients open a new one."""

    max_sessions: int = Field(default=2000, ge=1, le=10_000)
    """Handshake-era sessions open per process (about 50 KiB each, so about 100 MiB at the default); a request that
    would open another gets 503 at once. Sized to fit the 512Mi pod of config/k8s with room to spare."""
    max_sessions_per_principal: int = Field(default=20, ge=1, le=10_000)
    """Handshake-era sessions one principal (a user or an app, across its clients) may hold open per process; one more
    gets 429 (never queued, nothing evicted) until it ends one (DELETE) or one expires idle."""
    session_idle_seconds: float = Field(default=1800.0, ge=1, le=86400)
    """A handshake-era session with no request for this many seconds is closed; its id then gets 404 and the client
    opens a new one."""

    _split = field_validator("trusted_proxies", "allowed_hosts", "allowed_origins", mode="before")(csv_list)

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        try:
            return [str(ipaddress.ip_network(item)) for item in value]
        except ValueError:
            raise ValueError(
                "SECURITY__TRUSTED_PROXIES takes IP addresses or CIDRs like 10.0.0.0/8 (host bits zero)"
            ) from None

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str] | None) -> list[str] | None:
        if not value:  # an empty value means "the default", never "refuse everything"
            return None
        return [allow_list_entry(item, HOST_RE, "SECURITY__ALLOWED_HOSTS", "host[:port]") for item in value]

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str] | None) -> list[str] | None:
        if not value:
            return None
        return [allow_list_entry(item, ORIGIN_RE, "SECURITY__ALLOWED_ORIGINS", "https://host[:port]") for item in value]


class ServerSettings(Section):
    """How `python -m app` runs uvicorn: bind address, worker processes, connection limits, graceful shutdown."""

    host: str = "127.0.0.1"
    """Bind address of `python -m app`; use 0.0.0.0 inside a container."""
    port: int = Field(default=8000, ge=1, le=65535)
    """Port of `python -m app`."""
    workers: int = Field(default=1, ge=1, le=64)
    """uvicorn worker processes."""
    drain_seconds: float = Field(default=0.0, ge=0, le=300)
    """After SIGTERM, answer `/readyz` with 503 (still serving) this long, so the edge stops routing here first."""
    shutdown_grace_seconds: int = Field(default=20, ge=0, le=3600)
    """Then stop accepting, and let in-flight requests finish for at most this long."""
    gc_threshold: int = Field(default=10_000, ge=0, le=1_000_000)
    """Allocations between young-generation garbage collections (Python's default: 700); 0 keeps Python's default."""
    limit_concurrency: int = Field(default=1000, ge=1)
    """Open connections (or requests being served) per worker before uvicorn answers new requests with 503."""
    keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    """uvicorn closes a keep-alive connection idle for this long; keep a proxy's upstream keep-alive shorter."""


_STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")


class RateLimitSettings(Section):
    """Request rate limits: per authenticated principal, per client IP while unauthenticated, and where counts live."""

    default: str = "120/minute"
    """Per authenticated principal, on every MCP request (`limits` syntax; `;` joins windows, e.g.
    `10/second;1000/hour`)."""
    unauthenticated: str = "30/minute"
    """Per client IP, for requests that do not authenticate (no token, a failing token, the metadata document)."""
    storage_uri: SecretStr | None = None
    """Where counts live: `memory://` (one replica) or `redis://host:6379/0` (`rediss://` for TLS) to share them across
    replicas. A secret, since it can carry a password."""
    on_storage_error: Literal["fail_open", "fail_closed"] = "fail_open"
    """When Redis is unreachable: `fail_open` (per-process in-memory limits) or `fail_closed` (503 to everyone)."""
    strategy: Literal["moving-window", "sliding-window-counter", "fixed-window"] = "moving-window"
    """`moving-window` (exact; one entry per request), `sliding-window-counter` or `fixed-window` (O(1) per key)."""

    _rates = field_validator("default", "unauthenticated")(rate_string)

    @field_validator("storage_uri")
    @classmethod
    def _storage_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        uri = value.get_secret_value() if value is not None else "memory://"
        scheme = uri.split("://", 1)[0].lower().removeprefix("async+")
        if "://" not in uri or scheme not in _STORAGE_SCHEMES:
            raise ValueError("RATE_LIMIT__STORAGE_URI must be memory:// or redis://host:port[/db] (rediss:// for TLS)")
        return value
