"""The settings sections: one model per `SECTION__` prefix of the environment."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

from app.settings.fields import (
    HOST_RE,
    ORIGIN_RE,
    CsvList,
    SecretList,
    allow_list_entry,
    csv_list,
    is_loopback_host,
    rate_string,
)


class AzureAdSettings(BaseModel):
    """This server's Entra ID app registration and the tenant(s) it trusts."""

    instance: str = "https://login.microsoftonline.com/"
    tenant_id: str | None = None
    client_id: str | None = None
    audiences: CsvList | None = None
    accept_v1: bool = True
    allowed_tenants: CsvList = Field(default_factory=list)
    jwks_refresh_seconds: float = Field(default=60.0, gt=0, le=60.0)
    jwks_max_age_seconds: float = Field(default=24 * 3600.0, gt=0)
    clock_skew_seconds: int = Field(default=60, ge=0, le=300)
    # This server's own credential, used only for on-behalf-of token exchange (app/auth/downstream.py).
    client_secret: SecretStr | None = None
    client_certificate_path: Path | None = None

    _split_lists = field_validator("audiences", "allowed_tenants", mode="before")(csv_list)

    @field_validator("client_secret", "client_certificate_path", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("instance")
    @classmethod
    def _instance_is_https_or_loopback(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname)):
            return value if value.endswith("/") else value + "/"
        raise ValueError("AZUREAD__INSTANCE must be https:// (plain http is accepted only for a loopback host)")

    @property
    def multi_tenant(self) -> bool:
        return (self.tenant_id or "").lower() in {"organizations", "common"}


class McpSettings(BaseModel):
    """The MCP endpoint and how it is identified as an OAuth protected resource."""

    path: str = "/mcp"
    resource_host: str | None = None
    stateless: bool = True
    json_response: bool = False
    required_scopes: CsvList = Field(default_factory=list)
    required_roles: CsvList = Field(default_factory=list)
    server_name: str = "secure-mcp-server"
    request_state_keys: SecretList = Field(default_factory=list)

    _split_scopes = field_validator("required_scopes", "required_roles", "request_state_keys", mode="before")(csv_list)

    @field_validator("request_state_keys")
    @classmethod
    def _keys_are_long(cls, value: list[SecretStr]) -> list[SecretStr]:
        for index, key in enumerate(value):
            if len(key.get_secret_value().encode()) < 32:
                raise ValueError(
                    f"MCP__REQUEST_STATE_KEYS[{index}] is shorter than 32 bytes; generate one with "
                    '`python -c "import secrets; print(secrets.token_hex(32))"`'
                )
        return value

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or len(value) < 2:
            raise ValueError("MCP__PATH must start with '/' and not end with '/', e.g. /mcp")
        return value

    @field_validator("resource_host")
    @classmethod
    def _resource_host_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path not in {"", "/"}:
            raise ValueError("MCP__RESOURCE_HOST must be a base URL like https://mcp.contoso.com (no path)")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("MCP__RESOURCE_HOST must be https:// (plain http is accepted only for a loopback host)")
        # RFC 9728 / MCP: clients compare the resource code point by code point, so normalise once here.
        return f"{parts.scheme}://{parts.netloc.lower()}"


class SecuritySettings(BaseModel):
    """The network edge (which peers may set forwarded headers, which Host and Origin values are served), and
    resource limits on every request: body size, tool run time, concurrent tool calls, tool result size."""

    trusted_proxies: CsvList = Field(default_factory=list)
    allowed_hosts: CsvList | None = None
    allowed_origins: CsvList | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    tool_timeout_seconds: float = Field(default=30.0, gt=0)
    max_concurrent_calls: int = Field(default=128, ge=1)
    max_concurrent_calls_per_principal: int = Field(default=16, ge=1)
    max_result_bytes: int = Field(default=1024 * 1024, ge=1024)

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


class ServerSettings(BaseModel):
    """How `python -m app` runs uvicorn: bind address, worker processes, graceful shutdown."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    # After SIGTERM: answer /readyz 503 (still serving) this long, so the edge stops routing here first.
    drain_seconds: float = Field(default=0.0, ge=0, le=300)
    # Then stop accepting and let in-flight requests finish for at most this long.
    shutdown_grace_seconds: int = Field(default=20, ge=0, le=3600)
    # Allocations between young-generation garbage collections (Python's default: 700). Requests leave a little
    # cyclic garbage; at 700 the collector re-walks every in-flight request's objects many times a second.
    # 0 keeps Python's default.
    gc_threshold: int = Field(default=10_000, ge=0, le=1_000_000)


class ToolsSettings(BaseModel):
    """Where tools are discovered and how `tools/list` treats callers."""

    dir: Path = Path(__file__).resolve().parents[2] / "tools"
    filter_list: bool = True
    # tools.lock pins served tool metadata (see app/server/toolslock.py); None = tools.lock beside the tools directory
    lock_file: Path | None = None
    # None = enforce in production, warn in development
    lock_mode: Literal["enforce", "warn", "off"] | None = None
    # Worker threads for plain `def` tools (async tools run on the event loop); more calls wait for a free one.
    threads: int = Field(default=40, ge=1, le=1024)

    @property
    def lock_path(self) -> Path:
        return self.lock_file or self.dir.resolve().parent / "tools.lock"


class ContentSafetySettings(BaseModel):
    """The optional content-safety check `app.server.content.untrusted()` runs on external content (off by default)."""

    # off | azure | your own check as "package.module:factory" (a callable taking Settings, see app/server/content.py)
    provider: str = "off"
    endpoint: str | None = None  # https://<name>.cognitiveservices.azure.com/
    key: SecretStr | None = None  # empty: Microsoft Entra ID (DefaultAzureCredential / managed identity)
    # Azure severity (0-7) at or above which content is withheld from the model
    threshold: int = Field(default=4, ge=0, le=7)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @field_validator("provider")
    @classmethod
    def _provider_shape(cls, value: str) -> str:
        value = value.strip()
        if value in {"off", "azure"} or re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
            return value
        raise ValueError("CONTENT_SAFETY__PROVIDER must be off, azure, or package.module:factory")

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_https_or_loopback(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname)):
            return value.strip()
        raise ValueError("CONTENT_SAFETY__ENDPOINT must be https:// (plain http is accepted only for a loopback host)")


_STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")


class RateLimitSettings(BaseModel):
    """Request rate limits: per authenticated principal, per client IP while unauthenticated, and where counts live."""

    default: str = "120/minute"
    unauthenticated: str = "30/minute"
    # None = in process memory. A secret, since a Redis URI can carry a password (so Key Vault can supply it).
    storage_uri: SecretStr | None = None
    # fail_open: a storage outage falls back to per-process in-memory limits (see README for why this is the default).
    on_storage_error: Literal["fail_open", "fail_closed"] = "fail_open"
    # moving-window is exact (at most N in any window) but keeps one entry per hit; the others are O(1) per key.
    strategy: Literal["moving-window", "sliding-window-counter", "fixed-window"] = "moving-window"

    _rates = field_validator("default", "unauthenticated")(rate_string)

    @field_validator("storage_uri")
    @classmethod
    def _storage_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        uri = value.get_secret_value() if value is not None else "memory://"
        scheme = uri.split("://", 1)[0].lower().removeprefix("async+")
        if "://" not in uri or scheme not in _STORAGE_SCHEMES:
            raise ValueError("RATE_LIMIT__STORAGE_URI must be memory:// or redis://host:port[/db] (rediss:// for TLS)")
        return value


class DevIssuerSettings(BaseModel):
    """The embedded issuer that stands in for Entra in development."""

    host: str = "127.0.0.1"
    port: int = 8001
    key_dir: Path = Path(".dev")
    # false: trust a dev issuer already serving on host:port (`python -m app.auth.dev_issuer serve`), e.g. for
    # workers > 1
    embedded: bool = True


class TelemetrySettings(BaseModel):
    """What the framework adds to OpenTelemetry; exporters themselves come from the standard `OTEL_*` variables."""

    # `enduser.id` on spans: a sha256 of the caller's object id (default), the raw oid, or nothing.
    enduser_id: Literal["hashed", "raw", "off"] = "hashed"


class AuditSettings(BaseModel):
    """The audit log: where hash-chained records go."""

    sink: str = "stdout"

    @field_validator("sink")
    @classmethod
    def _sink_shape(cls, value: str) -> str:
        value = value.strip()
        if value in {"stdout", "off"} or (value.startswith("file:") and len(value) > len("file:")):
            return value
        raise ValueError("AUDIT__SINK must be stdout, off, or file:/path/to/audit.jsonl")
