"""`AZUREAD__MANAGED_IDENTITY`: a credential for the facade on every server, carried to each server's credential, and
refused where it cannot work (the dev issuer) or is malformed, in one line naming the setting."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.settings import Settings, describe_invalid

PRODUCTION: dict[str, Any] = {
    "app_env": "production",
    "mcp": {"resource_host": "https://mcp.example.com"},
    "tools": {"lock_mode": "warn"},
    "auth_server": {"enabled": True},
    "servers": {"hr": {"path": "/hr/mcp", "client_id": "9a7e3b21-0000-4000-8000-000000000002"}},
}
ENTRA = {"tenant_id": "72f988bf-0000-4000-8000-000000000001", "client_id": "9a7e3b21-0000-4000-8000-000000000001"}


def _refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, **values)
    return describe_invalid(raised.value)


def test_the_facade_takes_the_managed_identity_as_every_servers_credential() -> None:
    client_id = "5F4F3C2E-1B0A-4D9C-8E7F-6A5B4C3D2E1F"
    azuread = ENTRA | {"managed_identity": True, "managed_identity_client_id": client_id}
    served = Settings(_env_file=None, azuread=azuread, **PRODUCTION).served()
    assert [(one.key, one.managed_identity, one.managed_identity_client_id) for one in served] == [
        ("", True, client_id.lower()),
        ("hr", True, client_id.lower()),
    ]
    assert [one.client_secret for one in served] == [None, None]


def test_without_it_the_facade_still_needs_a_credential_and_names_the_managed_identity() -> None:
    refused = _refusal(azuread=ENTRA, **PRODUCTION)
    assert refused.startswith("AUTH_SERVER__ENABLED needs this server's credential")
    assert "AZUREAD__MANAGED_IDENTITY=true" in refused and "\n" not in refused
    refused = _refusal(azuread=ENTRA | {"client_secret": "s"}, **PRODUCTION)
    assert "SERVERS__HR__CLIENT_SECRET" in refused and "AZUREAD__MANAGED_IDENTITY=true for every server" in refused


def test_the_dev_issuer_takes_no_managed_identity() -> None:
    refused = _refusal(app_env="development", azuread={"managed_identity": True})
    assert "dev issuer takes no managed identity" in refused and "AZUREAD__TENANT_ID" in refused
    with_entra = Settings(_env_file=None, app_env="development", azuread=ENTRA | {"managed_identity": True})
    assert not with_entra.dev_issuer_active and with_entra.served()[0].managed_identity


@pytest.mark.parametrize("value", ["not-a-guid", "/subscriptions/x/resourceGroups/y", "12345"])
def test_a_client_id_that_is_no_guid_is_refused(value: str) -> None:
    refused = _refusal(app_env="development", azuread={"managed_identity_client_id": value})
    assert "AZUREAD__MANAGED_IDENTITY_CLIENT_ID" in refused and "(a GUID)" in refused


def test_an_empty_client_id_is_unset() -> None:
    settings = Settings(_env_file=None, app_env="development", azuread={"managed_identity_client_id": " "})
    assert settings.azuread.managed_identity_client_id is None
