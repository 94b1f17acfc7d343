"""The live secret values: settings' secrets and tools' own, re-read in the background when rotation is on.

Consumers ask the store on each use (`store.get("azuread--client-secret")`, or `secret("weather--api-key")` in a
tool), so a rotated value is seen without a restart; `on_change` lets a cached client rebuild itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from pydantic import SecretStr, ValidationError

from app.core.binding import bind
from app.core.names import vault_secret_name
from app.core.startup import StartupError

log = logging.getLogger("app.secrets")

# A tool secret is `<tool>--<name>` in Key Vault's alphabet: lowercase letters, digits, single dashes.
TOOL_SECRET_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*--[a-z0-9]+(?:-[a-z0-9]+)*$")


# The names `Settings` has at its top level (sections and scalars): a tool secret must not shadow one, since
# `weather--api-key` is read from env `WEATHER__API_KEY` like a setting. tests/secrets pins this to Settings' fields.
SETTINGS_NAMES = frozenset(
    {
        "app_env", "log_level", "log_format", "azuread", "mcp", "tools", "routes", "dev_issuer", "telemetry", "audit",
        "content_safety", "security", "server", "keyvault", "rate_limit", "auth_server", "connect", "stdio", "servers",
        "tasks", "allow_unknown_settings",
    }
)  # fmt: skip
Values = Mapping[str, SecretStr | list[SecretStr]]


class SecretsError(StartupError):
    """A secret is missing or cannot be read; the message names it, never its value."""

    label = "secrets error"


class SecretNotFoundError(SecretsError, KeyError):
    """`secret(name)` for a name nobody declared."""

    def __str__(self) -> str:
        return str(self.args[0])


def check_tool_secret_name(name: str) -> str:
    if not isinstance(name, str) or not TOOL_SECRET_NAME.match(name):
        raise ValueError(f"tool secret name {name!r} must look like 'tool-name--api-key' (lowercase, digits, dashes)")
    section = name.split("--", 1)[0].replace("-", "_")
    if section in SETTINGS_NAMES:
        raise ValueError(f"tool secret name {name!r} collides with the settings section {section!r}")
    return name


class SecretStore:
    """Current secret values by vault-style name (`azuread--client-secret`, `weather--api-key`)."""

    def __init__(self, values: Values | None = None, tool_secrets: Mapping[str, SecretStr] | None = None) -> None:
        """`values`: the server's own secrets by vault-style name (from settings); `tool_secrets`: the tools'."""
        self._listeners: list[Callable[[SecretStore, set[str]], None]] = []
        self._values: dict[str, SecretStr | list[SecretStr]] = {}
        self._plain: frozenset[str] = frozenset()
        self._tool_names: frozenset[str] = frozenset()
        self._set(values or {}, tool_secrets or {})

    def _set(self, server: Values, tool_secrets: Mapping[str, SecretStr]) -> set[str]:
        values = {**server, **tool_secrets}
        changed = {
            name
            for name in values.keys() | self._values.keys()
            if _plain(values.get(name)) != _plain(self._values.get(name))
        }
        self._values, self._tool_names = values, frozenset(tool_secrets)
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

    def find(self, name: str) -> SecretStr | None:
        """The current value of a single-valued secret, or None when it is not set (the client secret)."""
        value = self._values.get(vault_secret_name(name))
        return value if isinstance(value, SecretStr) else None

    def ring(self, name: str) -> list[SecretStr]:
        """The current values of a list secret (the request-state key ring); empty when it is not set."""
        value = self._values.get(vault_secret_name(name))
        return list(value) if isinstance(value, list) else []

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

    def update(self, values: Values, tool_secrets: Mapping[str, SecretStr]) -> set[str]:
        changed = self._set(values, tool_secrets)
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
    if isinstance(exc, StartupError):  # Key Vault's and ours: they name what failed, never a value
        return str(exc)
    return type(exc).__name__


class SecretRefresher:
    """Re-reads every source each `interval` seconds; a failure keeps the last good values, one warning per outage."""

    def __init__(
        self, store: SecretStore, load: Callable[[], tuple[Values, Mapping[str, SecretStr]]], interval: float
    ) -> None:
        """`load` re-reads every source: the server's secrets and the tools' (it raises like the first read)."""
        self.store, self.load, self.interval = store, load, interval
        self.failing = False

    async def last_refresh_ok(self) -> bool:
        """The readiness check for Key Vault: the last background re-read got through (no extra calls)."""
        return not self.failing

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
            values, tool_secrets = await asyncio.to_thread(self.load)
        except Exception as exc:
            if not self.failing:
                log.warning("secret refresh failed, keeping the last good values: %s", describe(exc))
            self.failing = True
            return
        if self.failing:
            log.info("secret refresh recovered")
            self.failing = False
        self.store.update(values, tool_secrets)


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
