"""A second server's own settings from Key Vault (`servers--{name}--client-secret`, ...): read like any setting,
kept in the secret store under that name, scrubbed from logs, and used as that server's credential."""

from __future__ import annotations

import pytest

from app.compose.secrets import client_credential, secret_store
from app.observability.redaction import REDACTOR, install_redaction
from app.settings import Settings
from tests.support.keyvault import KeyVaultStandIn, TlsFiles, vault_section
from tests.support.values import SUPPORT


def test_a_servers_settings_and_secret_come_from_the_vault(
    keyvault: KeyVaultStandIn, vault_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVERS__FINANCE__PATH", "/finance/mcp")  # the rest of the section is in the vault
    keyvault.set("servers--finance--client-id", "f1000000-0000-4000-8000-00000000f111")
    keyvault.set("servers--finance--client-secret", "finance-vault-secret-value")
    keyvault.set("azuread--client-secret", "first-vault-secret-value")
    settings = Settings(
        _env_file=None,
        app_env="development",
        keyvault=vault_section(keyvault, vault_tls),
        tools={"dir": SUPPORT / "two_servers" / "hr"},
        servers={"finance": {"tools_dir": SUPPORT / "two_servers" / "finance" / "tools"}},
    )
    finance = settings.servers["finance"]
    assert finance.path == "/finance/mcp" and finance.client_id == "f1000000-0000-4000-8000-00000000f111"
    assert finance.client_secret is not None
    store = secret_store(settings)
    assert client_credential(settings, store, "finance")() == "finance-vault-secret-value"
    assert client_credential(settings, store)() == "first-vault-secret-value"  # each server its own
    install_redaction(store.plain_values)
    try:
        assert "finance-vault-secret-value" not in REDACTOR.text("leaked finance-vault-secret-value here")
    finally:
        REDACTOR.remove(store.plain_values)
