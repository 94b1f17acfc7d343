"""Azure Key Vault as a settings source: pydantic-settings' own source, with a bounded client and clear failures.

Name mapping (case-insensitive): `--` separates a section from its field, and a single `-` stands for `_`,
so the vault secret `azuread--client-secret` (or `AzureAd--Client-Secret`) fills `azuread.client_secret`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.keyvault.secrets import SecretClient
from pydantic import Field, field_validator
from pydantic_settings import AzureKeyVaultSettingsSource
from pydantic_settings.sources.providers.azure import AzureKeyVaultMapping

from app.core.hosts import is_loopback_host
from app.core.names import vault_secret_name
from app.core.startup import StartupError
from app.settings.fields import Section, secret_env_names

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings


class KeyVaultError(StartupError):
    """The vault could not supply the settings in time; the message names secrets, never values."""

    label = "secrets error"


def _managed_identity(kv: KeyVaultSettings) -> TokenCredential:
    from azure.identity import ManagedIdentityCredential

    if kv.managed_identity_client_id:
        return ManagedIdentityCredential(client_id=kv.managed_identity_client_id)
    return ManagedIdentityCredential()


def _workload_identity(kv: KeyVaultSettings) -> TokenCredential:
    from azure.identity import WorkloadIdentityCredential

    # Tenant, client id and token file come from the AZURE_* variables the AKS webhook injects.
    return WorkloadIdentityCredential()


def _cli(kv: KeyVaultSettings) -> TokenCredential:
    from azure.identity import AzureCliCredential

    return AzureCliCredential(process_timeout=max(1, int(kv.timeout_seconds)))


def _default(kv: KeyVaultSettings) -> TokenCredential:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=kv.managed_identity_client_id)


# KEYVAULT__CREDENTIAL -> how to build it. A deployment (or a test) may register another kind here.
CREDENTIALS: dict[str, Callable[[KeyVaultSettings], TokenCredential]] = {
    "managed_identity": _managed_identity,
    "workload_identity": _workload_identity,
    "cli": _cli,
    "default": _default,
}


class KeyVaultSettings(Section):
    """Azure Key Vault as a settings source (read before the vault, from init args, environment and `.env`)."""

    url: str | None = None
    """`https://<vault>.vault.azure.net/`; empty: no vault. Vault secret `azuread--client-secret` fills
    `AZUREAD__CLIENT_SECRET`."""
    credential: str = "default"
    """How to authenticate to the vault: `managed_identity`, `workload_identity`, `cli` or `default`
    (DefaultAzureCredential)."""
    managed_identity_client_id: str | None = None
    """Client id of a user-assigned managed identity (empty: system-assigned / default)."""
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    """Startup fails if the vault has not answered within this many seconds."""
    refresh_seconds: float | None = Field(default=None, gt=0)
    """Re-read secrets in the background every this many seconds (empty: off)."""
    ca_file: Path | None = None
    """An extra CA bundle (PEM) to trust for the vault, e.g. behind a TLS-inspecting proxy."""

    @field_validator("url")
    @classmethod
    def _url_is_https(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("KEYVAULT__URL must be https://<name>.vault.azure.net/ (the SDK refuses plain http)")
        return value.strip()

    @field_validator("credential")
    @classmethod
    def _known_credential(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in CREDENTIALS:
            raise ValueError(f"KEYVAULT__CREDENTIAL must be one of {', '.join(sorted(CREDENTIALS))}")
        return value


_credentials: dict[tuple[object, ...], TokenCredential] = {}


def credential_for(kv: KeyVaultSettings) -> TokenCredential:
    """One credential per configuration per process: its token cache then spans every refresh."""
    factory = CREDENTIALS[kv.credential]
    key = (factory, kv.managed_identity_client_id, kv.timeout_seconds)
    if key not in _credentials:
        _credentials[key] = factory(kv)
    return _credentials[key]


def is_loopback_url(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname)


class _ScopedMapping(AzureKeyVaultMapping):
    """Only the vault's secrets that map to a field: the library would otherwise fetch every secret in the vault."""

    def __init__(self, prefixes: tuple[str, ...], **kwargs: Any) -> None:
        self._prefixes = prefixes
        super().__init__(**kwargs)

    def _load_remote(self) -> dict[str, str]:
        return {
            key: name
            for key, name in super()._load_remote().items()
            if any(key == prefix or key.startswith(prefix + "--") for prefix in self._prefixes)
        }


class BoundedKeyVaultSource(AzureKeyVaultSettingsSource):
    """The library's source with a short-retry client and an overall deadline, so startup can never hang."""

    def __init__(self, settings_cls: type[BaseSettings], kv: KeyVaultSettings) -> None:
        assert kv.url is not None
        self.kv = kv
        super().__init__(
            settings_cls,
            kv.url,
            credential_for(kv),
            dash_to_underscore=True,
            case_sensitive=False,
        )

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # EnvSettingsSource.__init__ calls this; the vault is read in __call__, under the deadline.
        return {}

    def _client(self) -> SecretClient:
        timeout = self.kv.timeout_seconds
        return SecretClient(
            vault_url=self._url,
            credential=self._credential,
            # The SDK default retries for minutes; one quick retry, and socket timeouts inside our deadline.
            retry_total=1,
            retry_backoff_factor=0.2,
            retry_backoff_max=1,
            connection_timeout=min(timeout, 5.0),
            read_timeout=timeout,
            # An IP host cannot match the challenge's vault.azure.net resource; allowed only on loopback.
            verify_challenge_resource=not is_loopback_url(self._url),
            connection_verify=str(self.kv.ca_file) if self.kv.ca_file else True,
        )

    def __call__(self) -> dict[str, Any]:
        outcome: dict[str, Any] = {}

        def load() -> None:
            try:
                self.env_vars = _ScopedMapping(
                    tuple(vault_secret_name(name) for name in self.settings_cls.model_fields),
                    secret_client=self._client(),
                    case_sensitive=self.case_sensitive,
                    snake_case_conversion=self._snake_case_conversion,
                    env_prefix=self.env_prefix,
                    env_parse_none_str=self.env_parse_none_str,
                )
                outcome["values"] = super(BoundedKeyVaultSource, self).__call__()
            except BaseException as exc:
                outcome["error"] = exc

        # A daemon thread: if the credential or the network hangs past every timeout, we still stop waiting.
        worker = threading.Thread(target=load, name="keyvault-load", daemon=True)
        worker.start()
        worker.join(self.kv.timeout_seconds)
        where = f"Key Vault {self._url}"
        if worker.is_alive():
            raise KeyVaultError(
                f"{where} did not answer within KEYVAULT__TIMEOUT_SECONDS={self.kv.timeout_seconds:g}s; "
                f"could not read {self._describe()}"
            )
        if "error" in outcome:
            error = outcome["error"]
            raise KeyVaultError(f"{where}: could not read {self._describe()}: {_reason(error)}") from None
        values: dict[str, Any] = outcome["values"]
        return values

    def _describe(self) -> str:
        names = [vault_secret_name(name) for name in secret_env_names(self.settings_cls)]
        return "secret(s) " + ", ".join(names) if names else "its secrets"


def _reason(error: BaseException) -> str:
    """A one-line, value-free reason: the exception type and, for HTTP errors, the status code."""
    status = getattr(error, "status_code", None)
    kind = type(error).__name__
    return f"{kind} (HTTP {status})" if status else kind
