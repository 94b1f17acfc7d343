"""Startup: tools are discovered by dropping in a module; unsafe tools and insecure config refuse to start."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from app.catalog.discovery import discover
from app.catalog.registry import ToolDiscoveryError
from app.settings import Settings
from tests.support.app_process import run_uvicorn
from tests.support.calls import mcp_client
from tests.support.servers import ServerThread, free_port
from tests.support.values import REPO


def _write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


async def test_dropping_in_a_module_serves_its_tool(
    tmp_path: Path, serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    _write(
        tmp_path,
        "weather.py",
        '''
        from app import tool

        @tool(scopes=["mcp.read"])
        def forecast(city: str) -> str:
            """Tomorrow's forecast."""
            return f"sunny in {city}"
    ''',
    )
    _write(
        tmp_path,
        "team/ops.py",
        '''
        from app import tool

        @tool(roles=["Ops.Run"], scopes=["ops.run"])
        def restart(service: str) -> str:
            """Restart a service."""
            return "restarted " + service
    ''',
    )
    server = serve(tools={"dir": tmp_path})
    async with mcp_client(server.url, token("mcp.read ops.run")) as client:
        assert {t.name for t in (await client.list_tools()).tools} == {"forecast", "restart"}
        result = await client.call_tool("forecast", {"city": "Oslo"})
    assert result.structured_content == {"result": "sunny in Oslo"}


def test_a_tool_without_scopes_or_roles_fails_startup_naming_it(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "leaky.py",
        """
        from app import tool

        @tool()
        def dump_everything() -> str:
            return "secrets"
    """,
    )
    with pytest.raises(ToolDiscoveryError) as raised:
        discover(tmp_path)
    message = str(raised.value)
    assert "dump_everything" in message and "leaky" in message and "public=True" in message


def test_public_opt_out_is_allowed_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write(
        tmp_path,
        "open.py",
        """
        from app import tool

        @tool(public=True)
        def ping() -> str:
            return "pong"
    """,
    )
    catalog = discover(tmp_path)
    assert [spec.name for spec in catalog.of("tool")] == ["ping"]
    assert any("public" in r.getMessage() and "ping" in r.getMessage() for r in caplog.records)


def test_a_module_that_fails_to_import_fails_startup_with_its_path(tmp_path: Path) -> None:
    _write(tmp_path, "broken.py", "import definitely_not_a_module\n")
    with pytest.raises(ToolDiscoveryError) as raised:
        discover(tmp_path)
    assert "broken" in str(raised.value) and "definitely_not_a_module" in str(raised.value)


def test_duplicate_tool_names_fail_startup(tmp_path: Path) -> None:
    for name in ("a.py", "b.py"):
        _write(
            tmp_path,
            name,
            """
            from app import tool

            @tool(scopes=["x"])
            def same() -> str:
                return ""
        """,
        )
    with pytest.raises(ToolDiscoveryError, match="defined twice"):
        discover(tmp_path)


@pytest.mark.slow
def test_production_without_azuread_settings_exits_nonzero_with_a_clear_message(tmp_path: Path) -> None:
    result = run_uvicorn({"APP_ENV": "production"}, tmp_path)
    assert result.returncode != 0
    assert "AZUREAD__TENANT_ID" in result.stderr and "AZUREAD__CLIENT_ID" in result.stderr
    assert "MCP__RESOURCE_HOST" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_production_is_the_default(tmp_path: Path) -> None:
    result = run_uvicorn({}, tmp_path)
    assert result.returncode != 0 and "production mode needs" in result.stderr


@pytest.mark.slow
def test_unsafe_tool_stops_the_real_server_with_a_clear_message(tmp_path: Path) -> None:
    _write(tmp_path / "t", "nope.py", "from app import tool\n\n@tool()\ndef nope() -> str:\n    return ''\n")
    result = run_uvicorn({"APP_ENV": "development", "TOOLS__DIR": str(tmp_path / "t")}, tmp_path)
    assert result.returncode != 0
    assert "nope" in result.stderr and "declares no scopes or roles" in result.stderr


@pytest.mark.slow
def test_a_dev_key_file_that_cannot_be_used_stops_the_server_and_the_token_command_with_what_to_do(
    tmp_path: Path,
) -> None:
    (tmp_path / "dev").mkdir()
    key = ec.generate_private_key(ec.SECP256R1())  # generated here, then cut short: no key material in the repo
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "dev" / "dev-issuer-key.pem").write_bytes(pem[: len(pem) // 2])
    env = {"APP_ENV": "development", "TOOLS__DIR": str(REPO / "tools"), "TOOLS__LOCK_MODE": "off"}
    env["DEV_ISSUER__KEY_DIR"] = str(tmp_path / "dev")
    server = run_uvicorn(env, tmp_path)
    token = subprocess.run(
        [sys.executable, "-m", "app.devissuer", "token"],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for result in (server, token):
        assert result.returncode == 2
        assert "does not hold an RSA private key: delete it, and a new one is made" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("section", "values", "needle"),
    [
        ("azuread", {"instance": "http://login.example.com/"}, "https://"),
        ("mcp", {"resource_host": "http://mcp.contoso.com"}, "https://"),
        ("mcp", {"resource_host": "https://mcp.contoso.com/base"}, "no path"),
        ("mcp", {"path": "/mcp/"}, "MCP__PATH"),
    ],
)
def test_insecure_settings_are_refused(section: str, values: dict[str, str], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        Settings(_env_file=None, app_env="development", **{section: values})


def test_dev_issuer_is_never_active_in_production() -> None:
    settings = Settings(
        _env_file=None,
        app_env="production",
        azuread={"tenant_id": "t", "client_id": "c"},
        mcp={"resource_host": "https://x.example", "stateless": False},
    )
    assert not settings.dev_issuer_active
    from app.compose.devissuer import dev_issuer_config
    from app.devissuer.issuer import DevIssuer

    with pytest.raises(RuntimeError, match="never runs in production"):
        DevIssuer(dev_issuer_config(settings))


@pytest.mark.parametrize("threshold", [12_345, 0])
def test_startup_sets_the_young_generation_gc_threshold(serve: Callable[..., ServerThread], threshold: int) -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])
    try:
        serve(server={"gc_threshold": threshold})
        assert gc.get_threshold()[0] == (threshold or 700)  # 0 keeps what Python had
    finally:
        gc.set_threshold(*before)


def test_a_taken_port_is_one_line_naming_it_before_anything_says_serving(tmp_path: Path) -> None:
    import socket

    port = free_port()
    with socket.create_server(("127.0.0.1", port)):  # another server holds the port
        env = {**os.environ, "APP_ENV": "development", "SERVER__PORT": str(port), "PYTHONPATH": str(REPO)}
        env["DEV_ISSUER__PORT"] = str(free_port())
        command = [sys.executable, "-m", "app"]
        started = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    output = started.stdout + started.stderr
    assert started.returncode == 2 and "Traceback" not in output and "serving" not in output, output
    assert output.strip().splitlines() == [
        f"configuration error: cannot listen on 127.0.0.1:{port} (Address already in use): another server holds it; "
        "stop it, or choose another port with SERVER__PORT (`make run PORT=8010`)"
    ]
