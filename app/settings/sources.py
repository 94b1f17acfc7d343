"""Where settings come from, highest first: init args, environment, Key Vault, `.env`, a secrets directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, NestedSecretsSettingsSource, PydanticBaseSettingsSource

from app.settings.keyvault import BoundedKeyVaultSource, KeyVaultSettings

DEFAULT_SECRETS_DIR = Path("/run/secrets")


def bootstrap_keyvault(*sources: PydanticBaseSettingsSource) -> KeyVaultSettings:
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
    if getattr(file_secret_settings, "secrets_dir", None) is None and DEFAULT_SECRETS_DIR.is_dir():
        file_secret_settings = NestedSecretsSettingsSource(file_secret_settings, secrets_dir=DEFAULT_SECRETS_DIR)
    else:  # one file per setting, named like the env var: /run/secrets/azuread__client_secret
        file_secret_settings = NestedSecretsSettingsSource(file_secret_settings)
    vault = (BoundedKeyVaultSource(settings_cls, keyvault),) if keyvault.url else ()
    return (init_settings, env_settings, *vault, dotenv_settings, file_secret_settings)


class WithoutSecrets(PydanticBaseSettingsSource):
    """`source` minus every secret field (`SecretStr`): local mode reads no credential from environment variables."""

    def __init__(self, settings_cls: type[BaseSettings], source: PydanticBaseSettingsSource, secrets: list[str]):
        super().__init__(settings_cls)
        self.source = source
        self.secrets = [name.split("__") for name in secrets]

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # unused: __call__ is overridden
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values = self.source()
        for path in self.secrets:
            section: Any = values
            for part in path[:-1]:
                section = section.get(part) if isinstance(section, dict) else None
            if isinstance(section, dict):
                section.pop(path[-1], None)
        return values

    def __repr__(self) -> str:
        return f"WithoutSecrets({self.source!r})"
