"""The `AZUREAD__*` section: this server's Entra ID app registration, the tenant(s) it trusts, and how the server
authenticates itself to Entra (a managed identity, a certificate or a secret)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from app.core.hosts import is_loopback_host
from app.settings.fields import DEV_CLIENT_ID, DEV_TENANT_ID, CsvList, Section, app_id_uri_shape, csv_list

if TYPE_CHECKING:
    from app.settings import Settings


class AzureAdSettings(Section):
    """This server's Entra ID app registration and the tenant(s) it trusts."""

    instance: str = Field(
        default="https://login.microsoftonline.com/",
        json_schema_extra={"development": "http://{DEV_ISSUER__HOST}:{DEV_ISSUER__PORT}/", "effective": "instance"},
    )
    """Entra authority host. https only (plain http only for a loopback host)."""
    tenant_id: str | None = Field(
        default=None, json_schema_extra={"development": DEV_TENANT_ID, "effective": "tenant_id"}
    )
    """Your tenant id (GUID), or `organizations` / `common` for a multi-tenant server. Empty in development: the
    embedded dev issuer stands in for Entra."""
    client_id: str | None = Field(
        default=None, json_schema_extra={"development": DEV_CLIENT_ID, "effective": "client_id"}
    )
    """The Application (client) ID of this server's app registration (in development, unset: the dev issuer's app)."""
    app_id_uri: str | None = None
    """The Application ID URI of this server's app registration ("Expose an API"). Scopes are requested as
    `{app id uri}/{scope}`. Default: the resource identifier `{MCP__RESOURCE_HOST}{MCP__PATH}`, as Entra's guidance for
    MCP servers says (clients send it as RFC 8707 `resource`, and Entra refuses a `resource` that is not the App ID
    URI). `api://{client_id}` is the fallback without a verified domain (`{client_id}` is replaced by the client id)."""
    audiences: CsvList | None = None
    """Override of the accepted token audiences (default: the client id and the App ID URI)."""
    accept_v1: bool = True
    """Accept v1.0 tokens (issuer `https://sts.windows.net/{tid}/`) as well as v2.0."""
    allowed_tenants: CsvList = Field(default_factory=list)
    """Multi-tenant only: the tenant ids allowed to call (required in production with `organizations` / `common`)."""
    jwks_refresh_seconds: float = Field(default=60.0, gt=0, le=60.0)
    """A token with an unknown key id triggers at most one signing-key refresh per this many seconds (at most 60)."""
    jwks_max_age_seconds: float = Field(default=24 * 3600.0, gt=0)
    """Signing keys are re-read in the background this often, even without an unknown key id."""
    clock_skew_seconds: int = Field(default=60, ge=0, le=300)
    """Allowed clock difference for `exp` / `nbf`, in seconds."""
    managed_identity: bool = False
    """Authenticate this server to Entra (on-behalf-of, the facade's upstream calls) with a client assertion from the
    workload's managed identity, trusted by a federated identity credential on the app registration: no secret or
    certificate anywhere. Container Apps and App Service (`IDENTITY_ENDPOINT`), AKS workload identity
    (`AZURE_FEDERATED_TOKEN_FILE`), VMs (IMDS). It applies to every server of this app (each app registration needs
    the federated credential), and wins over a client secret or certificate set as well."""
    managed_identity_client_id: str | None = None
    """The client id of the user-assigned managed identity to use (unset: the system-assigned one, or `AZURE_CLIENT_ID`
    with AKS workload identity)."""
    client_secret: SecretStr | None = None
    """This server's own client secret, for on-behalf-of and the facade. Prefer `AZUREAD__MANAGED_IDENTITY`, else a
    certificate; keep a secret in Key Vault or the secrets directory."""
    client_certificate_path: Path | None = None
    """A PEM file with this server's private key and certificate, for on-behalf-of and the facade (preferred over a
    secret)."""

    _split_lists = field_validator("audiences", "allowed_tenants", mode="before")(csv_list)

    @field_validator("app_id_uri")
    @classmethod
    def _app_id_uri_shape(cls, value: str | None) -> str | None:
        return app_id_uri_shape(value)

    @field_validator("client_secret", "client_certificate_path", "managed_identity_client_id", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("managed_identity_client_id")
    @classmethod
    def _client_id_is_a_guid(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            raise ValueError(
                "AZUREAD__MANAGED_IDENTITY_CLIENT_ID must be a user-assigned managed identity's client id (a GUID)"
            ) from None

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


def refuse_missing_credentials(settings: Settings) -> None:
    """The facade signs users in as each server's own confidential client, so each needs a credential at Entra (in
    every environment: the dev issuer, too, signs in only a confidential client); a managed identity is every
    server's, and needs Entra."""
    azuread, facade = settings.azuread, settings.auth_server.enabled
    managed = azuread.managed_identity
    if managed and settings.dev_issuer_active:
        raise ValueError(
            "AZUREAD__MANAGED_IDENTITY authenticates this server at Entra, and the dev issuer takes no managed "
            "identity: set AZUREAD__TENANT_ID and AZUREAD__CLIENT_ID, or leave it off in development"
        )
    if facade and not (managed or azuread.client_secret or azuread.client_certificate_path):
        raise ValueError(
            "AUTH_SERVER__ENABLED needs this server's credential at Entra (or the dev issuer): "
            "AZUREAD__MANAGED_IDENTITY=true, AZUREAD__CLIENT_CERTIFICATE_PATH or AZUREAD__CLIENT_SECRET"
        )
    for key, server in settings.servers.items() if facade and not managed else ():
        if not (server.client_secret or server.client_certificate_path):
            name = f"SERVERS__{key.upper()}"
            raise ValueError(
                f"AUTH_SERVER__ENABLED needs each server's credential: {name}__CLIENT_SECRET or "
                f"{name}__CLIENT_CERTIFICATE_PATH (Key Vault servers--{key}--client-secret), or "
                "AZUREAD__MANAGED_IDENTITY=true for every server"
            )
