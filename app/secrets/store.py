"""The live secret values: settings' secrets and tools' own, re-read in the background when rotation is on.

Consumers ask the store on each use (`store.get("azuread--client-secret")`, or `secret("weather--api-key")` in a
tool), so a rotated value is seen without a restart; `on_change` lets a cached client rebuild itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from pydantic import SecretStr, ValidationError, create_model
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app.core.binding import bind
from app.settings import KeyVaultSettings, Settings, layered_sources, secret_env_names
from app.settings.keyvault import KeyVaultError, vault_secret_name

log = logging.getLogger("app.secrets")

# A tool secret is `<tool>--<name>` in Key Vault's alphabet: lowercase letters, digits, single dashes.
TOOL_SECRET_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*--[a-z0-9]+(?:-[a-z0-9]+)*$")


class SecretsError(RuntimeError):
    """A secret is missing or cannot be read; the message names it, never its value."""


class SecretNotFoundError(SecretsError, KeyError):
    """`secret(name)` for a name nobody declared."""

    def __str__(self) -> str:
        return str(self.args[0])


def check_tool_secret_name(name: str) -> str:
    if not isinstance(name, str) or not TOOL_SECRET_NAME.match(name):
        raise ValueError(f"tool secret name {name!r} must look like 'tool-name--api-key' (lowercase, digits, dashes)")
    section = name.split("--", 1)[0].replace("-", "_")
    if section in Settings.model_fields:
        raise ValueError(f"tool secret name {name!r} collides with the settings section {section!r}")
    return name


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


def _settings_secrets(settings: Settings) -> dict[str, SecretStr | list[SecretStr]]:
    values: dict[str, SecretStr | list[SecretStr]] = {}
    for env_name in secret_env_names(Settings):
        target: Any = settings
        for part in env_name.split("__"):
            target = getattr(target, part)
        if target is not None:
            values[vault_secret_name(env_name)] = target
    return values


class SecretStore:
    """Current secret values by vault-style name (`azuread--client-secret`, `weather--api-key`)."""

    def __init__(self, settings: Settings, tool_secrets: dict[str, SecretStr] | None = None) -> None:
        self._listeners: list[Callable[[SecretStore, set[str]], None]] = []
        self._values: dict[str, SecretStr | list[SecretStr]] = {}
        self._plain: frozenset[str] = frozenset()
        self._tool_names: frozenset[str] = frozenset()
        self.settings = settings
        self._set(settings, tool_secrets or {})

    def _set(self, settings: Settings, tool_secrets: dict[str, SecretStr]) -> set[str]:
        values = {**_settings_secrets(settings), **tool_secrets}
        changed = {
            name
            for name in values.keys() | self._values.keys()
            if _plain(values.get(name)) != _plain(self._values.get(name))
        }
        self.settings, self._values, self._tool_names = settings, values, frozenset(tool_secrets)
        self._plain = frozenset(text for value in values.values() for text in _plain(value) if text)
        return changed

    def get(self, name: str) -> SecretStr:
        """The current value; a list secret (the request-state key ring) comes back comma-joined."""
        value = self._values.get(vault_secret_name(name))
        if value is None:
            raise SecretNotFoundError(
                f"secret {name!r} is not loaded (declare it: a tool parameter `Annotated[str, Secret({name!r})]`)"
            )
        if isinstance(value, list):
            return SecretStr(",".join(item.get_secret_value() for item in value))
        return value

    def tool_secret(self, name: str) -> SecretStr:
        """A tool's own secret only: the server's secrets (client secret, request-state keys) are not for tools."""
        if vault_secret_name(name) not in self._tool_names:
            raise SecretNotFoundError(
                f"tool secret {name!r} is not loaded (declare it: a tool parameter `Annotated[str, Secret({name!r})]`)"
            )
        return self.get(name)

    def names(self) -> list[str]:
        return sorted(self._values)

    def plain_values(self) -> frozenset[str]:
        """Every secret value in clear, for the redactor only."""
        return self._plain

    def on_change(self, listener: Callable[[SecretStore, set[str]], None]) -> None:
        """Call `listener(store, changed_names)` after a refresh changes any value (e.g. rebuild an MSAL client)."""
        self._listeners.append(listener)

    def update(self, settings: Settings, tool_secrets: dict[str, SecretStr]) -> set[str]:
        changed = self._set(settings, tool_secrets)
        if changed:
            log.info("rotated secret(s): %s", ", ".join(sorted(changed)))
            for listener in self._listeners:
                try:
                    listener(self, changed)
                except Exception:
                    log.exception("a secret-change listener failed")
        return changed


def _plain(value: SecretStr | list[SecretStr] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(item.get_secret_value() for item in value)
    return (value.get_secret_value(),)


def describe(exc: BaseException) -> str:
    """A value-free description of a load failure (a ValidationError's text would quote the input)."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'settings'}: {str(err['msg']).removeprefix('Value error, ')}"
            for err in exc.errors()
        )
    if isinstance(exc, SecretsError | KeyVaultError):
        return str(exc)
    return type(exc).__name__


class SecretRefresher:
    """Re-reads every source each `interval` seconds; a failure keeps the last good values, one warning per outage."""

    def __init__(self, store: SecretStore, tool_secret_names: Iterable[str], interval: float) -> None:
        self.store, self.tool_secret_names, self.interval = store, sorted(set(tool_secret_names)), interval
        self.failing = False

    async def last_refresh_ok(self) -> bool:
        """The readiness check for Key Vault: the last background re-read got through (no extra calls)."""
        return not self.failing

    def load(self) -> tuple[Settings, dict[str, SecretStr]]:
        settings = self.store.settings.reload()
        return settings, load_tool_secrets(self.tool_secret_names, settings)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Re-read in the background for as long as the context lasts; the task is cancelled and awaited at exit."""
        task = asyncio.create_task(self.run(), name="secret-refresh")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.refresh_once()

    async def refresh_once(self) -> None:
        try:
            settings, tool_secrets = await asyncio.to_thread(self.load)
        except Exception as exc:
            if not self.failing:
                log.warning("secret refresh failed, keeping the last good values: %s", describe(exc))
            self.failing = True
            return
        if self.failing:
            log.info("secret refresh recovered")
            self.failing = False
        self.store.update(settings, tool_secrets)


# ---- the tool author's accessor ----------------------------------------------------------------------------
_bound: contextvars.ContextVar[SecretStore | None] = contextvars.ContextVar("secret_store", default=None)
_process_store: SecretStore | None = None


def set_process_store(store: SecretStore | None) -> None:
    """The store `secret()` uses outside a request (e.g. at tool import time); set by `create_app`."""
    global _process_store
    _process_store = store


def bound_store(store: SecretStore) -> bind[SecretStore | None]:
    """Make `store` the one `secret()` reads, for the enclosed block."""
    return bind(_bound, store)


def secret(name: str) -> SecretStr:
    """A tool secret's current value (rotation-aware): the escape hatch for code outside a tool's signature.

    In a tool, take an `api_key: Annotated[str, Secret("weather--api-key")]` parameter instead: that also declares
    the secret, so startup loads it (and stops when it is missing). Call `secret()` where no signature can ask, such
    as a helper or a client built once; the secret must still be declared by some tool's `Secret(...)` parameter.

    Args:
        name: the secret's name, `<tool>--<name>` (lowercase letters, digits, dashes), e.g. `"weather--api-key"`.

    Returns:
        The value as a `SecretStr` (`.get_secret_value()` for the text); it never shows in logs or reprs.

    Raises:
        SecretsError: outside a running server, or (`SecretNotFoundError`) for a secret no tool declared.

    Example:
        headers = {"x-api-key": secret("weather--api-key").get_secret_value()}
    """
    store = _bound.get() or _process_store
    if store is None:
        raise SecretsError("secret() is available inside a running server only")
    return store.tool_secret(name)
