"""One `Settings` for the whole server: init args, environment, Key Vault, `.env`, a secrets directory, defaults.

Insecure production config is refused. Secret settings are `SecretStr`: masked in every repr and dump. The sections
live in `azuread.py`, `sections.py` and `serving.py`, the sources in `sources.py`; everything a caller needs is
importable from here.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.core.hosts import is_loopback_host
from app.settings.authserver import AuthServerSettings, PreRegisteredClient
from app.settings.azuread import AzureAdSettings, refuse_missing_credentials
from app.settings.connect import ConnectSettings
from app.settings.fields import DEV_CLIENT_ID, DEV_TENANT_ID, describe_invalid, secret_env_names
from app.settings.keyvault import KeyVaultSettings
from app.settings.production import refuse_insecure_production
from app.settings.sections import (
    AuditSettings,
    ContentSafetySettings,
    DevIssuerSettings,
    McpSettings,
    RoutesSettings,
    TelemetrySettings,
    ToolsSettings,
)
from app.settings.servers import (
    NamedServerSettings,
    Served,
    UnknownServerError,
    check_names,
    find,
    refuse_shared,
    served,
)
from app.settings.serving import RateLimitSettings, SecuritySettings, ServerSettings
from app.settings.sources import DEFAULT_SECRETS_DIR, bootstrap_keyvault, layered_sources, unknown_settings
from app.settings.stdio import StdioSettings
from app.settings.tasks import TasksSettings

__all__ = [
    "DEFAULT_SECRETS_DIR",
    "DEV_CLIENT_ID",
    "DEV_TENANT_ID",
    "AuditSettings",
    "AuthServerSettings",
    "AzureAdSettings",
    "ConnectSettings",
    "ContentSafetySettings",
    "DevIssuerSettings",
    "KeyVaultSettings",
    "McpSettings",
    "NamedServerSettings",
    "PreRegisteredClient",
    "RateLimitSettings",
    "RoutesSettings",
    "SecuritySettings",
    "Served",
    "ServerSettings",
    "Settings",
    "StdioSettings",
    "TasksSettings",
    "TelemetrySettings",
    "ToolsSettings",
    "UnknownServerError",
    "describe_invalid",
    "is_loopback_host",
    "layered_sources",
    "secret_env_names",
]


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
        use_attribute_docstrings=True,
    )

    app_env: Literal["development", "production"] = "production"
    """`development` or `production`. Production refuses to start without the Entra settings and refuses insecure
    values."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the server's own logs."""
    log_format: Literal["json", "text"] | None = Field(
        default=None, json_schema_extra={"production": "json", "development": "text", "effective": "log_style"}
    )
    """`json` (one object per line on stderr, with trace and span ids, for a log pipeline) or `text` (one readable line
    per event, for a person at a console). Default: `json` in production, `text` in development."""
    azuread: AzureAdSettings = Field(default_factory=AzureAdSettings)
    """This server's Entra ID app registration."""
    mcp: McpSettings = Field(default_factory=McpSettings)
    """The MCP endpoint."""
    tools: ToolsSettings = Field(default_factory=ToolsSettings)
    """Tool discovery."""
    routes: RoutesSettings = Field(default_factory=RoutesSettings)
    """FastAPI routes beside MCP."""
    dev_issuer: DevIssuerSettings = Field(default_factory=DevIssuerSettings)
    """The embedded dev issuer."""
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    """Telemetry."""
    audit: AuditSettings = Field(default_factory=AuditSettings)
    """The audit log."""
    content_safety: ContentSafetySettings = Field(default_factory=ContentSafetySettings)
    """Content safety."""
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    """The network edge and resource limits."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    """The process."""
    keyvault: KeyVaultSettings = Field(default_factory=KeyVaultSettings)
    """Azure Key Vault."""
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    """Rate limits."""
    auth_server: AuthServerSettings = Field(default_factory=AuthServerSettings)
    """The authorization-server facade."""
    connect: ConnectSettings = Field(default_factory=ConnectSettings)
    """The connect page: on-behalf-of consent recovered through URL-mode elicitation."""
    stdio: StdioSettings = Field(default_factory=StdioSettings)
    """Local mode over stdio (`python -m app stdio`)."""
    tasks: TasksSettings = Field(default_factory=TasksSettings)
    """Long-running tools (the MCP Tasks extension)."""
    servers: dict[str, NamedServerSettings] = Field(default_factory=dict)
    """More MCP servers in this app, by name: `SERVERS__HR__PATH=/hr/mcp`, `SERVERS__HR__CLIENT_ID=...`
    (docs/servers.md). None by default: one server, `tools/` at `MCP__PATH`."""
    allow_unknown_settings: bool = False
    """Start even when the environment or `.env` has a `SECTION__NAME` variable of a known section that names no
    setting (a typo such as `AZUREAD__TENANTID`, which otherwise stops startup naming the closest valid name)."""

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
        keyvault = bootstrap_keyvault(dotenv_settings, env_settings, init_settings)
        return layered_sources(
            settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings, keyvault
        )

    @model_validator(mode="after")
    def _refuse_unknown(self) -> Settings:
        if (problem := unknown_settings()) and not self.allow_unknown_settings:
            raise ValueError(problem)
        return self

    _server_names = field_validator("servers")(check_names)

    @model_validator(mode="after")
    def _servers_are_distinct(self) -> Settings:
        refuse_shared(self.served(), production=self.app_env == "production", servers=self.servers)
        return self

    def served(self) -> list[Served]:
        """Every MCP server this app serves, the first (MCP__*, AZUREAD__*, `tools/`) first."""
        return served(self)

    def served_one(self, key: str = "") -> Served:
        """One server by its key (`SERVERS__{KEY}`; "" the first); `UnknownServerError` when none has it."""
        return find(self.served(), key)

    @model_validator(mode="after")
    def _sessions_need_one_worker(self) -> Settings:
        if not self.mcp.stateless and self.workers > 1:
            raise ValueError(
                f"MCP__STATELESS=false (sessions, the default) with {self.workers} workers: a session lives in one "
                "worker's memory and the others would answer it 404. Run one worker per replica and scale replicas "
                "behind Mcp-Session-Id affinity (docs/deployment.md), or set MCP__STATELESS=true"
            )
        if self.mcp.event_store == "redis" and not self.redis_uri:
            raise ValueError("MCP__EVENT_STORE=redis needs RATE_LIMIT__STORAGE_URI=redis://... (the shared Redis)")
        if self.mcp.task_store == "redis" and not self.redis_uri:
            raise ValueError("MCP__TASK_STORE=redis needs RATE_LIMIT__STORAGE_URI=redis://... (the shared Redis)")
        refuse_missing_credentials(self)
        return self

    @property
    def redis_uri(self) -> str | None:
        """The shared Redis (RATE_LIMIT__STORAGE_URI), as redis-py takes it; None when counts are in memory."""
        uri = self.rate_limit.storage_uri.get_secret_value() if self.rate_limit.storage_uri else ""
        uri = uri.removeprefix("async+")
        if not uri.startswith("redis"):
            return None
        return "unix://" + uri.removeprefix("redis+unix://") if uri.startswith("redis+unix://") else uri

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.app_env == "production":
            refuse_insecure_production(self)
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
    def log_style(self) -> Literal["json", "text"]:
        """The effective LOG_FORMAT: as set, else `json` in production and `text` in development."""
        return self.log_format or ("json" if self.app_env == "production" else "text")

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
            scheme = "https" if self.dev_issuer.tls else "http"
            return f"{scheme}://{self.dev_issuer.host}:{self.dev_issuer.port}/"
        return self.azuread.instance

    @property
    def resource_host(self) -> str:
        """MCP__RESOURCE_HOST; unset (development only), where this process listens (SERVER__HOST, SERVER__PORT)."""
        host = "127.0.0.1" if self.server.host in ("0.0.0.0", "::", "") else self.server.host  # noqa: S104
        return self.mcp.resource_host or f"http://{f'[{host}]' if ':' in host else host}:{self.server.port}"

    @property
    def resource(self) -> str:
        """The protected resource identifier (RFC 9728 `resource`)."""
        return f"{self.resource_host}{self.mcp.path}"

    @property
    def auth_server_issuer(self) -> str:
        """The facade's issuer (AUTH_SERVER__ENABLED): this server's origin, as clients reach it."""
        return self.resource_host

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
    def app_id_uri(self) -> str:
        """The Application ID URI: AZUREAD__APP_ID_URI (`{client_id}` filled in), else the resource identifier."""
        return (self.azuread.app_id_uri or self.resource).replace("{client_id}", self.client_id)

    @property
    def audiences(self) -> list[str]:
        """Token audiences this server accepts: its own client id (v2 tokens) and its App ID URI (v1 tokens)."""
        if self.azuread.audiences:
            return list(self.azuread.audiences)
        return [self.client_id, self.app_id_uri]

    def scope_uri(self, scope: str) -> str:
        """The form clients request a scope in from Entra: `{app_id_uri}/{scope}`."""
        return scope if "://" in scope else f"{self.app_id_uri}/{scope}"
