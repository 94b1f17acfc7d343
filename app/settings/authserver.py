"""The authorization-server facade (`AUTH_SERVER__*`): DCR, CIMD and pre-registered clients in front of Entra."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, Field, SecretStr, field_validator

from app.settings.fields import Section, rate_string

_STATE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")


class PreRegisteredClient(BaseModel):
    """A client registered ahead of time: its id, the name shown on the consent page, its exact redirect URIs."""

    client_id: str = Field(pattern=r"^[A-Za-z0-9._~:/-]{1,200}$")
    client_name: str = Field(default="", max_length=100)
    redirect_uris: list[str] = Field(min_length=1, max_length=20)


class AuthServerSettings(Section):
    """The authorization-server facade: this server plays the authorization server MCP clients see (RFC 8414, DCR,
    Client ID Metadata Documents, a consent page per user and client), and signs users in at Entra (or the dev
    issuer) as its own confidential client, with AZUREAD__MANAGED_IDENTITY, AZUREAD__CLIENT_CERTIFICATE_PATH or
    AZUREAD__CLIENT_SECRET. See docs/auth-server.md."""

    enabled: bool = False
    """Serve the facade: `/.well-known/oauth-authorization-server`, `/oauth/*`, and Protected Resource Metadata names
    this server as the authorization server. Off: clients go to Entra directly (pre-registered there)."""
    consent_seconds: int = Field(default=7 * 24 * 3600, ge=0, le=90 * 24 * 3600)
    """How long a user's approval of one client, for the scopes shown, is remembered (0: ask every time). A new client,
    or a request for a scope the user has not approved for that client, always asks."""
    refresh_seconds: int = Field(default=14 * 24 * 3600, ge=60, le=90 * 24 * 3600)
    """Lifetime of the facade's refresh tokens (each stands for an encrypted Entra refresh token held server-side). They
    rotate on every use; presenting one that was already used revokes its whole family (RFC 9700 section 4.14.2)."""
    clients: list[PreRegisteredClient] = Field(default_factory=list)
    """Pre-registered clients, as JSON: `[{"client_id": "...", "client_name": "...", "redirect_uris": ["..."]}]`."""
    state_uri: SecretStr | None = None
    """Where registrations, transactions, codes, consents and refresh records live: `memory://` (one replica; the
    default) or `redis://host:6379/0` (`rediss://` for TLS) to share them across replicas. A secret: it can carry a
    password."""
    registrations_per_ip: str = "20/hour"
    """Dynamic client registrations one client IP may make (a `limits` rate string, counted in the rate-limit
    storage); more get 429."""
    pending_registration_seconds: int = Field(default=6 * 3600, ge=300, le=7 * 24 * 3600)
    """A registration that no sign-in has used is forgotten after this many seconds; its first completed sign-in keeps
    it for 180 days."""
    memory_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024, le=4 * 1024 * 1024 * 1024)
    """Bound of the in-memory state (`memory://`), in bytes of stored records. A registration is stored only while the
    state is under half full (else `/oauth/register` answers 503), so a flood of them never stops existing clients
    signing in or refreshing. Redis is bounded by its own `maxmemory`."""
    cimd_max_bytes: int = Field(default=5 * 1024, ge=512, le=64 * 1024)
    """Largest Client ID Metadata Document fetched, in bytes (the CIMD draft suggests 5 KB)."""
    cimd_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    """Time allowed to fetch a Client ID Metadata Document."""
    cimd_cache_entries: int = Field(default=1000, ge=0, le=100_000)
    """How many fetched Client ID Metadata Documents are kept (by their HTTP caching headers) per process."""

    @field_validator("clients", mode="before")
    @classmethod
    def _json_clients(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) and value.strip() else ([] if value == "" else value)

    _rate = field_validator("registrations_per_ip")(rate_string)

    @field_validator("state_uri")
    @classmethod
    def _state_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        uri = value.get_secret_value() if value is not None else "memory://"
        if not re.match(rf"^({'|'.join(re.escape(s) for s in _STATE_SCHEMES)})://", uri.lower()):
            raise ValueError("AUTH_SERVER__STATE_URI must be memory:// or redis://host:port[/db] (rediss:// for TLS)")
        return value
