"""Where settings come from, highest first: init args, environment, Key Vault, `.env`, a secrets directory."""

from __future__ import annotations

import difflib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel
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
    _unknown.set(unknown_names(settings_cls, {"the environment": env_settings, ".env": dotenv_settings}))
    return (init_settings, env_settings, *vault, dotenv_settings, file_secret_settings)


_unknown: ContextVar[tuple[str, ...]] = ContextVar("unknown_settings", default=())


def unknown_names(settings_cls: type[BaseSettings], sources: dict[str, PydanticBaseSettingsSource]) -> tuple[str, ...]:
    """Each variable named like one of this app's settings (`SECTION__…` of a known section) that names no field,
    where it was found and the closest valid name. Other variables (a tool's own `PROFILE_API__…`) are not ours."""
    sections = {
        name: field.annotation.model_fields
        for name, field in settings_cls.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }
    # Sections keyed by a name of your choosing (SERVERS__{NAME}__PATH): the field is the part after the name.
    models = {name: _keyed_model(field.annotation) for name, field in settings_cls.model_fields.items()}
    keyed = {name: model.model_fields for name, model in models.items() if model is not None}
    valid = [f"{section}__{name}".upper() for section, fields in sections.items() for name in fields]
    valid += [f"{section}__{{NAME}}__{name}".upper() for section, fields in keyed.items() for name in fields]
    found = []
    for where, source in sources.items():
        for key in getattr(source, "env_vars", None) or {}:
            section, _, rest = key.lower().partition("__")
            if section in keyed and rest.count("__") >= 1:
                instance, _, field = rest.partition("__")
                if field.split("__")[0] not in keyed[section]:
                    close = difflib.get_close_matches(f"{section}__{{NAME}}__{field}".upper(), valid, n=1, cutoff=0.6)
                    hint = f": did you mean {close[0].replace('{NAME}', instance.upper())}?" if close else ""
                    found.append(f"{key.upper()} (in {where}){hint}")
            elif section in sections and rest.split("__")[0] not in sections[section]:
                close = difflib.get_close_matches(key.upper(), valid, n=1, cutoff=0.6)
                hint = f": did you mean {close[0]}?" if close else ""
                found.append(f"{key.upper()} (in {where}){hint}")
    return tuple(found)


def _keyed_model(annotation: Any) -> type[BaseModel] | None:
    """`dict[str, Model]` -> Model; anything else -> None."""
    if get_origin(annotation) is not dict:
        return None
    value = get_args(annotation)[1]
    return value if isinstance(value, type) and issubclass(value, BaseModel) else None


def unknown_settings() -> str | None:
    """The unknown settings the sources just read, as one line (and forgotten: each read reports its own)."""
    names, _ = _unknown.get(), _unknown.set(())
    if not names:
        return None
    return (
        f"unknown setting{'s' if len(names) > 1 else ''} {'; '.join(names)}. Fix the name, or set "
        "ALLOW_UNKNOWN_SETTINGS=true where other programs' variables share these prefixes"
    )


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
