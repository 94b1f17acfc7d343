"""Issue 18, defect 10: the `enduser.id` pseudonym is keyed (10a); a taken dev-issuer port is one line (10b)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from app.auth.principal import Principal
from app.compose.secrets import secret_store
from app.observability import telemetry
from app.observability.telemetry import Telemetry
from app.settings import Settings
from tests.conftest import REPO, TENANT, OtelMemory, mcp_client, vault_section
from tests.support.keyvault import KeyVaultStandIn, TlsFiles
from tests.support.servers import ServerThread, free_port

OID = "aaaaaaaa-0000-4000-8000-000000000001"
KEY_1 = "pseudonym-key-one-0123456789abcdef0123"
KEY_2 = "pseudonym-key-two-0123456789abcdef0123"


def _hmac(key: str, oid: str) -> str:
    return hmac.new(key.encode(), oid.encode(), hashlib.sha256).hexdigest()[:32]


def _plain_sha256(oid: str) -> str:
    return hashlib.sha256(oid.encode()).hexdigest()[:32]


# ---- 10a: a keyed pseudonym ---------------------------------------------------------------------------------------
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


# ---- 10b: a taken dev-issuer port -------------------------------------------------------------------------------
def _start(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AZUREAD__", "MCP__", "APP_ENV", "TOOLS__", "KEYVAULT__", "DEV_ISSUER__", "SERVER__"))
    }
    return subprocess.run(
        command,
        env={**clean, "PYTHONPATH": str(REPO), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["uvicorn app.main:app", "python -m app"])
def test_a_taken_dev_issuer_port_is_one_line_naming_the_port_and_the_setting(tmp_path: Path, entry: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "APP_ENV": "development",
            "DEV_ISSUER__PORT": str(port),
            "DEV_ISSUER__KEY_DIR": str(tmp_path / "dev"),
            "TOOLS__DIR": str(REPO / "tools"),
            "TOOLS__LOCK_MODE": "off",
            "SERVER__PORT": str(free_port()),
        }
        arguments = ["uvicorn", "app.main:app", "--port", "0"] if entry.startswith("uvicorn") else ["app"]
        result = _start([sys.executable, "-m", *arguments], env, tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        f"configuration error: the dev issuer cannot listen on 127.0.0.1:{port} (address in use); "
        "set DEV_ISSUER__PORT to a free port, or DEV_ISSUER__EMBEDDED=false to use one already running\n"
    )
