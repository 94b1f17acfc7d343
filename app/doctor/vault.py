"""The Key Vault check: the vault answers this machine's credential and holds every secret the server will ask it
for. Only names are listed (the vault's list call returns no values), so the doctor never holds a secret."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.keyvault.secrets import SecretClient

from app.core.findings import Finding, error, ok
from app.core.hosts import is_loopback_host

ACCESS_FIX = (
    "check KEYVAULT__URL, that this machine reaches the vault (network, private endpoint, firewall), and that the "
    "identity (KEYVAULT__CREDENTIAL; `az login` for `default` on a workstation) has the Key Vault Secrets User role"
)


def vault_name(url: str) -> str:
    """`https://contoso-kv.vault.azure.net/` -> `contoso-kv` (for the `az keyvault` fix)."""
    return (urlsplit(url).hostname or url).split(".", 1)[0]


def vault_findings(
    url: str,
    credential: TokenCredential,
    expected: Mapping[str, str],
    ca_file: Path | None = None,
    timeout: float = 10.0,
) -> list[Finding]:
    """`keyvault`: list the vault's secret names within `timeout`; each of `expected` (name -> what needs it) that
    is absent or disabled is an error naming it and the `az keyvault secret set` that fixes it."""
    outcome: dict[str, object] = {}

    def listing() -> None:
        try:
            client = SecretClient(
                vault_url=url,
                credential=credential,
                retry_total=1,
                connection_timeout=min(timeout, 5.0),
                read_timeout=timeout,
                # An IP host cannot match the challenge's vault.azure.net resource (as the settings source does).
                verify_challenge_resource=not is_loopback_host(urlsplit(url).hostname),
                connection_verify=str(ca_file) if ca_file else True,
            )
            with client:
                outcome["names"] = {
                    (item.name or "").lower(): bool(item.enabled) for item in client.list_properties_of_secrets()
                }
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=listing, name="doctor-keyvault", daemon=True)
    worker.start()
    worker.join(timeout + 2)
    if worker.is_alive():
        return [error("keyvault", f"Key Vault {url} did not answer within {timeout:g}s", ACCESS_FIX)]
    if "error" in outcome:
        return [error("keyvault", f"Key Vault {url}: {_reason(outcome['error'])}", ACCESS_FIX)]
    names = outcome["names"]
    assert isinstance(names, dict)
    found: list[Finding] = []
    for name, why in sorted(expected.items()):
        enabled = names.get(name.lower())
        if enabled:
            continue
        state = "is disabled" if enabled is False else "is missing"
        found.append(
            error(
                "keyvault",
                f"Key Vault {url}: the secret {name} {state} ({why})",
                f"az keyvault secret set --vault-name {vault_name(url)} --name {name} --value …"
                + (" (or enable it)" if enabled is False else ""),
            )
        )
    if not found:
        held = f"holds the {len(expected)} secret(s) the server reads" if expected else "answers (no secret expected)"
        found.append(ok("keyvault", f"Key Vault {url} {held}"))
    return found


def _reason(exc: object) -> str:
    """A one-line, value-free reason: the class, and for HTTP errors the status code."""
    kind = type(exc).__name__
    if isinstance(exc, ClientAuthenticationError) and not exc.status_code:  # the credential, not the vault
        return f"no token for the vault ({kind})"
    if isinstance(exc, HttpResponseError) and exc.status_code:
        return f"{kind} (HTTP {exc.status_code})"
    if isinstance(exc, ServiceRequestError):
        return f"unreachable ({kind})"
    return kind
