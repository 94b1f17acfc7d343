"""What the development issuer takes: the values it reads, and nothing else (app/compose/devissuer.py makes them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr


@dataclass(frozen=True)
class DevIssuerConfig:
    app_env: str  # it never runs in production
    instance: str  # the issuer's base URL, as the server trusts it (AZUREAD__INSTANCE, by default its loopback URL)
    tenant_id: str
    audience: str  # the `aud` of its access tokens: this server's client id
    app_id_uri: str  # scopes are `{app_id_uri}/{scope}`; RFC 8707 `resource` must be it, as at Entra
    resource: str  # the MCP endpoint's URL (what `make run` prints to try)
    server_name: str  # named on the sign-in page
    host: str  # DEV_ISSUER__*: where it listens (loopback only), its key directory, its one public client
    port: int
    key_dir: Path
    client_id: str
    token_seconds: int
    tls: bool
    rate: str  # RATE_LIMIT__UNAUTHENTICATED, per client IP
    known_scopes: tuple[str, ...] = ()  # what the sign-in page offers: the scopes and roles the server declares
    known_roles: tuple[str, ...] = ()
    # The authorization-server facade as a confidential client (its client id and callback URI), and its secret.
    facade_client: tuple[str, str] | None = None
    facade_secret: SecretStr | None = None
