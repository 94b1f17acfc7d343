"""Settings for local mode: every source as over HTTP, except that no secret is read from environment variables
(nor from `.env`).

Microsoft's guidance for stdio servers: no credentials in environment variables except API keys (tools' API keys
still come through `secret()`, read by the secret store's own settings).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from app.core.startup import StartupError
from app.local.identity import CACHE_FILE, SignIn
from app.settings import Settings, secret_env_names
from app.settings.keyvault import BoundedKeyVaultSource
from app.settings.sources import WithoutSecrets

APP_DIR_NAME = "secure-mcp-server"


class LocalSettingsError(StartupError, ValueError):
    """Settings local mode refuses before any source is read (a Key Vault credential other than the CLI login)."""


class LocalSettings(Settings):
    """`Settings` whose environment and `.env` sources drop every secret field (`SecretStr`, e.g.
    `AZUREAD__CLIENT_SECRET`), and
    whose Key Vault is read with the Azure CLI's login only (DefaultAzureCredential would read environment secrets)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        secrets = secret_env_names(Settings)
        env = WithoutSecrets(settings_cls, env_settings, secrets)
        dotenv = WithoutSecrets(settings_cls, dotenv_settings, secrets)  # `.env` is the environment's file form
        sources = super().settings_customise_sources(settings_cls, init_settings, env, dotenv, file_secret_settings)
        for source in sources:  # checked before the vault is read
            if isinstance(source, BoundedKeyVaultSource) and source.kv.credential != "cli":
                raise LocalSettingsError(
                    "local mode reads Key Vault as the developer signed in to the Azure CLI: set "
                    f"KEYVAULT__CREDENTIAL=cli (not {source.kv.credential}, which may take AZURE_CLIENT_SECRET from "
                    "the environment)"
                )
        return sources


def user_data_dir(settings: Settings) -> Path:
    """STDIO__DATA_DIR, else the OS's per-user data directory (three rules; not worth a dependency)."""
    if settings.stdio.data_dir is not None:
        return settings.stdio.data_dir
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / APP_DIR_NAME


def audit_sink(settings: Settings, data_dir: Path) -> str:
    """stdout carries the protocol in local mode: the audit log goes to a file in the user's data directory."""
    if settings.audit.sink == "stdout":
        return f"file:{data_dir / 'audit.jsonl'}"
    return settings.audit.sink


def sign_in_options(settings: Settings) -> SignIn:
    """The public client local mode signs in with: STDIO__CLIENT_ID, else the dev issuer's client (development),
    else this server's app registration; at STDIO__AUTHORITY, else the tenant's authority."""
    stdio = settings.stdio
    client_id = stdio.client_id or (settings.dev_issuer.client_id if settings.dev_issuer_active else settings.client_id)
    return SignIn(
        authority=stdio.authority or f"{settings.instance.rstrip('/')}/{settings.tenant_id}",
        client_id=client_id,
        app_id_uri=settings.app_id_uri,
        mode=stdio.sign_in,
        timeout_seconds=stdio.sign_in_timeout_seconds,
        allow_plain_cache=stdio.allow_plain_cache,
    )


def cache_path(settings: Settings, data_dir: Path) -> Path:
    """STDIO__CACHE_PATH, else the token cache file in the user's data directory."""
    return settings.stdio.cache_path or data_dir / CACHE_FILE
