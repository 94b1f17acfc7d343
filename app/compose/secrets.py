"""The secret store from settings: the server's own secrets (client secret, request-state keys, ...) and every secret
the tools declare, read through the same sources in the same order as `Settings`, and re-read for rotation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from pydantic import SecretStr, create_model
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.auth.assertion import ManagedIdentityAssertion, managed_identity_assertion, token_exchange_audience
from app.auth.downstream import AssertionProvider, ClientCredential, certificate_credential
from app.core.names import vault_secret_name
from app.observability.readiness import Readiness
from app.secrets.store import SecretRefresher, SecretsError, SecretStore, Values
from app.settings import KeyVaultSettings, Settings, layered_sources, secret_env_names


class _ToolSecretsBase(BaseSettings):
    """Tool secrets read through the same sources, in the same order, as `Settings`."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False, secrets_dir_missing="ok"
    )
    keyvault_settings: ClassVar[KeyVaultSettings] = KeyVaultSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return layered_sources(
            settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings, cls.keyvault_settings
        )


def load_tool_secrets(names: Iterable[str], settings: Settings) -> dict[str, SecretStr]:
    """Read every declared tool secret (env `WEATHER__API_KEY`, vault `weather--api-key`, ...); all are required."""
    names = sorted(set(names))
    if not names:
        return {}
    fields: dict[str, Any] = {name.replace("-", "_"): (SecretStr | None, None) for name in names}
    model: type[_ToolSecretsBase] = create_model("ToolSecrets", __base__=_ToolSecretsBase, **fields)
    model.keyvault_settings = settings.keyvault
    # Same .env file and secrets directory as the settings were read with (tests pass _env_file=None).
    options = {k: v for k, v in settings.init_values.items() if k in {"_env_file", "_secrets_dir"}}
    values = model(**options)
    found = {name: getattr(values, name.replace("-", "_")) for name in names}
    missing = [name for name, value in found.items() if value is None]
    if missing:
        raise SecretsError(
            "missing tool secret(s): "
            + ", ".join(f"{n} (Key Vault {n}, or env {n.replace('-', '_').upper()})" for n in missing)
        )
    return {name: value for name, value in found.items() if value is not None}


def settings_secrets(settings: Settings) -> Values:
    """Every secret setting that is set, by vault-style name (`azuread--client-secret`)."""
    values: dict[str, SecretStr | list[SecretStr]] = {}
    for env_name in secret_env_names(Settings):
        target: Any = settings
        for part in env_name.split("__"):
            target = getattr(target, part)
        if target is not None:
            values[vault_secret_name(env_name)] = target
    for one in settings.served()[1:]:  # each more server's own credential (SERVERS__{KEY}__CLIENT_SECRET)
        if one.client_secret is not None:
            values[one.secret_name] = one.client_secret
    return values


def secret_store(settings: Settings, tool_secret_names: Iterable[str] = ()) -> SecretStore:
    """The live store: the server's secrets and the tools' declared ones (each must be found)."""
    return SecretStore(settings_secrets(settings), load_tool_secrets(tool_secret_names, settings))


def reloader(
    settings: Settings, tool_secret_names: Iterable[str]
) -> Callable[[], tuple[Values, Mapping[str, SecretStr]]]:
    """A fresh read of every source for the refresher (KEYVAULT__REFRESH_SECONDS); raises like the first read."""
    names = sorted(set(tool_secret_names))

    def load() -> tuple[Values, Mapping[str, SecretStr]]:
        current = settings.reload()
        return settings_secrets(current), load_tool_secrets(names, current)

    return load


def server_assertion(settings: Settings) -> ManagedIdentityAssertion | None:
    """The managed identity's client assertion when AZUREAD__MANAGED_IDENTITY is on: built once per app and shared by
    every server, on-behalf-of and the facade (the identity is the workload's, the same for all)."""
    if not settings.azuread.managed_identity:
        return None
    audience = token_exchange_audience(settings.instance)
    return managed_identity_assertion(settings.azuread.managed_identity_client_id, audience)


def client_credential(
    settings: Settings, store: SecretStore, key: str = "", assertion: ManagedIdentityAssertion | None = None
) -> Callable[[], ClientCredential | None]:
    """A server's credential at Entra (the first server's, or `SERVERS__{key}`'s), for on-behalf-of and the facade:
    the managed identity's `assertion` (`server_assertion`, when AZUREAD__MANAGED_IDENTITY is on), else a
    certificate (preferred by Microsoft over a secret), else the current client secret (the store's, so a rotated one
    rebuilds the MSAL client)."""
    one = settings.served_one(key)
    if one.managed_identity:
        if assertion is None:  # a composition root that forgot it; never a silent fall-back to a secret
            raise ValueError("AZUREAD__MANAGED_IDENTITY is on: pass server_assertion(settings)")
        managed: dict[str, AssertionProvider] = {"client_assertion": assertion}
        return lambda: managed
    certificate = certificate_credential(one.certificate_path) if one.certificate_path else None

    def credential() -> ClientCredential | None:
        if certificate is not None:
            return certificate
        secret = store.find(one.secret_name)
        return secret.get_secret_value() if secret else None

    return credential


@asynccontextmanager
async def rotating(
    settings: Settings, store: SecretStore, tool_secret_names: Iterable[str], readiness: Readiness
) -> AsyncIterator[None]:
    """Re-read every source each KEYVAULT__REFRESH_SECONDS while the app runs (off when unset); with Key Vault,
    readiness reports whether the last background re-read got through (no extra calls)."""
    interval = settings.keyvault.refresh_seconds
    if not interval:
        yield
        return
    refresher = SecretRefresher(store, reloader(settings, tool_secret_names), interval)
    async with refresher.running():
        if settings.keyvault.url:
            readiness.add("key_vault", refresher.last_refresh_ok)
        yield
