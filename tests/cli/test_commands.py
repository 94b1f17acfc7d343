"""The `secure-mcp-server` command line: every command's `--help` without configuration, the stable exit codes, the
effective settings with every secret masked, and `python -m app` as the same command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings
from app.settings.fields import secret_env_names
from tests.support.values import REPO

SETTINGS_PREFIXES = ("APP_", "AZUREAD__", "MCP__", "TOOLS__", "ROUTES__", "KEYVAULT__", "SERVERS__", "AUTH_SERVER__")


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the CLI, read from Typer's own command tree (a new command is covered by itself)."""
    found = []
    for name, command in group.commands.items():
        found.append((*path, name))
        if hasattr(command, "commands"):  # a group (Typer's own click: not `click.Group`)
            found += _commands(command, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_group(cli))


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No configuration at all: no settings in the environment, no `.env` in the working directory."""
    for name in list(os.environ):
        if name.startswith(SETTINGS_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_command_tree_has_every_entry_point() -> None:
    assert set(COMMANDS) >= {
        ("serve",), ("stdio",), ("token",), ("tools-lock",), ("new-tool",), ("new-route",), ("audit",),
        ("audit", "verify"), ("settings",), ("doctor",), ("entra",), ("entra", "register"),
    }  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_of_every_command_exits_0_without_configuration(command: tuple[str, ...], bare: Path) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert list(bare.iterdir()) == []  # nothing written: no keys, no lock, no `.dev/`


@pytest.mark.slow
def test_help_from_the_console_script_starts_nothing(tmp_path: Path) -> None:
    """The installed script, in an empty directory and an environment with no settings: `--help` is help, and
    `python -m app stdio --help` no longer starts a sign-in."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8", "PYTHONPATH": str(REPO)}
    script = Path(sys.executable).parent / "secure-mcp-server"
    assert script.exists(), "make install puts the console script in .venv/bin"
    python_m_app = [sys.executable, "-m", "app"]
    for argv in ([str(script), "--help"], [str(script), "entra", "register", "--help"],
                 [*python_m_app, "stdio", "--help"], [*python_m_app, "--help"]):  # fmt: skip
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, (argv, done.stderr)
        assert "Usage:" in done.stdout and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_configuration_error_is_one_line_and_exit_2(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Production without its three required values: `settings` (like every command that reads settings) says so."""
    monkeypatch.setenv("APP_ENV", "production")
    result = CliRunner().invoke(cli, ["settings"])
    assert result.exit_code == 2
    assert result.output.startswith("configuration error: production mode needs AZUREAD__TENANT_ID")
    assert "Traceback" not in result.output


def test_a_usage_error_exits_2(bare: Path) -> None:
    result = CliRunner().invoke(cli, ["token", "--lifetime", "nope"])
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def test_token_refuses_entra_settings_with_one_line(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZUREAD__TENANT_ID", "72f988bf-0000-4000-8000-000000000001")
    monkeypatch.setenv("AZUREAD__CLIENT_ID", "5c6a6c1c-0000-4000-8000-00000000c11e")
    result = CliRunner().invoke(cli, ["token"])
    assert result.exit_code == 2
    assert "get tokens from Entra" in result.output


def test_audit_verify_exit_codes(tmp_path: Path) -> None:
    """0 for an intact chain (an empty log), 1 for a broken one, 2 for a file that cannot be read."""
    intact, broken = tmp_path / "ok.jsonl", tmp_path / "broken.jsonl"
    intact.write_text("")
    broken.write_text(json.dumps({"seq": 1, "prev": "0" * 64, "hash": "f" * 64}) + "\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["audit", "verify", str(intact)]).exit_code == 0
    assert runner.invoke(cli, ["audit", "verify", str(broken)]).exit_code == 1
    assert runner.invoke(cli, ["audit", "verify", str(tmp_path / "missing.jsonl")]).exit_code == 2


def test_tools_lock_check_exits_1_when_stale(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = bare / "tools"
    tools.mkdir()
    (tools / "hello.py").write_text(
        'from app import tool\n\n\n@tool(scopes=["mcp.read"])\ndef hello() -> str:\n    """Say hello."""\n'
        '    return "hi"\n'
    )
    monkeypatch.setenv("TOOLS__DIR", str(tools))
    runner = CliRunner()
    assert runner.invoke(cli, ["tools-lock", "--check"]).exit_code == 1  # no lock yet
    assert runner.invoke(cli, ["tools-lock"]).exit_code == 0
    assert (bare / "tools.lock").exists()
    assert runner.invoke(cli, ["tools-lock", "--check"]).exit_code == 0


def _secret_values() -> dict[str, str]:
    """A valid value for every secret setting, each with a marker that must never be printed."""
    values = {}
    for n, name in enumerate(secret_env_names(Settings)):
        marker = f"s3cr3t-marker-{n}-0123456789abcdef"
        values[name.upper()] = f"redis://:{marker}@127.0.0.1:6379/0" if name.endswith("_uri") else marker
    return values


@pytest.mark.parametrize("as_json", [False, True], ids=["lines", "json"])
def test_settings_prints_the_effective_values_with_every_secret_masked(
    as_json: bool, bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = _secret_values()
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.setenv("MCP__SERVER_NAME", "effective-name")
    result = CliRunner().invoke(cli, ["settings", *(["--json"] if as_json else [])])
    assert result.exit_code == 0, result.output
    assert "s3cr3t-marker" not in result.output
    if as_json:
        shown = json.loads(result.output)
        assert shown["mcp"]["server_name"] == "effective-name"
        assert shown["azuread"]["client_secret"] == "**********"
    else:
        lines = dict(line.split("=", 1) for line in result.output.splitlines())
        assert lines["MCP__SERVER_NAME"] == "effective-name"
        assert lines["AZUREAD__CLIENT_SECRET"] == "**********"
        assert lines["APP_ENV"] == "development"


def test_the_makefile_targets_call_the_command_line() -> None:
    """`make run`, `make token` and the rest go through `secure-mcp-server`, so the two cannot drift apart."""
    makefile = (REPO / "Makefile").read_text()
    for target, command in [("run", "serve"), ("dev", "serve --reload"), ("token", "token"),
                            ("audit-verify", "audit verify"), ("new-tool", "new-tool"), ("new-route", "new-route"),
                            ("tools-lock", "tools-lock"), ("doctor", "doctor")]:  # fmt: skip
        recipe = makefile.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
        assert f"$(CLI) {command}" in recipe, target
