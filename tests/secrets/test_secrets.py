"""Secrets: Key Vault (the real azure-keyvault-secrets client against a local stand-in) and the other sources into
settings, bounded startup, rotation without restart, and no secret or token in logs, errors or tool results."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from mcp import Client
from mcp.server.request_state import InvalidRequestState
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR
from pydantic import SecretStr, ValidationError

from app.compose.secrets import secret_store, settings_secrets
from app.core.names import vault_secret_name
from app.main import create_app
from app.observability.redaction import MASK, Redactor
from app.secrets.store import SETTINGS_NAMES, SecretsError, SecretStore, check_tool_secret_name
from app.server.build import request_state_security
from app.settings import Settings
from app.settings.keyvault import CREDENTIALS, KeyVaultError
from tests.support.app_process import run_uvicorn
from tests.support.calls import mcp_client, modern_call, rpc
from tests.support.entra import EntraStandIn, new_key
from tests.support.keyvault import VAULT_IDENTITY, KeyVaultStandIn, LocalIssuerCredential, TlsFiles, vault_section
from tests.support.servers import ServerThread, app_state, free_port
from tests.support.values import CLIENT_ID, REPO, REQUEST_STATE_KEY, TENANT, settings_for

KEY_A = "a" * 40
KEY_B = "b" * 40


def _write_tool(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(textwrap.dedent(source))
    return directory


def _dev(**values: Any) -> Settings:
    return Settings(app_env="development", **values)


# ---- sources, mapping, precedence ---------------------------------------------------------------------------
@pytest.mark.parametrize("vault_name", ["azuread--client-secret", "AzureAd--Client-Secret", "AZUREAD--CLIENT-SECRET"])
def test_a_vault_secret_fills_the_nested_setting(
    keyvault: KeyVaultStandIn, vault_tls: TlsFiles, vault_name: str
) -> None:
    keyvault.set(vault_name, "vault-client-secret-value")
    keyvault.set("mcp--request-state-keys", f"{KEY_A},{KEY_B}")
    keyvault.set("someone-elses--secret", "not-for-us")
    settings = _dev(_env_file=None, keyvault=vault_section(keyvault, vault_tls))
    assert settings.azuread.client_secret is not None
    assert settings.azuread.client_secret.get_secret_value() == "vault-client-secret-value"
    assert [k.get_secret_value() for k in settings.mcp.request_state_keys] == [KEY_A, KEY_B]
    # The real client went through the 401 challenge, and only our names were fetched (not the whole vault).
    assert keyvault.unauthenticated >= 1
    assert not any("someone-elses" in path for path in keyvault.requests)


def test_precedence_init_env_vault_dotenv_secrets_dir_default(
    keyvault: KeyVaultStandIn, vault_tls: TlsFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("AZUREAD__CLIENT_SECRET=from-dotenv\n")
    secrets_dir = tmp_path / "run-secrets"
    secrets_dir.mkdir()
    (secrets_dir / "azuread__client_secret").write_text("from-secrets-dir")
    keyvault.set("azuread--client-secret", "from-vault")
    monkeypatch.setenv("AZUREAD__CLIENT_SECRET", "from-env")
    vault = vault_section(keyvault, vault_tls)

    def read(**init: Any) -> str | None:
        settings = _dev(_env_file=dotenv, _secrets_dir=secrets_dir, keyvault=vault, **init)
        value = settings.azuread.client_secret
        if value is not None:  # any debug dump masks it
            assert value.get_secret_value() not in repr(settings) + settings.model_dump_json() + str(settings)
        return None if value is None else value.get_secret_value()

    assert read(azuread={"client_secret": "from-init"}) == "from-init"
    assert read() == "from-env"
    monkeypatch.delenv("AZUREAD__CLIENT_SECRET")
    assert read() == "from-vault"
    keyvault.clear()
    assert read() == "from-dotenv"
    dotenv.write_text("")
    assert read() == "from-secrets-dir"
    (secrets_dir / "azuread__client_secret").unlink()
    assert read() is None


def test_keyvault_settings_are_read_from_dotenv_before_the_vault(
    keyvault: KeyVaultStandIn, vault_tls: TlsFiles, tmp_path: Path
) -> None:
    keyvault.set("azuread--client-secret", "bootstrapped-from-dotenv")
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        f"KEYVAULT__URL={keyvault.base}\nKEYVAULT__CREDENTIAL=local-issuer\nKEYVAULT__CA_FILE={vault_tls.ca}\n"
    )
    settings = _dev(_env_file=dotenv)
    assert settings.azuread.client_secret == SecretStr("bootstrapped-from-dotenv")


@pytest.mark.parametrize(
    ("url", "verified"),
    [("https://contoso.vault.azure.net/", True), ("https://127.0.0.1:8443/", False), ("https://localhost/", False)],
)
def test_challenge_resource_verification_is_off_only_for_loopback_vaults(
    keyvault: KeyVaultStandIn, url: str, verified: bool
) -> None:
    from app.settings import KeyVaultSettings
    from app.settings.keyvault import BoundedKeyVaultSource

    source = BoundedKeyVaultSource(Settings, KeyVaultSettings(url=url, credential="local-issuer"))
    policy = source._client()._client._config.authentication_policy
    assert policy._verify_challenge_resource is verified


def test_tools_reach_only_their_own_secrets(tmp_path: Path) -> None:
    from app.secrets.store import SecretNotFoundError, bound_store, secret

    store = SecretStore(
        settings_secrets(_dev(_env_file=None, azuread={"client_secret": "server-client-secret"})),
        {"weather--api-key": SecretStr("weather-key-value")},
    )
    with bound_store(store):
        assert secret("weather--api-key").get_secret_value() == "weather-key-value"
        with pytest.raises(SecretNotFoundError, match="azuread--client-secret"):
            secret("azuread--client-secret")
        with pytest.raises(SecretNotFoundError, match="other--key"):
            secret("other--key")
    assert store.get("azuread--client-secret").get_secret_value() == "server-client-secret"  # the framework's view


def test_the_names_a_tool_secret_may_not_shadow_are_exactly_the_settings_names() -> None:
    """The secret store knows them without importing settings; this keeps its list equal to `Settings`' fields."""
    assert frozenset(Settings.model_fields) == SETTINGS_NAMES


def test_vault_names_map_to_env_style_names() -> None:
    assert vault_secret_name("AZUREAD__CLIENT_SECRET") == "azuread--client-secret"
    assert vault_secret_name("weather__api_key") == "weather--api-key"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1/", "ftp://vault", "https://"], ids=["plain-http", "other-scheme", "no-host"]
)
def test_a_non_https_vault_url_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="KEYVAULT__URL must be https"):
        _dev(_env_file=None, keyvault={"url": url})


def test_an_unknown_credential_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="KEYVAULT__CREDENTIAL must be one of"):
        _dev(_env_file=None, keyvault={"url": "https://x.vault.azure.net/", "credential": "password"})


# ---- bounded startup ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("failure", ["refused", "hangs", "503"])
def test_vault_down_fails_startup_within_the_timeout_naming_the_secrets(
    entra: EntraStandIn, keyvault: KeyVaultStandIn, vault_tls: TlsFiles, black_hole: int, failure: str
) -> None:
    keyvault.set("azuread--client-secret", "value-that-must-not-show")
    url = {"refused": f"https://127.0.0.1:{free_port()}", "hangs": f"https://127.0.0.1:{black_hole}"}.get(
        failure, keyvault.base
    )
    keyvault.down = failure == "503"
    timeout = 2.0
    started = time.monotonic()
    with pytest.raises(KeyVaultError) as raised:
        settings_for(
            entra, free_port(), keyvault={**vault_section(keyvault, vault_tls, timeout_seconds=timeout), "url": url}
        )
    elapsed = time.monotonic() - started
    assert elapsed < timeout + 2, f"startup took {elapsed:.1f}s"
    message = str(raised.value)
    assert "azuread--client-secret" in message and "mcp--request-state-keys" in message
    assert "value-that-must-not-show" not in message


@pytest.mark.slow
def test_an_unreachable_vault_stops_the_real_server_with_a_clear_message(tmp_path: Path) -> None:
    env = {
        "APP_ENV": "development",
        "KEYVAULT__URL": f"https://127.0.0.1:{free_port()}/",
        "KEYVAULT__CREDENTIAL": "managed_identity",
        "KEYVAULT__TIMEOUT_SECONDS": "3",
    }
    result = run_uvicorn(env, tmp_path)
    assert result.returncode != 0
    assert "secrets error: Key Vault" in result.stderr and "azuread--client-secret" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_tool_secret_fails_startup_naming_it(
    entra: EntraStandIn, keyvault: KeyVaultStandIn, vault_tls: TlsFiles, tmp_path: Path
) -> None:
    keyvault.set("weather--region", "west-europe-secret-value")
    tools = _write_tool(
        tmp_path,
        "weather.py",
        """
        from typing import Annotated

        from app import Secret, tool

        @tool(scopes=["mcp.read"])
        def forecast(
            api_key: Annotated[str, Secret("weather--api-key")], region: Annotated[str, Secret("weather--region")]
        ) -> str:
            return region[:0] + "sunny"
        """,
    )
    settings = settings_for(entra, free_port(), keyvault=vault_section(keyvault, vault_tls), tools={"dir": tools})
    with pytest.raises(SecretsError) as raised:
        create_app(settings)
    assert "weather--api-key" in str(raised.value) and "WEATHER__API_KEY" in str(raised.value)
    assert "weather--region" not in str(raised.value) and "west-europe-secret-value" not in str(raised.value)


@pytest.mark.slow
def test_a_missing_tool_secret_stops_the_real_server_with_a_clear_message(tmp_path: Path) -> None:
    tools = _write_tool(
        tmp_path / "t",
        "weather.py",
        """
        from typing import Annotated

        from app import Secret, tool

        @tool(scopes=["mcp.read"])
        def forecast(api_key: Annotated[str, Secret("weather--api-key")]) -> str:
            return "sunny"
        """,
    )
    result = run_uvicorn({"APP_ENV": "development", "TOOLS__DIR": str(tools)}, tmp_path)
    assert result.returncode != 0
    assert "secrets error" in result.stderr and "weather--api-key" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["weather", "Weather--Key", "weather--", "--key", "a---b", "mcp--api-key", "x--y_z"])
def test_malformed_tool_secret_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="tool secret name"):
        check_tool_secret_name(name)


# ---- request-state key ring ---------------------------------------------------------------------------------
def _production(**mcp: Any) -> Settings:
    return Settings(
        _env_file=None,
        app_env="production",
        azuread={"tenant_id": TENANT, "client_id": CLIENT_ID},
        mcp={"resource_host": "https://mcp.example", **mcp},
    )


def test_production_stateless_without_a_key_ring_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match="MCP__REQUEST_STATE_KEYS"):
        _production(stateless=True)


def test_production_with_several_workers_without_a_key_ring_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    with pytest.raises(ValidationError, match="MCP__REQUEST_STATE_KEYS"):
        _production(stateless=True, request_state_keys=[])
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    assert _production(stateless=False).mcp.request_state_keys == []
    monkeypatch.setenv("SERVER__WORKERS", "3")  # the container image's worker count
    with pytest.raises(ValidationError, match="MCP__REQUEST_STATE_KEYS"):
        _production(stateless=True)


@pytest.mark.parametrize("variable", ["WEB_CONCURRENCY", "SERVER__WORKERS"])
def test_sessions_with_several_workers_are_refused_in_every_environment(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """A session lives in one worker: another worker would answer it 404. One worker per replica, or stateless."""
    monkeypatch.setenv(variable, "2")
    with pytest.raises(ValidationError, match=r"MCP__STATELESS=false .* with 2 workers"):
        _production(stateless=False, request_state_keys=[KEY_A])
    with pytest.raises(ValidationError, match=r"MCP__STATELESS=false .* with 2 workers"):
        _dev(_env_file=None)
    assert _dev(_env_file=None, mcp={"stateless": True}).workers == 2


def test_a_short_request_state_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as raised:
        _dev(_env_file=None, mcp={"request_state_keys": "short-key-value"})
    assert "32 bytes" in str(raised.value)
    assert all("short-key-value" not in str(err["msg"]) for err in raised.value.errors())


def test_replicas_sharing_the_ring_unseal_each_others_state_and_rotation_keeps_old_tokens() -> None:
    replica_a = request_state_security(_store([KEY_A]))
    store_b = _store([KEY_A])
    replica_b = request_state_security(store_b)
    sealed_by_a = replica_a.codec.seal(b"round-1")
    assert replica_b.codec.unseal(sealed_by_a) == b"round-1"
    # Development without a ring: a per-process key, so another process cannot unseal.
    with pytest.raises(InvalidRequestState):
        request_state_security(_store([])).codec.unseal(sealed_by_a)
    # Rotation the SDK's way: [new, old] seals with new, still unseals old.
    store_b.update(settings_secrets(_dev(_env_file=None, mcp={"request_state_keys": [KEY_B, KEY_A]})), {})
    sealed_by_new = replica_b.codec.seal(b"round-2")
    assert replica_b.codec.unseal(sealed_by_a) == b"round-1"
    with pytest.raises(InvalidRequestState):
        replica_a.codec.unseal(sealed_by_new)


CONFIRMING_TOOL = """
    from typing import Annotated

    from mcp.server.mcpserver.resolve import Elicit, Resolve
    from pydantic import BaseModel

    from app import tool


    class Confirm(BaseModel):
        ok: bool


    def ask() -> Elicit[Confirm]:
        return Elicit("Proceed?", Confirm)


    @tool(scopes=["mcp.read"])
    def confirmed(confirm: Annotated[Confirm, Resolve(ask)]) -> str:
        \"\"\"Asks the client to confirm (a 2026-07-28 multi-round-trip), then answers.\"\"\"
        return f"confirmed={confirm.ok}"
"""


async def test_a_multi_round_trip_continues_on_another_replica_with_the_shared_ring(
    serve: Callable[..., ServerThread], token: Callable[..., str], tmp_path: Path
) -> None:
    tools = _write_tool(tmp_path, "confirming.py", CONFIRMING_TOOL)
    replica_a = serve(tools={"dir": tools}, mcp={"request_state_keys": [KEY_A]})
    replica_b = serve(tools={"dir": tools}, mcp={"request_state_keys": [KEY_B, KEY_A]})  # mid-rotation ring
    stranger = serve(tools={"dir": tools}, mcp={"request_state_keys": [KEY_B]})
    headers, body = modern_call("confirmed", {})
    body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = {"elicitation": {"form": {}}}
    headers["Authorization"] = f"Bearer {token('mcp.read')}"
    async with httpx2.AsyncClient(timeout=10) as http:
        first = (await http.post(f"{replica_a.url}/mcp", json=body, headers=headers)).json()["result"]
        assert first["resultType"] == "input_required"
        (question,) = first["inputRequests"]
        body["params"]["inputResponses"] = {question: {"action": "accept", "content": {"ok": True}}}
        body["params"]["requestState"] = first["requestState"]
        resumed = (await http.post(f"{replica_b.url}/mcp", json=body, headers=headers)).json()
        refused = (await http.post(f"{stranger.url}/mcp", json=body, headers=headers)).json()
    assert resumed["result"]["structuredContent"] == {"result": "confirmed=True"}
    # A replica without the sealing key cannot unseal: the SDK refuses the echoed state.
    assert refused["error"]["data"] == {"reason": "invalid_request_state"}


def _store(keys: list[str]) -> SecretStore:
    return secret_store(_dev(_env_file=None, mcp={"request_state_keys": keys}))


# ---- rotation -----------------------------------------------------------------------------------------------
ROTATING_TOOL = """
    import hashlib

    from typing import Annotated

    from app import Secret, tool

    @tool(scopes=["mcp.read"])
    def key_fingerprint(key: Annotated[str, Secret("weather--api-key")]) -> str:
        \"\"\"A fingerprint of the key the tool would call its upstream with.\"\"\"
        return hashlib.sha256(key.encode()).hexdigest()[:12]
"""


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


async def _tool_text(url: str, bearer: str, name: str, args: dict[str, Any] | None = None) -> tuple[bool, str]:
    async with mcp_client(url, bearer) as client:
        result = await client.call_tool(name, args or {})
    return bool(result.is_error), "".join(getattr(item, "text", "") for item in result.content)


async def test_rotated_secrets_reach_consumers_after_the_refresh_interval_without_restart(
    keyvault: KeyVaultStandIn,
    vault_tls: TlsFiles,
    serve: Callable[..., ServerThread],
    token: Callable[..., str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    keyvault.set("weather--api-key", "api-key-version-one")
    keyvault.set("azuread--client-secret", "client-secret-version-one")
    tools = _write_tool(tmp_path, "rotating.py", ROTATING_TOOL)
    server = serve(keyvault=vault_section(keyvault, vault_tls, refresh_seconds=0.5), tools={"dir": tools})
    store: SecretStore = app_state(server).secrets
    rebuilt: list[str] = []  # stands in for the MSAL client: rebuilt with the new client secret on change
    store.on_change(
        lambda current, changed: (
            rebuilt.append(current.get("azuread--client-secret").get_secret_value())
            if "azuread--client-secret" in changed
            else None
        )
    )
    bearer = token("mcp.read")
    assert await _tool_text(server.url, bearer, "key_fingerprint") == (False, _fingerprint("api-key-version-one"))

    keyvault.set("azuread--client-secret", "client-secret-version-two")
    keyvault.set("weather--api-key", "api-key-version-two")
    deadline = time.monotonic() + 10  # give-up bounds: a refresh reads one secret after another, so a pass that
    # began between the two writes sees the tool's new key first and the client secret's one interval later
    while await _tool_text(server.url, bearer, "key_fingerprint") != (False, _fingerprint("api-key-version-two")):
        assert time.monotonic() < deadline, "the rotated tool secret was never seen"
        await asyncio.sleep(0.2)
    while not rebuilt:
        assert time.monotonic() < deadline + 10, "the rotated client secret never reached its consumer"
        await asyncio.sleep(0.1)
    assert rebuilt == ["client-secret-version-two"]
    assert store.get("azuread--client-secret").get_secret_value() == "client-secret-version-two"
    assert server.thread.is_alive()

    # An outage: the last good values stay, and one warning is logged for the whole outage.
    caplog.set_level(logging.INFO, logger="app.secrets")
    caplog.clear()
    keyvault.down = True
    await asyncio.sleep(2.5)  # several refresh intervals
    assert await _tool_text(server.url, bearer, "key_fingerprint") == (False, _fingerprint("api-key-version-two"))
    warnings = [r for r in caplog.records if r.name == "app.secrets" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "keeping the last good values" in warnings[0].getMessage()
    assert "weather--api-key" in warnings[0].getMessage() or "Key Vault" in warnings[0].getMessage()
    keyvault.down = False
    deadline = time.monotonic() + 10
    while not any("recovered" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the refresh never recovered"
        await asyncio.sleep(0.2)


# ---- nothing leaks ------------------------------------------------------------------------------------------
LEAKY_TOOL = """
    import logging

    from mcp.server.mcpserver.exceptions import ToolError

    from typing import Annotated

    from app import Secret, tool

    log = logging.getLogger("tools.leaky")
    DOWNSTREAM_TOKEN = "{downstream}"

    @tool(scopes=["mcp.read"])
    def leaky(mode: str, key: Annotated[str, Secret("leaky--api-key")]) -> str:
        \"\"\"A careless tool: logs and raises its secret and a downstream token.\"\"\"
        log.info("calling upstream with key %s and Authorization: Bearer %s", key, DOWNSTREAM_TOKEN)
        if mode == "crash":
            raise RuntimeError(f"upstream rejected key {{key}} for token {{DOWNSTREAM_TOKEN}}")
        if mode == "refuse":
            raise ToolError(f"upstream rejected key {{key}}")
        if mode == "echo":
            return f"your key is {{key}}"
        return "ok"
"""


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    """Everything the process logs at DEBUG, through a root handler installed before the app starts."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(level)


async def test_a_full_request_cycle_logs_no_secret_and_no_token(
    entra: EntraStandIn,
    keyvault: KeyVaultStandIn,
    vault_tls: TlsFiles,
    serve: Callable[..., ServerThread],
    token: Callable[..., str],
    tmp_path: Path,
    captured_log: io.StringIO,
) -> None:
    api_key = "leaky-api-key-7f3a9c2e51"
    keyvault.set("leaky--api-key", api_key)
    downstream = entra.token(tenant=TENANT, audience="api://downstream-api")
    tools = _write_tool(tmp_path, "leaky.py", LEAKY_TOOL.format(downstream=downstream))
    server = serve(keyvault=vault_section(keyvault, vault_tls), tools={"dir": tools})
    late = io.StringIO()  # a handler added after startup (e.g. a JSON handler) is covered too
    late_handler = logging.StreamHandler(late)
    logging.getLogger().addHandler(late_handler)
    try:
        # 1. an auth failure: a token signed by a key Entra never published
        forged = entra.token(tenant=TENANT, audience=CLIENT_ID, key=new_key())
        async with httpx2.AsyncClient(timeout=10) as http:
            response = await http.post(
                f"{server.url}/mcp",
                json=rpc("tools/list"),
                headers={"Authorization": f"Bearer {forged}", "Accept": "application/json, text/event-stream"},
            )
        assert response.status_code == 401 and forged not in response.text
        good = token("mcp.read")
        # 2. a tool raising an exception whose message contains the secret (and a token)
        crashed = await _tool_text(server.url, good, "leaky", {"mode": "crash"})
        refused = await _tool_text(server.url, good, "leaky", {"mode": "refuse"})
        echoed = await _tool_text(server.url, good, "leaky", {"mode": "echo"})
        # 3. a successful call
        succeeded = await _tool_text(server.url, good, "leaky", {"mode": "ok"})
    finally:
        logging.getLogger().removeHandler(late_handler)

    assert crashed == (True, "Error executing tool leaky")
    assert refused[0] and api_key not in refused[1] and MASK in refused[1]
    assert not echoed[0] and api_key not in echoed[1] and MASK in echoed[1]
    assert succeeded == (False, "ok")
    for text in (captured_log.getvalue(), late.getvalue()):
        # The events are there (so the absence below means something) ...
        assert "raised an unexpected exception" in text and "Traceback" in text and "calling upstream" in text
        assert MASK in text
        # ... and no secret or token is.
        for needle in (api_key, downstream, forged, good, KEY_A, REQUEST_STATE_KEY):
            assert needle not in text


LEAKY_TOOLS = REPO / "tests" / "support" / "leaky_tools"


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_json_rpc_errors_of_resources_prompts_and_tools_reach_the_client_without_the_secret(
    keyvault: KeyVaultStandIn,
    vault_tls: TlsFiles,
    serve: Callable[..., ServerThread],
    token: Callable[..., str],
    mode: str,
) -> None:
    """An MCPError (or the SDK's ResourceError, which it turns into one) is a JSON-RPC error, not a result: its message
    and data are scrubbed too, and it stays a clear error."""
    api_key = "leaky-api-key-3d81b07c95"
    keyvault.set("leaky--api-key", api_key)
    server = serve(keyvault=vault_section(keyvault, vault_tls), tools={"dir": LEAKY_TOOLS})
    calls: list[tuple[str, Callable[[Client], Awaitable[object]]]] = [
        ("resource MCPError", lambda c: c.read_resource("leaky://failing/mcp-error")),
        ("resource ResourceError", lambda c: c.read_resource("leaky://failing/resource-error")),
        ("prompt MCPError", lambda c: c.get_prompt("failing_prompt", {"how": "mcp-error"})),
        ("tool MCPError", lambda c: c.call_tool("failing_tool", {})),
    ]
    async with mcp_client(server.url, token("mcp.read"), mode=mode) as client:
        for what, call in calls:
            with pytest.raises(MCPError) as raised:
                await call(client)
            error = raised.value.error
            assert error.code == INTERNAL_ERROR, what
            assert error.message == f"upstream refused key {MASK}", what  # still says what went wrong
            assert api_key not in repr(error.data), what


# ---- the redactor (hostile input) ---------------------------------------------------------------------------
_SECRET_TEXT = st.text(st.characters(blacklist_characters="[]", blacklist_categories=["Cs"]), min_size=8, max_size=40)


@given(secret=_SECRET_TEXT, before=st.text(max_size=50), after=st.text(max_size=50))
def test_a_known_secret_never_survives_redaction(secret: str, before: str, after: str) -> None:
    redactor = Redactor()
    redactor.add(lambda: frozenset({secret}))
    redacted = redactor.text(before + secret + after + secret)
    assert secret not in redacted.replace(MASK, "\0")


@given(st.from_regex(r"eyJ[A-Za-z0-9_-]{4,30}\.eyJ[A-Za-z0-9_-]{4,60}\.[A-Za-z0-9_-]{0,40}", fullmatch=True))
def test_any_jwt_shaped_string_is_redacted(jwt_text: str) -> None:
    redacted = Redactor().text(f"token={jwt_text}; Authorization: Bearer {jwt_text}")
    assert jwt_text not in redacted


_TOKENS = st.one_of(
    st.from_regex(r"eyJ[A-Za-z0-9_-]{2,10}\.eyJ[A-Za-z0-9_-]{2,10}\.[A-Za-z0-9_-]{0,10}", fullmatch=True),
    st.tuples(
        st.sampled_from(["Bearer", "BEARER", "bEaReR"]),
        st.sampled_from([" ", "\t", "\n "]),
        st.from_regex(r"[A-Za-z0-9._~+/-]{20,30}", fullmatch=True),
    ).map("".join),
)


def _json_data(planted: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    text = st.one_of(st.text(max_size=30), planted, st.tuples(st.text(max_size=5), planted).map("".join))
    return st.recursive(
        st.none() | st.booleans() | st.integers() | text,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=12,
    )


@pytest.mark.slow
@hypothesis_settings(max_examples=600)
@given(st.data())
def test_result_redaction_with_the_pre_scan_equals_the_full_walk(data: st.DataObject) -> None:
    # The pre-scan may only skip data in which the full walk would change nothing (escapable secrets included).
    plain = st.from_regex(r"[A-Za-z0-9._-]{8,20}", fullmatch=True)  # pre-scanned; _SECRET_TEXT often is not
    secrets = data.draw(st.lists(st.one_of(plain, _SECRET_TEXT), min_size=1, max_size=2))
    value = data.draw(_json_data(st.one_of(st.sampled_from(secrets), _TOKENS)))
    redactor = Redactor()
    redactor.add(lambda: frozenset(secrets))
    compiled = redactor._current()
    assert redactor.data(value) == redactor._data(value, compiled.secrets, compiled.shortest)


def test_bearer_credentials_are_redacted_but_challenges_stay_readable() -> None:
    redactor = Redactor()
    assert "opaque-downstream-token-123456" not in redactor.text("Authorization: Bearer opaque-downstream-token-123456")
    challenge = 'Bearer resource_metadata="https://x/.well-known/oauth-protected-resource/mcp"'
    assert redactor.text(challenge) == challenge


def test_redaction_covers_exception_text_traceback_and_extras(captured_log: io.StringIO) -> None:
    from app.observability.redaction import REDACTOR, install_redaction

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    logging.getLogger("t").addHandler(keep)

    def provider() -> frozenset[str]:
        return frozenset({"extra-secret-value-42"})

    install_redaction(provider)
    try:
        try:
            raise ValueError("boom extra-secret-value-42")
        except ValueError:
            logging.getLogger("t").exception(
                "failed %s", "extra-secret-value-42", extra={"detail": "extra-secret-value-42"}
            )
    finally:
        REDACTOR.remove(provider)
        logging.getLogger("t").removeHandler(keep)
    text = captured_log.getvalue()
    assert "failed [REDACTED]" in text and "ValueError: boom [REDACTED]" in text and "Traceback" in text
    assert "extra-secret-value-42" not in text
    assert records[0].detail == MASK and records[0].exc_info is None  # type: ignore[attr-defined]


# ---- rotation reaches the on-behalf-of client ---------------------------------------------------------------
async def test_the_obo_client_rebuilds_with_a_rotated_client_secret(
    entra_tls: tuple[EntraStandIn, Path],
    profile_api: tuple[str, list[dict[str, str]]],
    vault_tls: TlsFiles,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entra, entra_cert = entra_tls
    monkeypatch.setenv("SSL_CERT_FILE", str(entra_cert))  # httpx2 (JWKS) and MSAL trust the TLS Entra stand-in
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(entra_cert))
    monkeypatch.setenv("PROFILE_API__BASE_URL", profile_api[0])
    vault = KeyVaultStandIn(entra, TENANT)  # this vault trusts tokens from this Entra stand-in
    vault_server = ServerThread(vault.app(), ssl_certfile=str(vault_tls.cert), ssl_keyfile=str(vault_tls.key))
    vault.base = f"https://127.0.0.1:{vault_server.port}"
    credential = LocalIssuerCredential(entra, TENANT, VAULT_IDENTITY)
    monkeypatch.setitem(CREDENTIALS, "local-issuer", lambda _kv: credential)
    vault.set("azuread--client-secret", "obo-client-secret-one")
    port = free_port()

    def user_token(oid: str) -> str:
        return entra.token(tenant=TENANT, audience=CLIENT_ID, scopes="profile.read", oid=oid)

    section = vault_section(vault, vault_tls, refresh_seconds=0.5)
    with (
        vault_server,
        ServerThread(
            create_app(settings_for(entra, port, keyvault=section, tools={"dir": REPO / "tools"})), port=port
        ) as server,
    ):
        ok, _ = await _tool_text(server.url, user_token("aaaaaaaa-0000-4000-8000-0000000000a1"), "my_profile")
        assert ok is False and entra.token_requests[-1]["client_secret"] == "obo-client-secret-one"
        vault.set("azuread--client-secret", "obo-client-secret-two")
        store: SecretStore = app_state(server).secrets
        deadline = time.monotonic() + 10
        while store.get("azuread--client-secret").get_secret_value() != "obo-client-secret-two":
            assert time.monotonic() < deadline, "the rotated client secret was never loaded"
            await asyncio.sleep(0.2)
        # Another user, so MSAL must exchange (not serve from cache): with the new secret, no restart.
        ok, _ = await _tool_text(server.url, user_token("aaaaaaaa-0000-4000-8000-0000000000a2"), "my_profile")
    assert ok is False and entra.token_requests[-1]["client_secret"] == "obo-client-secret-two"
