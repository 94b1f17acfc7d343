"""Secret names in Key Vault's alphabet, shared by the settings sources and the secret store."""

from __future__ import annotations


def vault_secret_name(env_name: str) -> str:
    """`AZUREAD__CLIENT_SECRET` / `azuread__client_secret` -> `azuread--client-secret` (the vault's spelling)."""
    return env_name.lower().replace("_", "-")
