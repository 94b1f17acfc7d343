"""The Key Vault check against the Key Vault stand-in (the real azure-keyvault-secrets client, its 401 challenge and
a token from the Entra stand-in): a missing secret is named with its fix, never a value; a vault down is an error."""

from __future__ import annotations

from app.doctor.vault import vault_findings, vault_name
from tests.support.entra import EntraStandIn
from tests.support.keyvault import VAULT_IDENTITY, KeyVaultStandIn, LocalIssuerCredential, TlsFiles
from tests.support.servers import free_port
from tests.support.values import TENANT

EXPECTED = {"weather--api-key": "declared by a tool of notes", "azuread--client-secret": "the facade"}


def _check(keyvault: KeyVaultStandIn, tls: TlsFiles, entra: EntraStandIn, url: str | None = None) -> list:  # type: ignore[type-arg]
    credential = LocalIssuerCredential(entra, TENANT, VAULT_IDENTITY)
    return vault_findings(url or keyvault.base, credential, EXPECTED, ca_file=tls.ca, timeout=5)


def test_a_vault_holding_every_expected_secret_is_ok(
    keyvault: KeyVaultStandIn, vault_tls: TlsFiles, entra: EntraStandIn
) -> None:
    keyvault.requests.clear()  # the stand-in is shared by the module's tests
    keyvault.set("Weather--Api-Key", "value-one")  # names are case-insensitive, as in Key Vault
    keyvault.set("azuread--client-secret", "value-two")
    (finding,) = _check(keyvault, vault_tls, entra)
    assert (finding.check, finding.status) == ("keyvault", "ok") and "2 secret(s)" in finding.message
    assert not any(path.startswith("/secrets/") for path in keyvault.requests), "names listed, no value read"


def test_a_missing_secret_is_an_error_naming_it_and_the_command_that_sets_it(
    keyvault: KeyVaultStandIn, vault_tls: TlsFiles, entra: EntraStandIn
) -> None:
    keyvault.set("azuread--client-secret", "value-that-must-not-show")
    (finding,) = _check(keyvault, vault_tls, entra)
    assert (finding.check, finding.status) == ("keyvault", "error")
    assert "weather--api-key is missing" in finding.message and "declared by a tool" in finding.message
    assert finding.fix.startswith("az keyvault secret set --vault-name 127 --name weather--api-key")
    assert "value-that-must-not-show" not in finding.message + finding.fix


def test_a_vault_down_is_an_error_with_the_access_fix(
    keyvault: KeyVaultStandIn, vault_tls: TlsFiles, entra: EntraStandIn
) -> None:
    keyvault.down = True
    (finding,) = _check(keyvault, vault_tls, entra)
    assert finding.status == "error" and "HTTP 503" in finding.message and "Key Vault Secrets User" in finding.fix


def test_an_unreachable_vault_is_an_error(keyvault: KeyVaultStandIn, vault_tls: TlsFiles, entra: EntraStandIn) -> None:
    (finding,) = _check(keyvault, vault_tls, entra, url=f"https://127.0.0.1:{free_port()}/")
    assert finding.status == "error" and "unreachable" in finding.message


def test_the_vault_name_comes_from_its_host() -> None:
    assert vault_name("https://contoso-kv.vault.azure.net/") == "contoso-kv"
