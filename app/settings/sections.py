"""The settings sections for the MCP endpoint, tools, routes, content safety, the dev issuer, telemetry and audit
(this server's Entra app registration is `azuread.py`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from app.core.hosts import is_loopback_host
from app.settings.fields import DEV_PUBLIC_CLIENT_ID, CsvList, SecretList, Section, acyclic, csv_list, scope_closure


class McpSettings(Section):
    """The MCP endpoint and how it is identified as an OAuth protected resource."""

    path: str = "/mcp"
    """The MCP endpoint's path."""
    resource_host: str | None = Field(
        default=None,
        json_schema_extra={"development": "http://{SERVER__HOST}:{SERVER__PORT}", "effective": "resource_host"},
    )
    """The public base URL clients use (scheme, host and port; no path). The resource id is this plus `MCP__PATH`.
    Required in production; in development it defaults to where the server listens, `http://{SERVER__HOST}:{SERVER__PORT}`
    (`make run PORT=8010` sets both)."""
    stateless: bool = False
    """False (default): handshake-era clients (2025-06-18, 2025-11-25) get `Mcp-Session-Id` sessions with server push
    (sampling, elicitation, log levels, subscriptions); 2026-07-28 clients are served statelessly either way. True
    opts handshake-era clients out of sessions: no push, no `logging/setLevel`, no `resources/subscribe`, no
    resumable streams, but no session affinity needed either. Sessions need one worker per replica."""
    event_store: Literal["auto", "memory", "redis", "off"] = "auto"
    """Where session streams keep their events so `Last-Event-ID` resumes them: `auto` is `redis` when
    `RATE_LIMIT__STORAGE_URI` is a Redis URL, else `memory`; `off` makes dropped streams lose their messages."""
    event_store_stream_events: int = Field(default=1000, ge=1, le=100_000)
    """Events kept per stream (the oldest are dropped first)."""
    event_store_max_events: int = Field(default=20_000, ge=1, le=10_000_000)
    """Events kept in memory in all (`memory` store; the least recently written sessions are dropped first)."""
    event_store_ttl_seconds: int = Field(default=300, ge=1, le=86_400)
    """How long a stream's events can still be resumed after its last event."""
    task_store: Literal["auto", "memory", "redis"] = "auto"
    """Where tasks (`@tool(task=...)`) and their results are kept: `auto` is `redis` when `RATE_LIMIT__STORAGE_URI`
    is a Redis URL (every replica can then poll, answer and cancel any task), else `memory` (one replica)."""
    sse_retry_ms: int = Field(default=1000, ge=0, le=600_000)
    """The reconnect delay sent to clients with each resumable stream (SSE `retry`)."""
    json_response: bool = False
    """Answer with `application/json` instead of an SSE stream where the SDK allows it."""
    required_scopes: CsvList = Field(default_factory=list)
    """Delegated scopes every user caller needs on top of each tool's own."""
    required_roles: CsvList = Field(default_factory=list)
    """App roles every app-only caller needs on top of each tool's own."""
    agents: Literal["allow", "deny", "delegated-only"] = "delegated-only"
    """Entra Agent ID agents, where a tool, resource, prompt or route sets no `agents=`: `delegated-only` (default)
    admits an agent acting for a signed-in user and refuses one acting on its own (403); `allow` admits both; `deny`
    refuses both. Users and ordinary apps are unaffected. See docs/authorization.md#agent-identities."""
    scope_implies: dict[str, list[str]] = Field(default_factory=dict)
    """Scope hierarchy, as JSON: `{"notes.write": ["notes.read"]}` means a token granted `notes.write` may do what
    `notes.read` allows. Transitive; a cycle is refused at startup. Honoured by every decision (tools, resources,
    prompts, list filtering, route guards); a 403 step-up still names the scopes the target declares."""
    list_ttl_ms: int = Field(default=60_000, ge=0, le=86_400_000)
    """How long (milliseconds) a 2026-07-28 client may cache `tools/list`, `prompts/list`, `resources/list` and
    `resources/templates/list` results (`ttlMs`). They are filtered per caller, so they are always sent with
    `cacheScope: "private"`; 0 means immediately stale."""
    server_name: str = "secure-mcp-server"
    """The name this server reports to clients."""
    request_state_keys: SecretList = Field(default_factory=list)
    """Keys (32 bytes or more each) that seal 2026-07-28 `requestState`; the first seals, all unseal. Required in
    production when stateless or with several workers."""

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

    _no_cycles = field_validator("scope_implies")(acyclic)

    @property
    def implied_scopes(self) -> dict[str, frozenset[str]]:
        """Each scope with everything it implies (transitively); scopes that imply nothing are absent."""
        return scope_closure(self.scope_implies)

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or len(value) < 2:
            raise ValueError("MCP__PATH must start with '/' and not end with '/', e.g. /mcp")
        return value

    @field_validator("resource_host")
    @classmethod
    def _resource_host_shape(cls, value: str | None) -> str | None:
        if value is None or not value.strip():  # empty, as .env.example ships it: unset
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path not in {"", "/"}:
            raise ValueError("MCP__RESOURCE_HOST must be a base URL like https://mcp.contoso.com (no path)")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("MCP__RESOURCE_HOST must be https:// (plain http is accepted only for a loopback host)")
        # RFC 9728 / MCP: clients compare the resource code point by code point, so normalise once here.
        return f"{parts.scheme}://{parts.netloc.lower()}"


class ToolsSettings(Section):
    """Where tools are discovered and how `tools/list` treats callers."""

    dir: Path = Path(__file__).resolve().parents[2] / "tools"
    """Where tools are discovered (default: the repository's `tools/` folder)."""
    filter_list: bool = True
    """Show callers only the tools, resources and prompts they may use."""
    lock_file: Path | None = None
    """The reviewed record of served tool metadata (default: `tools.lock` beside the tools folder)."""
    lock_mode: Literal["enforce", "warn", "off"] | None = Field(
        default=None, json_schema_extra={"production": "enforce", "development": "warn", "effective": "tools_lock_mode"}
    )
    """`enforce` (refuse to start on a difference), `warn` (log it) or `off` (development only). Default: enforce in
    production, warn in development."""
    threads: int = Field(default=40, ge=1, le=1024)
    """Worker threads for plain `def` tools (async tools run on the event loop); more calls wait for a free one."""

    @property
    def lock_path(self) -> Path:
        return self.lock_file or self.dir.resolve().parent / "tools.lock"


class RoutesSettings(Section):
    """FastAPI routes served beside MCP, discovered from a folder as tools are."""

    dir: Path = Path(__file__).resolve().parents[2] / "routes"
    """Where route modules (each with a module-level `router = APIRouter()`) are discovered; a missing folder means
    no routes (default: the repository's `routes/` folder)."""
    openapi: bool = False
    """Serve the routes' OpenAPI schema at `/openapi.json`, with the OAuth2 scheme and each route's scopes. Off by
    default: it describes the server to anyone who asks."""


class ContentSafetySettings(Section):
    """The optional content-safety check `app.server.content.untrusted()` runs on external content (off by default)."""

    provider: str = "off"
    """`off`, `azure` (Azure AI Content Safety; needs the `content-safety` extra), or your own check as
    `package.module:factory`."""
    endpoint: str | None = None
    """`https://<name>.cognitiveservices.azure.com/` (required for `azure`)."""
    key: SecretStr | None = None
    """The Content Safety resource key; empty authenticates with Microsoft Entra ID (managed identity)."""
    threshold: int = Field(default=4, ge=0, le=7)
    """Severity (0-7) in any harm category at or above which content is withheld from the model."""
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """A check slower than this (seconds) withholds the content."""

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


class DevIssuerSettings(Section):
    """The embedded issuer that stands in for Entra in development."""

    host: str = "127.0.0.1"
    """Where the embedded dev issuer listens (development only)."""
    port: int = 8001
    """The dev issuer's port."""
    key_dir: Path = Path(".dev")
    """Where the dev issuer keeps its signing key."""
    embedded: bool = True
    """Start the issuer inside the server; false trusts one already running (`python -m app.devissuer serve`),
    e.g. for several workers."""
    client_id: str = Field(default=DEV_PUBLIC_CLIENT_ID, pattern=r"^[A-Za-z0-9._~:/-]{1,200}$")
    """The one public OAuth client the dev issuer's sign-in page serves (authorization code with PKCE, loopback redirect
    URIs on any port); it plays a client pre-registered in Entra. Configure it as the client id in your MCP client."""
    token_seconds: int = Field(default=3600, ge=1, le=86400)
    """Lifetime of the access tokens the dev issuer's `/token` endpoint issues (short values help test refresh)."""
    tls: bool = False
    """Serve https with a certificate from a local CA kept in `DEV_ISSUER__KEY_DIR` (`dev-ca.pem`: trust it, e.g. with
    `REQUESTS_CA_BUNDLE`). MSAL insists on https authorities, so local mode (`python -m app stdio`) needs it."""


class TelemetrySettings(Section):
    """What the framework adds to OpenTelemetry; exporters themselves come from the standard `OTEL_*` variables."""

    enduser_id: Literal["hashed", "raw", "off"] = "hashed"
    """`enduser.id` on spans: `hashed` (a keyed pseudonym of the caller's object id), `raw` (the object id) or `off`."""
    enduser_id_key: SecretStr | None = None
    """The key of the `hashed` pseudonym (HMAC-SHA256 of the object id), at least 32 characters; keep it in Key Vault
    (`telemetry--enduser-id-key`) and give every replica the same one. Unset: a random key per process, so pseudonyms
    change on restart and differ between replicas."""

    @field_validator("enduser_id_key", mode="before")
    @classmethod
    def _empty_key_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("enduser_id_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                "TELEMETRY__ENDUSER_ID_KEY must be at least 32 characters; generate one with "
                '`python -c "import secrets; print(secrets.token_hex(32))"`'
            )
        return value


class AuditSettings(Section):
    """The audit log: where hash-chained records go."""

    sink: str = "stdout"
    """Where hash-chained audit records go: `stdout`, `file:/path/audit.jsonl` (`{pid}` gives each worker its own file)
    or `off` (refused in production)."""

    @field_validator("sink")
    @classmethod
    def _sink_shape(cls, value: str) -> str:
        value = value.strip()
        if value in {"stdout", "off"} or (value.startswith("file:") and len(value) > len("file:")):
            return value
        raise ValueError("AUDIT__SINK must be stdout, off, or file:/path/to/audit.jsonl")
