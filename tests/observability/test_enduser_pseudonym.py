"""The `enduser.id` pseudonym on spans is keyed: an HMAC under TELEMETRY__ENDUSER_ID_KEY (a secret setting), else under
a per-process key that is announced once, never a plain hash of the object id."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from app.auth.principal import Principal
from app.compose.secrets import secret_store
from app.observability import telemetry
from app.observability.telemetry import Telemetry
from app.settings import Settings
from tests.support.calls import mcp_client
from tests.support.keyvault import KeyVaultStandIn, TlsFiles, vault_section
from tests.support.otel import OtelMemory
from tests.support.servers import ServerThread
from tests.support.values import TENANT

OID = "aaaaaaaa-0000-4000-8000-000000000001"
KEY_1 = "pseudonym-key-one-0123456789abcdef0123"
KEY_2 = "pseudonym-key-two-0123456789abcdef0123"


def _hmac(key: str, oid: str) -> str:
    return hmac.new(key.encode(), oid.encode(), hashlib.sha256).hexdigest()[:32]


def _plain_sha256(oid: str) -> str:
    return hashlib.sha256(oid.encode()).hexdigest()[:32]


async def test_enduser_id_is_an_hmac_under_the_configured_key(
    otel: OtelMemory, serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    seen = []
    for key in (KEY_1, KEY_2):
        otel.spans.clear()
        server = serve(telemetry={"enduser_id_key": key})
        async with mcp_client(server.url, token("mcp.read")) as client:
            await client.call_tool("probe_read", {})
        (call,) = [s for s in otel.spans.get_finished_spans() if s.name == "tools/call probe_read"]
        pseudonym = (call.attributes or {})["enduser.id"]
        assert pseudonym != _plain_sha256(OID)  # anyone who can list object ids could reverse that
        assert pseudonym == _hmac(key, OID)
        seen.append(pseudonym)
    assert seen[0] != seen[1]  # another key, another pseudonym


def test_without_a_key_the_pseudonym_is_keyed_by_the_process() -> None:
    principal = Principal(
        tid=TENANT, sub="s", oid=OID, client_id="c", scopes=frozenset({"a"}), roles=frozenset(),
        issuer="i", token_version="2.0", token_id="t",
    )  # fmt: skip
    seen: dict[str, Any] = {}

    class Recorder:
        def is_recording(self) -> bool:
            return True

        def set_attribute(self, key: str, value: Any) -> None:
            seen[key] = value

    Telemetry(tracing=True, metrics=True).annotate(Recorder(), principal)  # type: ignore[arg-type]
    assert seen["enduser.id"] != _plain_sha256(OID) and len(seen["enduser.id"]) == 32
    Telemetry(tracing=True, metrics=True, enduser_key=KEY_1.encode()).annotate(Recorder(), principal)  # type: ignore[arg-type]
    assert seen["enduser.id"] == _hmac(KEY_1, OID)


def test_the_key_is_a_secret_setting_from_key_vault_and_redacted(
    keyvault: KeyVaultStandIn, vault_tls: TlsFiles
) -> None:
    keyvault.set("telemetry--enduser-id-key", KEY_1)
    settings = Settings(app_env="development", _env_file=None, keyvault=vault_section(keyvault, vault_tls))
    assert settings.telemetry.enduser_id_key is not None
    assert settings.telemetry.enduser_id_key.get_secret_value() == KEY_1
    assert KEY_1 not in repr(settings) and KEY_1 not in str(settings.model_dump())
    assert KEY_1 in secret_store(settings).plain_values()  # so the log redaction filter scrubs it
    with pytest.raises(ValidationError, match="TELEMETRY__ENDUSER_ID_KEY must be at least 32 characters"):
        Settings(app_env="development", _env_file=None, telemetry={"enduser_id_key": "short"})


@pytest.mark.parametrize(("env", "level"), [("development", logging.INFO), ("production", logging.WARNING)])
def test_a_per_process_key_is_announced_once(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    env: Literal["development", "production"],
    level: int,
) -> None:
    monkeypatch.setattr(telemetry, "_told_about_key", False)
    options = telemetry.TelemetryOptions(production=env == "production")  # no key configured
    caplog.set_level(logging.INFO, logger="app.telemetry")
    for _ in range(3):
        assert telemetry._enduser_key(options, tracing=True) == b""
    said = [r for r in caplog.records if "TELEMETRY__ENDUSER_ID_KEY" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == level
