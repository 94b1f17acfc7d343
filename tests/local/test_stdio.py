"""Local mode over stdio: the SDK's stdio client launches `python -m app stdio`, which signs the user in
with MSAL against the dev issuer (https, a generated local CA) through a real headless Chromium; the second start is
served from MSAL's persisted cache with no prompt; scopes are enforced; stdout carries protocol messages only."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import ssl
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from msal_extensions import build_encrypted_persistence
from pydantic import SecretStr

from app.devissuer.rules import TEST_USERS
from app.local.identity import CACHE_FILE, SignInError, token_cache
from app.local.settings import LocalSettings
from app.settings import DEV_CLIENT_ID, DEV_TENANT_ID, Settings
from app.settings.sources import WithoutSecrets
from tests.support.oauth import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.support.servers import free_port
from tests.support.values import REPO

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("stdio")]
TOOLS = REPO / "tests" / "support" / "stdio_tools"
USER = TEST_USERS[1]  # not the default user of `make token`: the identity must come from this sign-in


class Local:
    """A dev issuer on https (its own process) and the environment `python -m app stdio` runs with, in `tmp` (never
    the checkout, whose `.env` and `.dev/` belong to the developer's `make run`)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.keys = tmp / "dev-keys"
        self.urls = tmp / "browser-urls.txt"
        self.browser = tmp / "browser.sh"
        # BROWSER is how Python's webbrowser (which MSAL uses) finds the browser: this one hands the URL to the test.
        self.browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{self.urls}"\n')
        self.browser.chmod(0o700)
        self.common = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp / "home"),
            "PYTHONPATH": str(REPO),
            "APP_ENV": "development",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "text",
            "DEV_ISSUER__PORT": str(self.port),
            "DEV_ISSUER__TLS": "true",
            "DEV_ISSUER__KEY_DIR": str(self.keys),
            "AZUREAD__APP_ID_URI": "api://{client_id}",
            "TOOLS__DIR": str(TOOLS),
            "TOOLS__LOCK_MODE": "off",
        }
        self.server_env = {
            **self.common,
            "BROWSER": str(self.browser),
            "REQUESTS_CA_BUNDLE": str(self.keys / "dev-ca.pem"),  # MSAL's requests session trusts the local CA
            "XDG_DATA_HOME": str(tmp / "xdg"),
            "STDIO__SCOPES": "mcp.read",
            "STDIO__ALLOW_PLAIN_CACHE": "true",  # no unlocked libsecret keyring on this machine (see test below)
            "STDIO__SIGN_IN_TIMEOUT_SECONDS": "120",
        }
        self.data_dir = tmp / "xdg" / "secure-mcp-server"

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def params(self) -> StdioServerParameters:
        return StdioServerParameters(
            command=sys.executable, args=["-m", "app", "stdio"], env=self.server_env, cwd=self.tmp
        )

    def sign_in_urls(self) -> list[str]:
        return self.urls.read_text().split() if self.urls.exists() else []


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    setup = Local(tmp_path_factory.mktemp("stdio"))
    log = setup.tmp / "issuer.log"
    with log.open("wb") as out:
        issuer = subprocess.Popen(
            [sys.executable, "-m", "app.devissuer", "serve"],
            cwd=setup.tmp,
            env=setup.common,
            stdout=out,
            stderr=out,
        )
    try:
        discovery = f"{setup.base}/{DEV_TENANT_ID}/v2.0/.well-known/openid-configuration"
        deadline = time.monotonic() + 30
        while True:
            assert issuer.poll() is None, log.read_text()
            try:
                context = ssl.create_default_context(cafile=str(setup.keys / "dev-ca.pem"))
                with urllib.request.urlopen(discovery, context=context, timeout=2) as answer:
                    assert json.load(answer)["issuer"] == f"{setup.base}/{DEV_TENANT_ID}/v2.0"
                break
            except (OSError, ssl.SSLError):
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield setup
    finally:
        issuer.terminate()
        issuer.wait(timeout=15)


async def _browse(local: Local, seen: int) -> str:
    """Wait for MSAL to open the browser, then sign in on the dev issuer's page in Chromium; the URL it opened."""
    deadline = time.monotonic() + 60
    while len(local.sign_in_urls()) <= seen:
        assert time.monotonic() < deadline, "MSAL never opened the browser"
        await asyncio.sleep(0.1)
    url = local.sign_in_urls()[seen]
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # Chromium trusts exactly the dev issuer's certificate (its key's SPKI pin), as a user would trust the CA.
        pin = f"--ignore-certificate-errors-spki-list={_spki_pin(local.keys / 'dev-issuer-tls.pem')}"
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, pin])
        page = await browser.new_page()
        await page.goto(url)
        await page.get_by_label(USER.name, exact=False).first.check()
        async with page.expect_navigation(url="http://localhost:*/**"):
            await page.get_by_role("button", name="Sign in").click()
        await browser.close()
    return url


def _spki_pin(certificate: Path) -> str:
    public_key = x509.load_pem_x509_certificate(certificate.read_bytes()).public_key()
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def test_signs_in_with_msal_then_the_cache_serves_the_second_start(local: Local) -> None:
    require_chromium()
    browsing = asyncio.create_task(_browse(local, 0))
    async with stdio_client(local.params()) as (read, write), ClientSession(read, write) as session:
        _, url = await asyncio.gather(session.initialize(), browsing)
        tools = {t.name for t in (await session.list_tools()).tools}
        who = json.loads(_text(await session.call_tool("local_whoami", {})))
        refused = await session.call_tool("local_admin", {})
        injected = json.loads(_text(await session.call_tool("local_downstream", {})))
        called = json.loads(_text(await session.call_tool("local_downstream_call", {})))
    # MSAL's own authorization request: the public client, a loopback redirect, PKCE S256, OpenID scopes.
    assert url.startswith(f"{local.base}/{DEV_TENANT_ID}/oauth2/v2.0/authorize?")
    for part in ("code_challenge_method=S256", "redirect_uri=http%3A%2F%2Flocalhost%3A", "openid", "nonce="):
        assert part in url, part
    # The list is filtered per caller, exactly as over HTTP: mcp.admin was not granted.
    assert tools == {"local_whoami", "local_noisy", "local_downstream", "local_downstream_call"}
    assert who["oid"] == USER.oid and who["tid"] == DEV_TENANT_ID and who["name"] == USER.name
    assert who["scopes"] == ["mcp.read"] and who["kind"] == "user"
    assert refused.is_error and "requires scope(s): mcp.admin" in _text(refused)
    for shape in (injected, called):  # MSAL's acquire_token_silent for the signed-in account
        assert shape == {"aud": DEV_CLIENT_ID, "scp": "mcp.read", "oid": USER.oid}
    cache = local.data_dir / "msal-token-cache.bin"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    records = [json.loads(line) for line in (local.data_dir / "audit.jsonl").read_text().splitlines()]
    calls = [r for r in records if r.get("event") == "tool_call"]
    assert calls and all(r["principal"]["oid"] == USER.oid for r in calls)
    assert any(r["target"] == "local_admin" and r["outcome"] == "error" for r in calls)

    # Second start: MSAL's persisted cache serves the token, the browser is never opened.
    async with stdio_client(local.params()) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        again = json.loads(_text(await session.call_tool("local_whoami", {})))
    assert again["oid"] == USER.oid and again["scopes"] == ["mcp.read"]
    assert len(local.sign_in_urls()) == 1


async def test_stdout_carries_protocol_messages_only(local: Local) -> None:
    """Raw stdout bytes: every line is one JSON-RPC message, though a tool prints and the server logs at INFO."""
    cached = (local.data_dir / "msal-token-cache.bin").is_file() and bool(local.sign_in_urls())
    if not cached:  # run on its own: sign in through the browser first
        require_chromium()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "stdio",
        cwd=local.tmp,
        env=local.server_env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    messages: list[dict[str, object]] = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "local_noisy", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "local_admin", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 5, "method": "prompts/get", "params": {"name": "local_admin_prompt"}},
        {"jsonrpc": "2.0", "id": 6, "method": "prompts/list"},
        {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"arguments": {}}},
    ]
    signing_in = None if cached else asyncio.create_task(_browse(local, len(local.sign_in_urls())))
    lines: list[bytes] = []
    for message in messages:
        process.stdin.write(json.dumps(message).encode() + b"\n")
        await process.stdin.drain()
        if "id" in message:
            lines.append(await asyncio.wait_for(process.stdout.readline(), 60))
    if signing_in is not None:
        await signing_in
    process.stdin.close()
    rest, errors = await asyncio.wait_for(process.communicate(), 30)
    raw = b"".join(lines) + rest
    parsed = [json.loads(line) for line in raw.splitlines()]
    assert [m.get("id") for m in parsed] == [1, 2, 3, 4, 5, 6, 7]
    assert all(m["jsonrpc"] == "2.0" and ("result" in m or "error" in m) for m in parsed)
    assert parsed[2]["result"]["content"][0]["text"] == "printed"
    assert parsed[3]["result"]["isError"] is True
    # Beyond tools/call, a refusal is a JSON-RPC error; lists are filtered; malformed params are invalid params.
    assert "forbidden: requires scope(s): mcp.admin" in parsed[4]["error"]["message"]
    assert parsed[5]["result"]["prompts"] == []
    assert parsed[6]["error"]["code"] == -32602
    assert b"noise from a tool on stdout" in errors  # the print went to stderr
    assert (b"signed in from the token cache" in errors) is cached


def test_a_failed_sign_in_is_one_line_on_stderr_and_nothing_on_stdout(local: Local, tmp_path: Path) -> None:
    """The dev issuer has no device code endpoint: a device-code sign-in fails, and says why."""
    env = {**local.server_env, "STDIO__SIGN_IN": "device_code", "STDIO__DATA_DIR": str(tmp_path), "LOG_LEVEL": "ERROR"}
    done = subprocess.run(
        [sys.executable, "-m", "app", "stdio"], cwd=tmp_path, env=env, input=b"", capture_output=True, timeout=60
    )
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().strip().splitlines()[-1].startswith("sign-in error: ")


def test_an_unreachable_authority_is_one_line_on_stderr_and_nothing_on_stdout(tmp_path: Path) -> None:
    local = Local(tmp_path)  # no issuer listens on its port
    done = subprocess.run(
        [sys.executable, "-m", "app", "stdio"],
        cwd=tmp_path,
        env={**local.server_env, "LOG_LEVEL": "ERROR"},
        input=b"",
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().strip().splitlines()[-1].startswith("sign-in error: cannot use the authority https://")


def test_local_settings_read_no_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local mode's environment source drops every secret field; everything else still comes from the environment."""
    monkeypatch.setenv("AZUREAD__CLIENT_SECRET", "env-secret-value")
    monkeypatch.setenv("MCP__REQUEST_STATE_KEYS", "a" * 64)
    monkeypatch.setenv("TELEMETRY__ENDUSER_ID_KEY", "k" * 40)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("STDIO__SCOPES", "mcp.read")
    local = LocalSettings(app_env="development", _env_file=None)
    assert local.azuread.client_secret is None and local.mcp.request_state_keys == []
    assert local.telemetry.enduser_id_key is None
    assert local.log_level == "DEBUG" and local.stdio.scopes == ["mcp.read"]
    http = Settings(app_env="development", _env_file=None)  # the HTTP server still reads them (Key Vault's names)
    assert http.azuread.client_secret == SecretStr("env-secret-value")
    # The sources local mode uses, highest first: init args, the environment without secrets, then the rest.
    sources = LocalSettings.settings_customise_sources(LocalSettings, *_default_sources(LocalSettings))
    assert isinstance(sources[1], WithoutSecrets) and type(sources[1].source).__name__ == "EnvSettingsSource"
    assert isinstance(sources[2], WithoutSecrets) and type(sources[2].source).__name__ == "DotEnvSettingsSource"
    assert not any(type(s).__name__ in {"EnvSettingsSource", "DotEnvSettingsSource"} for s in sources)


def test_local_settings_read_no_secret_from_a_dotenv_file(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("AZUREAD__CLIENT_SECRET=file-secret-value\nLOG_LEVEL=WARNING\n")
    local = LocalSettings(app_env="development", _env_file=dotenv)
    assert local.azuread.client_secret is None and local.log_level == "WARNING"
    assert Settings(app_env="development", _env_file=dotenv).azuread.client_secret is not None


def test_local_mode_reads_key_vault_with_the_cli_login_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """DefaultAzureCredential would take AZURE_CLIENT_SECRET from the environment: refused before the vault is read."""
    monkeypatch.setenv("KEYVAULT__URL", "https://example-vault.vault.azure.net/")
    with pytest.raises(ValueError, match="KEYVAULT__CREDENTIAL=cli"):
        LocalSettings(app_env="development", _env_file=None)


def _default_sources(cls: type[Settings]) -> tuple[Any, ...]:
    from pydantic_settings import DotEnvSettingsSource, EnvSettingsSource, InitSettingsSource, SecretsSettingsSource

    return (
        InitSettingsSource(cls, {}),
        EnvSettingsSource(cls),
        DotEnvSettingsSource(cls, env_file=None),
        SecretsSettingsSource(cls),
    )


def test_token_cache_is_encrypted_or_refused_without_the_dev_fallback(tmp_path: Path) -> None:
    """msal-extensions' encrypted persistence (libsecret on Linux) is used when the OS has a keyring; without one the
    plain file is refused unless STDIO__ALLOW_PLAIN_CACHE is set (development only)."""
    settings = Settings(app_env="development", _env_file=None)
    try:
        build_encrypted_persistence(str(tmp_path / "probe.bin"))
        keyring = True
    except Exception:  # this machine: no PyGObject, no unlocked libsecret keyring
        keyring = False
    if keyring:
        assert token_cache(tmp_path / CACHE_FILE, settings.stdio.allow_plain_cache)._persistence.is_encrypted
    else:
        with pytest.raises(SignInError, match="STDIO__ALLOW_PLAIN_CACHE"):
            token_cache(tmp_path / CACHE_FILE, settings.stdio.allow_plain_cache)
        assert not (tmp_path / "msal-token-cache.bin").exists()
    with pytest.raises(ValueError, match="STDIO__ALLOW_PLAIN_CACHE"):
        Settings(
            app_env="production",
            _env_file=None,
            azuread={"tenant_id": "t", "client_id": "c"},
            mcp={"resource_host": "https://x.example"},
            stdio={"allow_plain_cache": True},
        )


def test_the_console_script_runs_the_same_entry_point() -> None:
    """`secure-mcp-server stdio` (pyproject `[project.scripts]`) is `python -m app stdio`."""
    import importlib
    import tomllib

    import app.__main__

    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["secure-mcp-server"]
    module, _, name = target.partition(":")
    assert getattr(importlib.import_module(module), name) is app.__main__.main
