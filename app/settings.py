"""One `Settings` for the whole server: init args, environment, Key Vault, `.env`, a secrets directory, defaults.

Insecure production config is refused. Secret settings are `SecretStr`: masked in every repr and dump.
"""

from __future__ import annotations

import ipaddress
import os
import re
import typing
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import BaseModel, Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# Stable identities for the embedded dev issuer: it stands in for one Entra tenant and one app registration.
DEV_TENANT_ID = "00000000-0000-4000-8000-000000000de0"
DEV_CLIENT_ID = "11111111-1111-4111-8111-111111111111"


def _csv(value: object) -> object:
    """Accept `a,b c` from the environment as well as a JSON list or a real list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part for part in text.replace(",", " ").split() if part]
    return value


CsvList = Annotated[list[str], NoDecode]
SecretList = Annotated[list[SecretStr], NoDecode]
DEFAULT_SECRETS_DIR = Path("/run/secrets")


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback IPs: the only hosts allowed over plain http."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
    # This server's own credential, used only for on-behalf-of token exchange (app/downstream.py).
    client_secret: SecretStr | None = None
    client_certificate_path: Path | None = None

    _split_lists = field_validator("audiences", "allowed_tenants", mode="before")(_csv)

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

    _split_scopes = field_validator("required_scopes", "required_roles", "request_state_keys", mode="before")(_csv)

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


_HOST = r"(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:([0-9]{1,5}|\*))?"
_HOST_RE = re.compile(_HOST)
_ORIGIN_RE = re.compile(rf"https?://{_HOST}")


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

    _split = field_validator("trusted_proxies", "allowed_hosts", "allowed_origins", mode="before")(_csv)

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
        return [_pattern(item, _HOST_RE, "SECURITY__ALLOWED_HOSTS", "host[:port]") for item in value]

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str] | None) -> list[str] | None:
        if not value:
            return None
        return [_pattern(item, _ORIGIN_RE, "SECURITY__ALLOWED_ORIGINS", "https://host[:port]") for item in value]


def _pattern(item: str, pattern: re.Pattern[str], env: str, shape: str) -> str:
    """One allow-list entry, lower-cased; `:*` accepts any port, as in the SDK's transport security."""
    value = item.strip().lower()
    if not pattern.fullmatch(value):
        raise ValueError(f"{env} entries look like {shape} or {shape.split('[')[0]}:*, got {item[:60]!r}")
    return value


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

    dir: Path = Path(__file__).resolve().parent.parent / "tools"
    filter_list: bool = True
    # tools.lock pins served tool metadata (see app/toolslock.py); None = tools.lock beside the tools directory
    lock_file: Path | None = None
    # None = enforce in production, warn in development
    lock_mode: Literal["enforce", "warn", "off"] | None = None
    # Worker threads for plain `def` tools (async tools run on the event loop); more calls wait for a free one.
    threads: int = Field(default=40, ge=1, le=1024)

    @property
    def lock_path(self) -> Path:
        return self.lock_file or self.dir.resolve().parent / "tools.lock"


class ContentSafetySettings(BaseModel):
    """The optional content-safety check `app.content.untrusted()` runs on external content (off by default)."""

    # off | azure | your own check as "package.module:factory" (a callable taking Settings, see app/content.py)
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


def _rate(value: str) -> str:
    """A `limits` rate string such as `120/minute` or `10/second;1000/hour`, checked at startup."""
    try:
        if not parse_many(value):
            raise ValueError
    except ValueError:
        raise ValueError(f"{value!r} is not a rate limit; use e.g. 120/minute or 10/second;1000/hour") from None
    return value


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

    _rates = field_validator("default", "unauthenticated")(_rate)

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
    # false: trust a dev issuer already serving on host:port (`python -m app.dev_issuer serve`), e.g. for workers > 1
    embedded: bool = True


class KeyVaultSettings(BaseModel):
    """Azure Key Vault as a settings source (read before the vault, from init args, environment and `.env`)."""

    url: str | None = None
    credential: str = "default"
    managed_identity_client_id: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    refresh_seconds: float | None = Field(default=None, gt=0)
    ca_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _url_is_https(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("KEYVAULT__URL must be https://<name>.vault.azure.net/ (the SDK refuses plain http)")
        return value.strip()

    @field_validator("credential")
    @classmethod
    def _known_credential(cls, value: str) -> str:
        from app.keyvault import CREDENTIALS

        value = value.strip().lower()
        if value not in CREDENTIALS:
            raise ValueError(f"KEYVAULT__CREDENTIAL must be one of {', '.join(sorted(CREDENTIALS))}")
        return value


def _has_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_has_secret(arg) for arg in typing.get_args(annotation))


def secret_env_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Env-style names (`azuread__client_secret`) of every secret field, nested sections included."""
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if _has_secret(annotation):
            names.append(prefix + name)
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += secret_env_names(annotation, f"{prefix}{name}__")
    return names


def _bootstrap_keyvault(*sources: PydanticBaseSettingsSource) -> KeyVaultSettings:
    """KEYVAULT__* must be known before the vault source runs: read them from the sources above the vault."""
    merged: dict[str, Any] = {}
    for source in sources:  # lowest precedence first
        value = source().get("keyvault")
        if isinstance(value, KeyVaultSettings):
            value = value.model_dump(exclude_unset=True)
        if isinstance(value, dict):
            merged.update(value)
    return KeyVaultSettings.model_validate(merged)


def layered_sources(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
    dotenv_settings: PydanticBaseSettingsSource,
    file_secret_settings: PydanticBaseSettingsSource,
    keyvault: KeyVaultSettings,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """The documented order, highest first: init args, environment, Key Vault, `.env`, secrets dir (defaults last)."""
    from app.keyvault import BoundedKeyVaultSource

    if getattr(file_secret_settings, "secrets_dir", None) is None and DEFAULT_SECRETS_DIR.is_dir():
        file_secret_settings = NestedSecretsSettingsSource(file_secret_settings, secrets_dir=DEFAULT_SECRETS_DIR)
    else:  # one file per setting, named like the env var: /run/secrets/azuread__client_secret
        file_secret_settings = NestedSecretsSettingsSource(file_secret_settings)
    vault = (BoundedKeyVaultSource(settings_cls, keyvault),) if keyvault.url else ()
    return (init_settings, env_settings, *vault, dotenv_settings, file_secret_settings)


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


class Settings(BaseSettings):
    """All configuration. Env names are `SECTION__FIELD`, e.g. `AZUREAD__TENANT_ID`."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        secrets_nested_delimiter="__",
        secrets_dir_missing="ok",
    )

    app_env: Literal["development", "production"] = "production"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    azuread: AzureAdSettings = Field(default_factory=AzureAdSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    tools: ToolsSettings = Field(default_factory=ToolsSettings)
    dev_issuer: DevIssuerSettings = Field(default_factory=DevIssuerSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    content_safety: ContentSafetySettings = Field(default_factory=ContentSafetySettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    keyvault: KeyVaultSettings = Field(default_factory=KeyVaultSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)

    _init_values: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self._init_values = values  # kept so `reload()` re-reads every source with the same arguments

    @property
    def init_values(self) -> dict[str, Any]:
        return dict(self._init_values)

    def reload(self) -> Settings:
        """A fresh read of every source (used by the secret refresher); raises like the first read."""
        return type(self)(**self._init_values)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        keyvault = _bootstrap_keyvault(dotenv_settings, env_settings, init_settings)
        return layered_sources(
            settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings, keyvault
        )

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.app_env != "production":
            return self
        missing = [
            env
            for env, value in (
                ("AZUREAD__TENANT_ID", self.azuread.tenant_id),
                ("AZUREAD__CLIENT_ID", self.azuread.client_id),
                ("MCP__RESOURCE_HOST", self.mcp.resource_host),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                f"production mode needs {', '.join(missing)}; set them (see .env.example) "
                "or set APP_ENV=development to run with the embedded dev issuer"
            )
        if self.audit.sink == "off":
            raise ValueError("AUDIT__SINK=off is refused in production; use stdout or file:/path")
        if self.azuread.multi_tenant and not self.azuread.allowed_tenants:
            raise ValueError("a multi-tenant AZUREAD__TENANT_ID needs AZUREAD__ALLOWED_TENANTS in production")
        if self.tools.lock_mode == "off":
            raise ValueError("TOOLS__LOCK_MODE=off is for development; production accepts enforce or warn")
        if self.content_safety.provider == "azure" and not self.content_safety.endpoint:
            raise ValueError("CONTENT_SAFETY__PROVIDER=azure needs CONTENT_SAFETY__ENDPOINT")
        if not self.mcp.request_state_keys and (self.mcp.stateless or self.workers > 1):
            raise ValueError(
                "production with MCP__STATELESS=true or more than one worker needs MCP__REQUEST_STATE_KEYS "
                "(Key Vault secret mcp--request-state-keys): a shared key ring, so every replica can unseal "
                'requestState; generate a key with `python -c "import secrets; print(secrets.token_hex(32))"`'
            )
        return self

    @property
    def workers(self) -> int:
        """Worker processes: SERVER__WORKERS (`python -m app`) or WEB_CONCURRENCY (uvicorn, gunicorn)."""
        try:
            concurrency = int(os.environ.get("WEB_CONCURRENCY", "1"))
        except ValueError:
            concurrency = 1
        return max(1, self.server.workers, concurrency)

    @property
    def tools_lock_mode(self) -> Literal["enforce", "warn", "off"]:
        """The effective tools.lock mode: as set, else enforce in production and warn in development."""
        return self.tools.lock_mode or ("enforce" if self.app_env == "production" else "warn")

    @cached_property
    def dev_issuer_active(self) -> bool:
        """The dev issuer runs only in development, and only when no Entra app is configured."""
        return self.app_env == "development" and not (self.azuread.tenant_id and self.azuread.client_id)

    @property
    def tenant_id(self) -> str:
        return self.azuread.tenant_id or DEV_TENANT_ID

    @property
    def client_id(self) -> str:
        return self.azuread.client_id or DEV_CLIENT_ID

    @property
    def instance(self) -> str:
        if self.dev_issuer_active:
            return f"http://{self.dev_issuer.host}:{self.dev_issuer.port}/"
        return self.azuread.instance

    @property
    def resource_host(self) -> str:
        return self.mcp.resource_host or "http://127.0.0.1:8000"

    @property
    def resource(self) -> str:
        """The protected resource identifier (RFC 9728 `resource`)."""
        return f"{self.resource_host}{self.mcp.path}"

    @property
    def resource_metadata_url(self) -> str:
        return f"{self.resource_host}/.well-known/oauth-protected-resource{self.mcp.path}"

    @property
    def allowed_hosts(self) -> list[str]:
        """Host header values served: SECURITY__ALLOWED_HOSTS, else the resource host's (+ loopback in development)."""
        if self.security.allowed_hosts is not None:
            return list(self.security.allowed_hosts)
        parts = urlsplit(self.resource_host)
        hosts = [parts.netloc]
        if parts.port is None:  # some clients send the default port explicitly
            hosts.append(f"{parts.netloc}:{443 if parts.scheme == 'https' else 80}")
        if self.app_env == "development":
            hosts += ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        return hosts

    @property
    def allowed_origins(self) -> list[str]:
        """Origin values served (an absent Origin is fine): SECURITY__ALLOWED_ORIGINS, else the resource host."""
        if self.security.allowed_origins is not None:
            return list(self.security.allowed_origins)
        origins = [self.resource_host]
        if self.app_env == "development":
            origins += ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
        return origins

    @property
    def audiences(self) -> list[str]:
        """Token audiences this server accepts: its own client id, its App ID URI, and its resource URL."""
        if self.azuread.audiences:
            return list(self.azuread.audiences)
        return [self.client_id, f"api://{self.client_id}", self.resource]

    def scope_uri(self, scope: str) -> str:
        """The form clients request a scope in from Entra: `api://{client_id}/{scope}`."""
        return scope if "://" in scope else f"api://{self.client_id}/{scope}"


def describe_invalid(exc: ValidationError) -> str:
    """One line naming every refused setting, for a startup error (no traceback, no values)."""
    return "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
